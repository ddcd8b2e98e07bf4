import type { Config } from '../config/schema.js';

/**
 * The OAuth surface's gate (product §2, from the seed): registration, authorization, token,
 * revocation and discovery exist only while `oauth_server.enabled` is true, or is "auto" and some
 * upstream uses per-user OAuth. Read from the live configuration on every request, so adding or
 * removing such an upstream opens or closes it without a restart.
 */
export function oauthServerLive(config: Config): boolean {
  const enabled = config.oauth_server.enabled;
  if (enabled === 'auto') return config.upstreams.some((u) => u.auth_type === 'per_user_oauth');
  return enabled;
}
