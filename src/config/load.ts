import { readFileSync } from 'node:fs';
import path from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node as YamlNode } from 'yaml';
import type { z } from 'zod';
import { configSchema, type Config } from './schema.js';

/** A configuration that cannot be used. `problems` are complete sentences, one per fault. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

export interface LoadConfigOptions {
  /** YAML or JSON file; without one, every setting takes its default. */
  file?: string | undefined;
  env?: NodeJS.ProcessEnv;
  /** Command-line flags; they win over the environment, which wins over the file. */
  flags?: { host?: string | undefined; port?: string | undefined; data?: string | undefined };
  cwd?: string;
}

type Path = (string | number)[];

/** Environment variables that override one setting each (product §1). */
const ENV_OVERRIDES: Array<[string, Path]> = [
  ['GATEHOUSE_PORT', ['server', 'port']],
  ['GATEHOUSE_PUBLIC_URL', ['server', 'public_url']],
  ['GATEHOUSE_DATABASE_URL', ['storage', 'postgres']],
  ['GATEHOUSE_ENCRYPTION_KEY', ['security', 'encryption_key']],
  ['GATEHOUSE_ADMIN_TOKEN', ['admin', 'token']],
];

const ENV_REFERENCE = /^env:([A-Za-z_][A-Za-z0-9_]*)$/;

export function formatPath(p: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of p) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? String(seg) : `.${String(seg)}`;
  }
  return out === '' ? '(top level)' : out;
}

/** Reads, resolves and validates the configuration. Throws ConfigError; never touches storage. */
export function loadConfig(options: LoadConfigOptions = {}): Config {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const file = options.file ? path.resolve(cwd, options.file) : undefined;
  const label = options.file ?? '';
  const problems: string[] = [];

  let raw: Record<string, unknown> = {};
  let locate: (p: Path) => string = () => label;
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
      throw new ConfigError([`${label}: cannot read the configuration file (${code})`]);
    }
    const lineCounter = new LineCounter();
    const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
    if (doc.errors.length > 0) {
      throw new ConfigError(
        doc.errors.map((e) => {
          const pos = lineCounter.linePos(e.pos[0]);
          return `${label}:${pos.line}:${pos.col}: ${e.message.split('\n')[0]}`;
        }),
      );
    }
    const value: unknown = doc.toJS();
    if (value !== null && value !== undefined) {
      if (typeof value !== 'object' || Array.isArray(value)) {
        throw new ConfigError([`${label}:1:1: the top level must be a mapping of sections (server, upstreams, ...)`]);
      }
      raw = value as Record<string, unknown>;
    }
    locate = (p) => {
      const pos = lineCounter.linePos(nodeOffset(doc.contents, p));
      return `${label}:${pos.line}:${pos.col}`;
    };
  }

  // `env:NAME` references, resolved before validation so the resolved value is what gets checked.
  resolveEnvReferences(raw, [], env, (p, name) =>
    problems.push(`${locate(p)}: ${formatPath(p)}: environment variable ${name} is not set`),
  );

  const origins = new Map<string, string>();
  for (const [name, p] of ENV_OVERRIDES) {
    const value = env[name];
    if (value !== undefined && value !== '') {
      setIn(raw, p, value);
      origins.set(formatPath(p), name);
    }
  }
  const flags = options.flags ?? {};
  if (flags.host !== undefined) {
    setIn(raw, ['server', 'host'], flags.host);
    origins.set('server.host', '--host');
  }
  if (flags.port !== undefined) {
    setIn(raw, ['server', 'port'], flags.port);
    origins.set('server.port', '--port');
  }

  if (problems.length > 0) throw new ConfigError(problems);

  const parsed = configSchema.safeParse(raw, { reportInput: true });
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.flatMap((issue) => {
        // An unknown key is reported once per key, at the key itself.
        const entries: Array<[Path, string]> =
          issue.code === 'unrecognized_keys'
            ? issue.keys.map((k) => [[...(issue.path as Path), k], 'unknown setting (misspelt, or not valid here)'])
            : [[issue.path as Path, describeIssue(issue)]];
        return entries.map(([p, message]) => {
          const where = formatPath(p);
          const origin = origins.get(where);
          if (origin) return `${origin} (${where}): ${message}`;
          return `${locate(p)}: ${where}: ${message}`;
        });
      }),
    );
  }

  const cfg = parsed.data;
  // Paths written in the file are relative to the file; flags and defaults to the working directory.
  const fileDir = file ? path.dirname(file) : cwd;
  const dataDir = flags.data
    ? path.resolve(cwd, flags.data)
    : cfg.storage.data_dir
      ? path.resolve(fileDir, cfg.storage.data_dir)
      : path.resolve(cwd, 'data');
  const sqlite = flags.data
    ? path.join(dataDir, 'gatehouse.db')
    : cfg.storage.sqlite
      ? path.resolve(fileDir, cfg.storage.sqlite)
      : path.join(dataDir, 'gatehouse.db');

  return {
    ...cfg,
    storage: { data_dir: dataDir, sqlite, postgres: cfg.storage.postgres },
    source: file,
  };
}

/** Zod's message, except that a missing value says so (issues carry their input: reportInput). */
function describeIssue(issue: z.core.$ZodIssue): string {
  if ('input' in issue && issue.input === undefined && issue.code !== 'custom') {
    if (issue.code === 'invalid_type') return `is required (expected ${issue.expected})`;
    return `is required (${issue.message.replace(/^Invalid option: /, '')})`;
  }
  return issue.message;
}

function resolveEnvReferences(
  value: unknown,
  at: Path,
  env: NodeJS.ProcessEnv,
  missing: (p: Path, name: string) => void,
): unknown {
  if (typeof value === 'string') {
    const m = ENV_REFERENCE.exec(value);
    if (!m) return value;
    const name = m[1]!;
    const resolved = env[name];
    if (resolved === undefined) missing(at, name);
    return resolved ?? value;
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = resolveEnvReferences(value[i], [...at, i], env, missing);
  } else if (value !== null && typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    for (const key of Object.keys(obj)) obj[key] = resolveEnvReferences(obj[key], [...at, key], env, missing);
  }
  return value;
}

function setIn(target: Record<string, unknown>, p: Path, value: unknown): void {
  let cursor: Record<string, unknown> = target;
  for (const seg of p.slice(0, -1)) {
    const next = cursor[seg];
    if (next === null || typeof next !== 'object' || Array.isArray(next)) cursor[seg] = {};
    cursor = cursor[seg] as Record<string, unknown>;
  }
  cursor[p[p.length - 1]!] = value;
}

/** Offset in the file of the deepest node along `p` that exists (the key, for a mapping entry). */
function nodeOffset(root: unknown, p: Path): number {
  let node = root as YamlNode | null;
  let offset = node?.range?.[0] ?? 0;
  for (const seg of p) {
    if (isMap(node)) {
      const pair = node.items.find((it) => (isScalar(it.key) ? it.key.value : it.key) === seg);
      if (!pair) break;
      const key = pair.key as YamlNode | null;
      offset = key?.range?.[0] ?? offset;
      node = pair.value as YamlNode | null;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg] as YamlNode | undefined;
      if (!item) break;
      offset = item.range?.[0] ?? offset;
      node = item;
    } else {
      break;
    }
  }
  return offset;
}
