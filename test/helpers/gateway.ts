import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { buildApp, type Gatehouse } from '../../src/app.js';
import { loadConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/logging.js';
import { FakeClock } from './clock.js';
import { createPostgresDatabase, type StorageKind } from './postgres.js';
import { makeTempDir } from './tmp.js';

export type RawConfig = Record<string, unknown>;

/** A per-user OAuth upstream: its presence opens the OAuth surface (the seed's gate). */
export const PER_USER_UPSTREAM = {
  name: 'notion',
  transport: 'http',
  // Nothing listens there: the OAuth surface only needs the upstream configured.
  url: 'http://127.0.0.1:9/mcp',
  auth_type: 'per_user_oauth',
};

/** Defaults for tests: a free port, registration live, rate limits off unless a test turns them on. */
export function testConfig(overrides: RawConfig = {}): RawConfig {
  return deepMerge(
    {
      server: { host: '127.0.0.1', port: 0 },
      oauth_server: { rate_limits: { register: { max: 0, window: 60 } } },
      upstreams: [PER_USER_UPSTREAM],
      log: { level: 'info' },
    },
    overrides,
  );
}

/** Merges `over` into `base`; a null in `over` removes the setting (so its default applies). */
export function deepMerge(base: RawConfig, over: RawConfig): RawConfig {
  const out: RawConfig = { ...base };
  for (const [key, value] of Object.entries(over)) {
    if (value === null) {
      delete out[key];
      continue;
    }
    const prev = out[key];
    out[key] =
      value && typeof value === 'object' && !Array.isArray(value) && prev && typeof prev === 'object' && !Array.isArray(prev)
        ? deepMerge(prev as RawConfig, value as RawConfig)
        : value;
  }
  return out;
}

export interface TestGateway {
  url: string;
  gatehouse: Gatehouse;
  clock: FakeClock;
  dataDir: string;
  configFile: string;
  /** Every log line written so far. */
  logs: string[];
  /** Writes a new configuration file and applies it as a reload would. */
  reload(raw: RawConfig): string[];
  close(): Promise<void>;
}

/**
 * Starts a real gateway in this process on 127.0.0.1 (free port), with a real database: SQLite in
 * a fresh temp directory, or a fresh PostgreSQL database.
 */
export async function startGateway(
  options: { storage?: StorageKind; config?: RawConfig; clock?: FakeClock; dataDir?: string } = {},
): Promise<TestGateway> {
  // A given data directory belongs to the caller (to restart on it); a fresh one is removed on close.
  const temp = options.dataDir ? { dir: options.dataDir, remove: () => {} } : makeTempDir();
  const cleanups: Array<() => Promise<void> | void> = [temp.remove];
  const storage: RawConfig = { data_dir: temp.dir };
  if (options.storage === 'postgres') {
    const pgdb = await createPostgresDatabase();
    storage.postgres = pgdb.url;
    cleanups.unshift(pgdb.drop);
  }
  const raw = deepMerge(testConfig(options.config ?? {}), { storage });
  const configFile = path.join(temp.dir, 'gatehouse.json');
  writeFileSync(configFile, JSON.stringify(raw, null, 2));
  const config = loadConfig({ file: configFile, env: {} });

  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logs.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  const clock = options.clock ?? new FakeClock();
  let gatehouse: Gatehouse;
  try {
    gatehouse = await buildApp(config, { clock, logger: createLogger(config.log.level, sink) });
  } catch (err) {
    for (const c of cleanups) await c();
    throw err;
  }
  const url = await gatehouse.listen();
  return {
    url,
    gatehouse,
    clock,
    dataDir: temp.dir,
    configFile,
    logs,
    reload(next) {
      writeFileSync(configFile, JSON.stringify(deepMerge(next, { storage }), null, 2));
      return gatehouse.reload(loadConfig({ file: configFile, env: {} }));
    },
    async close() {
      await gatehouse.close();
      for (const c of cleanups) await c();
    },
  };
}
