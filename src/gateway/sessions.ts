import { createHmac } from 'node:crypto';
import { constantTimeEqual, hashSecret } from '../crypto/hash.js';

/**
 * MCP session ids that need no session store. `initialize` gets an `Mcp-Session-Id` that carries
 * what the gateway must remember of the client — the capabilities it declared — and the subject
 * it was issued to, under an HMAC: any replica can read it, none has to keep it. A session id is
 * not a credential (every request still authenticates); one that was not issued by this gateway,
 * or was issued to someone else, is a session that does not exist (HTTP 404, as Streamable HTTP
 * prescribes for an unknown session).
 */
export interface SessionClaims {
  /** The client declared URL-mode elicitation (MCP 2025-11-25). */
  urlElicitation: boolean;
}

const VERSION = 's1';

export class SessionIds {
  constructor(private readonly key: Buffer) {}

  issue(subject: string, capabilities: unknown): string {
    const payload = Buffer.from(
      JSON.stringify({ s: subjectTag(subject), u: declaresUrlElicitation(capabilities) ? 1 : 0 }),
      'utf8',
    ).toString('base64url');
    return `${VERSION}.${payload}.${this.mac(payload)}`;
  }

  /** The claims of a session id issued to `subject`, or undefined if it is not one. */
  read(id: string, subject: string): SessionClaims | undefined {
    const [version, payload, mac] = id.split('.');
    if (version !== VERSION || !payload || !mac || !constantTimeEqual(this.mac(payload), mac)) return undefined;
    let claims: { s?: unknown; u?: unknown };
    try {
      claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as typeof claims;
    } catch {
      return undefined;
    }
    if (claims.s !== subjectTag(subject)) return undefined;
    return { urlElicitation: claims.u === 1 };
  }

  private mac(payload: string): string {
    return createHmac('sha256', this.key).update(`${VERSION}.${payload}`).digest('base64url');
  }
}

function subjectTag(subject: string): string {
  return hashSecret(subject).slice(0, 16);
}

/** `capabilities.elicitation.url` (an empty `elicitation` object means form mode only). */
function declaresUrlElicitation(capabilities: unknown): boolean {
  const elicitation = (capabilities as { elicitation?: unknown } | undefined)?.elicitation;
  return typeof elicitation === 'object' && elicitation !== null && typeof (elicitation as { url?: unknown }).url === 'object';
}
