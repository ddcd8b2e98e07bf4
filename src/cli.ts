#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { buildApp, openServices, type Gatehouse, type Services } from './app.js';
import { ConfigError, loadConfig, type LoadConfigOptions } from './config/load.js';
import { nowSeconds } from './clock.js';
import { duration, type Config } from './config/schema.js';
import { VirtualKeyError } from './identity/virtual-keys.js';
import { SigningKeyUnavailableError } from './oauth/signing-keys.js';
import { createLogger } from './logging.js';
import type { ClientRecord } from './store/clients.js';
import { migrateToLatest, openDatabase, StorageError } from './store/database.js';
import type { VirtualKeyRecord } from './store/virtual-keys.js';
import { SHARED_SUBJECT, TICKET_TTL, UpstreamOAuth } from './upstream-oauth/client.js';
import { VERSION } from './version.js';

const USAGE = `Usage: gatehouse <command> [options]

Commands:
  serve                      run the gateway
  migrate                    bring the database schema up to date, then exit
  keys create --name NAME [--user ID] [--servers a,b] [--tools a/x,b/*]
              [--scopes "mcp:read mcp:write"] [--expires 90d]
                             create a virtual key; it is printed once
  keys list [--json]         list virtual keys (never the keys themselves)
  keys revoke <key_id>       deactivate a key: its tokens stop working within seconds
  clients list [--json]      list registered OAuth clients
  clients delete <client_id> remove a registered OAuth client
  rotate-signing-key         make a new access-token signing key (the old one stays
                             published until the tokens it signed have expired)
  upstreams authorize <name> print a link that authorizes an auth_type "oauth" upstream
                             for everybody (open it within 10 minutes, gateway running)

Options (every command):
  --config FILE   YAML or JSON configuration (default: built-in defaults)
  --data DIR      data directory; the SQLite database is DIR/gatehouse.db (default ./data)
Options (serve):
  --host HOST     listen address (default 127.0.0.1)
  --port PORT     listen port (default 8787; 0 picks a free one)

Environment: GATEHOUSE_PORT, GATEHOUSE_PUBLIC_URL, GATEHOUSE_DATABASE_URL,
GATEHOUSE_ENCRYPTION_KEY, GATEHOUSE_ADMIN_TOKEN override the file. Send SIGHUP to reload it.
`;

class UsageError extends Error {}
/** A start-up failure worth one clear line rather than a stack trace. */
class FatalError extends Error {}

interface Flags {
  config?: string | undefined;
  name?: string | undefined;
  user?: string | undefined;
  servers?: string | undefined;
  tools?: string | undefined;
  scopes?: string | undefined;
  expires?: string | undefined;
  data?: string | undefined;
  host?: string | undefined;
  port?: string | undefined;
  json?: boolean | undefined;
  help?: boolean | undefined;
  version?: boolean | undefined;
}

function parse(argv: string[]): { positionals: string[]; flags: Flags } {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        config: { type: 'string' },
        data: { type: 'string' },
        name: { type: 'string' },
        user: { type: 'string' },
        servers: { type: 'string' },
        tools: { type: 'string' },
        scopes: { type: 'string' },
        expires: { type: 'string' },
        host: { type: 'string' },
        port: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
      },
    });
    return { positionals, flags: values };
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

function configOptions(flags: Flags): LoadConfigOptions {
  return { file: flags.config, flags: { host: flags.host, port: flags.port, data: flags.data } };
}

/** Runs `fn` with the gateway's services (database migrated, keys loaded), then closes them. */
async function withServices<T>(config: Config, fn: (services: Services) => Promise<T>): Promise<T> {
  const services = await openServices(() => config, { logger: createLogger('warn') });
  try {
    return await fn(services);
  } finally {
    await services.close();
  }
}

async function serve(flags: Flags): Promise<void> {
  const options = configOptions(flags);
  const config = loadConfig(options);
  const gatehouse: Gatehouse = await buildApp(config);
  const { logger } = gatehouse;
  let url: string;
  try {
    url = await gatehouse.listen();
  } catch (err) {
    await gatehouse.close();
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
      throw new FatalError(`cannot listen on ${config.server.host}:${config.server.port} (${code})`);
    }
    throw err;
  }
  logger.info(
    { url, issuer: gatehouse.issuer(), database: gatehouse.database.kind, config: config.source ?? null },
    'gatehouse listening',
  );

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting without waiting');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down: draining in-flight requests');
    gatehouse.close().then(
      () => {
        logger.info('stopped');
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    try {
      const warnings = gatehouse.reload(loadConfig(options));
      for (const warning of warnings) logger.warn(warning);
      logger.info({ config: config.source ?? null }, 'configuration reloaded');
    } catch (err) {
      const problems = err instanceof ConfigError ? err.problems : [(err as Error).message];
      logger.error({ problems }, 'configuration reload failed; keeping the running configuration');
    }
  });
}

