import type { FastifyReply } from 'fastify';
import { randomToken } from '../crypto/random.js';

/** Escapes text for HTML element content and double-quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A tagged template whose interpolations are escaped unless they are `raw()` values. */
export class Raw {
  constructor(readonly html: string) {}
}
export const raw = (html: string) => new Raw(html);
export function html(strings: TemplateStringsArray, ...values: Array<string | number | Raw | Raw[] | undefined | null | false>): Raw {
  let out = strings[0]!;
  values.forEach((v, i) => {
    if (v instanceof Raw) out += v.html;
    else if (Array.isArray(v)) out += v.map((r) => r.html).join('');
    else if (v !== undefined && v !== null && v !== false) out += escapeHtml(String(v));
    out += strings[i + 1]!;
  });
  return new Raw(out);
}

const STYLE = `
:root{color-scheme:light dark;--fg:#1d1d1f;--muted:#5f6368;--line:#d7dadf;--bg:#f6f7f9;--card:#fff;--accent:#1f5eff;--warn:#9a5b00;--warnbg:#fff4e0}
@media (prefers-color-scheme:dark){:root{--fg:#e8eaed;--muted:#9aa0a6;--line:#3c4043;--bg:#131416;--card:#1d1f22;--accent:#7aa2ff;--warn:#ffcc80;--warnbg:#3a2a10}}
*{box-sizing:border-box}body{margin:0;font:16px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:var(--bg);color:var(--fg)}
main{max-width:34rem;margin:3rem auto;padding:2rem;background:var(--card);border:1px solid var(--line);border-radius:12px}
h1{font-size:1.35rem;margin:0 0 1rem}p{margin:.5rem 0}.muted{color:var(--muted);font-size:.9rem}
.warn{background:var(--warnbg);color:var(--warn);padding:.6rem .8rem;border-radius:8px;margin:.8rem 0}
.error{background:var(--warnbg);color:var(--warn);padding:.6rem .8rem;border-radius:8px;margin:.8rem 0;font-weight:600}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem;margin:1rem 0}dt{color:var(--muted)}dd{margin:0;overflow-wrap:anywhere}
ul{margin:.3rem 0;padding-left:1.2rem}label{display:block;font-weight:600;margin:1rem 0 .3rem}
input[type=password]{width:100%;padding:.6rem;font:inherit;border:1px solid var(--line);border-radius:8px;background:var(--bg);color:var(--fg)}
.actions{display:flex;gap:.6rem;margin-top:1.2rem}button{font:inherit;padding:.55rem 1.2rem;border-radius:8px;border:1px solid var(--line);background:var(--card);color:var(--fg);cursor:pointer}
button.primary{background:var(--accent);border-color:var(--accent);color:#fff}section{border-top:1px solid var(--line);margin-top:1.2rem;padding-top:.8rem}
`;

/**
 * Sends a server-rendered page with a strict policy: nothing loads but our inline style (by
 * nonce), no script runs, forms post only to us (and the client's redirect target, because the
 * browser applies form-action to the redirect that follows a submission), and no site may frame
 * it (clickjacking the Allow button).
 */
export function sendPage(
  reply: FastifyReply,
  status: number,
  title: string,
  body: Raw,
  options: { formTargets?: string[] } = {},
): FastifyReply {
  const nonce = randomToken(16);
  const formAction = ["'self'", ...(options.formTargets ?? [])].join(' ');
  const page = html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="no-referrer"><title>${title} · Gatehouse</title><style nonce="${nonce}">${raw(STYLE)}</style></head>
<body><main>${body}</main></body></html>`;
  return reply
    .code(status)
    .header('content-type', 'text/html; charset=utf-8')
    .header(
      'content-security-policy',
      `default-src 'none'; style-src 'nonce-${nonce}'; img-src 'self'; form-action ${formAction}; frame-ancestors 'none'; base-uri 'none'`,
    )
    .header('x-frame-options', 'DENY')
    .header('cache-control', 'no-store')
    .header('referrer-policy', 'no-referrer')
    .send(page.html);
}

/** The CSP source that admits a redirect to `uri` (its origin, or its scheme for private-use URIs). */
export function formTargetFor(uri: string): string {
  const url = new URL(uri);
  return url.protocol === 'http:' || url.protocol === 'https:' ? url.origin : url.protocol;
}
