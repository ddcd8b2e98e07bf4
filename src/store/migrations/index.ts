import type { Migration } from 'kysely';
import * as m0001 from './0001_oauth_clients.js';
import * as m0002 from './0002_authorization_server.js';
import * as m0003 from './0003_upstream_oauth.js';
import * as m0004 from './0004_upstream_secret_expiry.js';

/**
 * Every schema change, in order. Listed statically (not read from a folder) so the compiled
 * program carries its migrations with it. Names sort in the order they must run.
 */
export const migrations: Record<string, Migration> = {
  '0001_oauth_clients': m0001,
  '0002_authorization_server': m0002,
  '0003_upstream_oauth': m0003,
  '0004_upstream_secret_expiry': m0004,
};