function formatTime(seconds: number | null): string {
  return seconds === null ? 'never' : new Date(seconds * 1000).toISOString().replace('.000Z', 'Z');
}

function printClients(clients: ClientRecord[]): void {
  if (clients.length === 0) {
    console.log('no registered clients');
    return;
  }
  const rows = clients.map((c) => [
    c.client_id,
    c.client_name ?? '-',
    formatTime(c.client_id_issued_at),
    formatTime(c.last_used_at),
    c.redirect_uris.join(' '),
  ]);
  printTable(['CLIENT_ID', 'NAME', 'ISSUED', 'LAST_USED', 'REDIRECT_URIS'], rows);
}

function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  for (const row of [header, ...rows]) {
    console.log(row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  '));
  }
}

async function clientsCommand(args: string[], flags: Flags): Promise<void> {
  const [action, clientId, ...rest] = args;
  const config = loadConfig(configOptions(flags));
  if (action === 'list' && clientId === undefined) {
    const clients = await withServices(config, (services) => services.clients.list());
    if (flags.json) console.log(JSON.stringify(clients, null, 2));
    else printClients(clients);
    return;
  }
  if (action === 'delete' && clientId !== undefined && rest.length === 0) {
    const deleted = await withServices(config, (services) => services.clients.delete(clientId, nowSeconds(services.clock)));
    if (!deleted) throw new UsageError(`no client with client_id ${clientId}`);
    console.log(`deleted client ${clientId}`);
    return;
  }
  throw new UsageError('usage: gatehouse clients list [--json] | gatehouse clients delete <client_id>');
}

function printKeys(keys: VirtualKeyRecord[]): void {
  if (keys.length === 0) {
    console.log('no virtual keys');
    return;
  }
  const rows = keys.map((k) => [
    k.id,
    `${k.prefix}…`,
    k.name,
    k.owner ?? '-',
    k.upstreams?.join(',') ?? '*',
    k.scopes,
    k.expires_at === null ? 'never' : formatTime(k.expires_at),
    k.active ? 'active' : 'revoked',
  ]);
  printTable(['KEY_ID', 'KEY', 'NAME', 'USER', 'SERVERS', 'SCOPES', 'EXPIRES', 'STATE'], rows);
}

function list(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  const items = value.split(',').map((s) => s.trim()).filter(Boolean);
  if (items.length === 0) throw new UsageError('an empty list: give comma-separated names');
  return items;
}

async function keysCommand(args: string[], flags: Flags): Promise<void> {
  const [action, id, ...rest] = args;
  const config = loadConfig(configOptions(flags));
  if (action === 'create' && id === undefined) {
    if (!flags.name) throw new UsageError('keys create needs --name NAME');
    const servers = list(flags.servers);
    const unknown = servers?.filter((s) => !config.upstreams.some((u) => u.name === s)) ?? [];
    if (unknown.length > 0) throw new UsageError(`no upstream named ${unknown.join(', ')} in the configuration`);
    let expiresIn: number | undefined;
    if (flags.expires !== undefined) {
      const parsed = duration.safeParse(/^\d+$/.test(flags.expires) ? Number(flags.expires) : flags.expires);
      if (!parsed.success || parsed.data <= 0) throw new UsageError('--expires takes a duration such as 90d, 12h or 3600');
      expiresIn = parsed.data;
    }
    const created = await withServices(config, (services) =>
      services.virtualKeys
        .create({ name: flags.name!, owner: flags.user, upstreams: servers, tools: list(flags.tools), scopes: flags.scopes, expiresIn })
        .catch((err: unknown) => {
          if (err instanceof VirtualKeyError) throw new UsageError(err.message);
          throw err;
        }),
    );
    if (flags.json) {
      console.log(JSON.stringify({ key: created.key, ...created.record }, null, 2));
    } else {
      console.log(created.key);
      process.stderr.write(`created ${created.record.id} (${created.record.name}); the key is shown only this once\n`);
    }
    return;
  }
  if (action === 'list' && id === undefined) {
    const keys = await withServices(config, (services) => services.virtualKeys.list());
    if (flags.json) console.log(JSON.stringify(keys, null, 2));
    else printKeys(keys);
    return;
  }
  if (action === 'revoke' && id !== undefined && rest.length === 0) {
    const revoked = await withServices(config, (services) => services.virtualKeys.revoke(id));
    if (!revoked) throw new UsageError(`no active key with id ${id}`);
    console.log(`revoked ${id}`);
    return;
  }
  throw new UsageError('usage: gatehouse keys create --name NAME [...] | keys list [--json] | keys revoke <key_id>');
}

