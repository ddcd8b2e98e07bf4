import type { KnownClient } from '../oauth/clients.js';
import { isLoopbackHost } from '../oauth/redirect-uri-policy.js';
import { html, raw, type Raw } from './html.js';

/** What each scope lets the client do, in words for the person deciding. */
const SCOPE_WORDS: Record<string, string> = {
  'mcp:read': 'See the tools, resources and prompts you can use',
  'mcp:write': 'Call tools on your behalf',
};

export function errorPage(title: string, message: string, hint?: string): Raw {
  return html`<h1>${title}</h1><p>${message}</p>${hint ? html`<p class="muted">${hint}</p>` : ''}`;
}

export interface ConsentView {
  client: KnownClient;
  redirectUri: string;
  scope: string;
  resource: string;
  requestId: string;
  csrfToken: string;
  /** The consent endpoint's absolute URL (the forms' action). */
  action: string;
  /** The identity entered so far (step 1 done), shown by its label. */
  identity?: string | undefined;
  /** A problem with the last submission, shown above the form. */
  error?: string | undefined;
  /**
   * Step 2: the per-user upstream connections of this identity, with their Connect buttons.
   * Rendered between the identity and the decision; empty when there is nothing to connect.
   */
  connections?: Raw | undefined;
}

/** Where the browser goes after the decision: a host for web redirects, an app for private-use schemes. */
function destination(redirectUri: string): { label: string; remote: boolean } {
  const url = new URL(redirectUri);
  if (url.protocol === 'http:' || url.protocol === 'https:') {
    return { label: url.host, remote: !isLoopbackHost(url.hostname) };
  }
  return { label: `${url.protocol}//${url.host}`, remote: false };
}

export function consentPage(view: ConsentView): Raw {
  const { client } = view;
  const name = client.client_name ?? 'An unnamed application';
  const dest = destination(view.redirectUri);
  const scopes = view.scope.split(' ').filter(Boolean);
  const hidden = html`<input type="hidden" name="request" value="${view.requestId}"><input type="hidden" name="csrf_token" value="${view.csrfToken}">`;
  const decide = html`<div class="actions">
      <button class="primary" type="submit" name="action" value="allow">Allow</button>
      <button type="submit" name="action" value="deny">Deny</button></div>`;
  const identify = html`<label for="virtual_key">Your Gatehouse key</label>
    <input type="password" id="virtual_key" name="virtual_key" autocomplete="current-password" required placeholder="sk-gw-…">
    <div class="actions"><button class="primary" type="submit" name="action" value="identify">Continue</button></div>`;

  return html`<h1>${name} wants to use your MCP servers through Gatehouse</h1>
  ${client.source === 'metadata-document' ? html`<p class="muted">Identified by ${new URL(client.client_id).host}</p>` : ''}
  <dl>
    <dt>Access</dt><dd><ul>${scopes.map((s) => html`<li>${SCOPE_WORDS[s] ?? s}</li>`)}</ul></dd>
    <dt>Server</dt><dd>${view.resource}</dd>
    <dt>Returns to</dt><dd><strong>${dest.label}</strong></dd>
  </dl>
  ${dest.remote ? html`<p class="warn">After you decide, your browser goes to the website <strong>${dest.label}</strong>. Continue only if you started this from there.</p>` : ''}
  ${view.error ? html`<p class="error" role="alert">${view.error}</p>` : ''}
  ${
    view.identity === undefined
      ? html`<form method="post" action="${view.action}">${hidden}${identify}</form>
      <form method="post" action="${view.action}">${hidden}<div class="actions"><button type="submit" name="action" value="deny">Deny</button></div></form>`
      : html`<p>Signed in as <strong>${view.identity}</strong>.</p>
      ${view.connections && view.connections.html !== '' ? html`<section aria-label="Connections">${view.connections}</section>` : raw('')}
      <form method="post" action="${view.action}">${hidden}${decide}</form>`
  }`;
}
