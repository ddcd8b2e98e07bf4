#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { buildApp, type Gatehouse } from './app.js';
import { ConfigError, loadConfig, type LoadConfigOptions } from './config/load.js';
import type { Config } from './config/schema.js';
import { createLogger } from './logging.js';
import { ClientRepository, type ClientRecord } from './store/clients.js';
import { migrateToLatest, openDatabase, StorageError, type Database } from './store/database.js';

const USAGE = `Usage: gatehouse <command> [options]

Commands:
  serve                      run the gateway
  migrate                    bring the database schema up to date, then exit
  clients list [--json]      list registered OAuth clients
  clients delete <client_id> remove a registered OAuth client

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

async function withDatabase<T>(config: Config, fn: (database: Database) => Promise<T>): Promise<T> {
  const database = await openDatabase(config.storage);
  try {
    await migrateToLatest(database);
    return await fn(database);
  } finally {
    await database.close();
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
  const header = ['CLIENT_ID', 'NAME', 'ISSUED', 'LAST_USED', 'REDIRECT_URIS'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  for (const row of [header, ...rows]) {
    console.log(row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  '));
  }
}

async function clientsCommand(args: string[], flags: Flags): Promise<void> {
  const [action, clientId, ...rest] = args;
  const config = loadConfig(configOptions(flags));
  if (action === 'list' && clientId === undefined) {
    const clients = await withDatabase(config, (database) => new ClientRepository(database).list());
    if (flags.json) console.log(JSON.stringify(clients, null, 2));
    else printClients(clients);
    return;
  }
  if (action === 'delete' && clientId !== undefined && rest.length === 0) {
    const deleted = await withDatabase(config, (database) => new ClientRepository(database).delete(clientId));
    if (!deleted) throw new UsageError(`no client with client_id ${clientId}`);
    console.log(`deleted client ${clientId}`);
    return;
  }
  throw new UsageError('usage: gatehouse clients list [--json] | gatehouse clients delete <client_id>');
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

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function main(argv: string[]): Promise<number> {
  try {
    const { positionals, flags } = parse(argv);
    const [command, ...args] = positionals;
    if (flags.version) {
      console.log(version());
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
    if (err instanceof StorageError || err instanceof FatalError) {
      process.stderr.write(`gatehouse: ${err.message}\n`);
      return 1;
    }
    createLogger('error').error({ err }, 'gatehouse failed');
    return 1;
  }
}

const code = await main(process.argv.slice(2));
if (code >= 0) process.exitCode = code;