async function rotateSigningKey(flags: Flags): Promise<void> {
  const config = loadConfig(configOptions(flags));
  const kid = await withServices(config, (services) => services.signingKeys.rotate());
  console.log(`new signing key ${kid}; the previous key stays published until the tokens it signed expire`);
}

async function upstreamsCommand(args: string[], flags: Flags): Promise<void> {
  const [action, name, ...rest] = args;
  if (action !== 'authorize' || name === undefined || rest.length > 0) throw new UsageError('usage: gatehouse upstreams authorize <name>');
  const config = loadConfig(configOptions(flags));
  const upstream = config.upstreams.find((u) => u.name === name);
  if (!upstream) throw new UsageError(`no upstream named ${name} in the configuration`);
  if (upstream.auth_type !== 'oauth') {
    throw new UsageError(
      `${name} has auth_type "${upstream.auth_type}": only "oauth" upstreams are authorized by the operator` +
        (upstream.auth_type === 'per_user_oauth' ? ' (with per_user_oauth, each user connects their own account)' : ''),
    );
  }
  // The link leads to the running gateway, which completes the authorization; this only records it.
  const issuer = config.server.public_url ?? `http://${config.server.host === '0.0.0.0' ? '127.0.0.1' : config.server.host}:${config.server.port}`;
  const url = await withServices(config, (services) =>
    new UpstreamOAuth({ repo: services.upstreamOAuth, config: () => config, issuer: () => issuer, clock: services.clock, logger: services.logger }).connectUrl(
      SHARED_SUBJECT,
      name,
      undefined,
      null,
    ),
  );
  console.log(url);
  process.stderr.write(
    `open this link in a browser within ${Math.round(TICKET_TTL / 60)} minutes, with the gateway running at ${issuer}; ` +
      `once you authorize, every identity's calls to ${name} use that token\n`,
  );
}

async function migrate(flags: Flags): Promise<void> {
  const config = loadConfig(configOptions(flags));
  const database = await openDatabase(config.storage);
  try {
    const result = await migrateToLatest(database);
    const applied = result.results?.filter((r) => r.status === 'Success').map((r) => r.migrationName) ?? [];
    console.log(applied.length > 0 ? `applied: ${applied.join(', ')}` : `the schema of ${database.location} is up to date`);
  } finally {
    await database.close();
  }
}

async function main(argv: string[]): Promise<number> {
  try {
    const { positionals, flags } = parse(argv);
    const [command, ...args] = positionals;
    if (flags.version) {
      console.log(VERSION);
      return 0;
    }
    if (flags.help || command === undefined || command === 'help') {
      process.stdout.write(USAGE);
      return command === undefined && !flags.help ? 2 : 0;
    }
    switch (command) {
      case 'serve':
        if (args.length > 0) throw new UsageError(`serve takes no arguments (got ${args.join(' ')})`);
        await serve(flags);
        return -1; // keeps running until a signal
      case 'migrate':
        await migrate(flags);
        return 0;
      case 'clients':
        await clientsCommand(args, flags);
        return 0;
      case 'keys':
        await keysCommand(args, flags);
        return 0;
      case 'upstreams':
        await upstreamsCommand(args, flags);
        return 0;
      case 'rotate-signing-key':
        if (args.length > 0) throw new UsageError('rotate-signing-key takes no arguments');
        await rotateSigningKey(flags);
        return 0;
      default:
        throw new UsageError(`unknown command "${command}"; see gatehouse --help`);
    }
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`gatehouse: ${err.message}\n`);
      return 2;
    }
    if (err instanceof UsageError) {
      process.stderr.write(`gatehouse: ${err.message}\n`);
      return 2;
    }
    if (err instanceof StorageError || err instanceof FatalError || err instanceof SigningKeyUnavailableError) {
      process.stderr.write(`gatehouse: ${err.message}\n`);
      return 1;
    }
    createLogger('error').error({ err }, 'gatehouse failed');
    return 1;
  }
}

const code = await main(process.argv.slice(2));
if (code >= 0) process.exitCode = code;
