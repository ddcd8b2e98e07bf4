import { nowSeconds } from '../clock.js';
import type { UpstreamConfig } from '../config/schema.js';
import { html, raw, type Raw } from '../consent/html.js';
import type { Identity } from '../identity/virtual-keys.js';
import { UpstreamAuthError } from './client.js';
import { signInTarget, type ConnectContext } from './routes.js';

/**
 * Step 2 of the consent page (product §2.4): the per-user upstreams this identity may use, each
 * with its state and a Connect button that runs the upstream authorization and comes back. The
 * button is the user's explicit consent to connecting that upstream for the client named on the
 * page; it is recorded before the browser leaves for the upstream (the confused-deputy rule for
 * upstreams that know the gateway by one static client_id).
 */
export class ConsentConnections {
  constructor(private readonly ctx: ConnectContext) {}

  private upstreams(identity: Identity, only: string | undefined): UpstreamConfig[] {
    return this.ctx
      .config()
      .upstreams.filter(
        (u) =>
          u.auth_type === 'per_user_oauth' &&
          (only === undefined || u.name === only) &&
          (identity.upstreams === null || identity.upstreams.includes(u.name)),
      );
  }

  /** The section's HTML, and the origins its forms may send the browser to. */
  async section(input: { identity: Identity; only: string | undefined; hidden: Raw; action: string }): Promise<{ html: Raw; formTargets: string[] }> {
    const upstreams = this.upstreams(input.identity, input.only);
    if (upstreams.length === 0) return { html: raw(''), formTargets: [] };
    const rows = new Map((await this.ctx.repo.connections(input.identity.subject)).map((r) => [r.upstream, r]));
    const formTargets: string[] = [];
    const items: Raw[] = [];
    for (const upstream of upstreams) {
      const row = rows.get(upstream.name);
      const state = !row ? 'Not connected' : row.status === 'needs_reauth' ? 'Needs to be connected again' : 'Connected';
      let target;
      try {
        target = await signInTarget(this.ctx, upstream);
      } catch (err) {
        if (!(err instanceof UpstreamAuthError)) throw err;
        items.push(html`<li><strong>${upstream.name}</strong> — ${state}. <span class="muted">Cannot connect now: ${err.message}</span></li>`);
        continue;
      }
      formTargets.push(target.formTarget);
      items.push(html`<li><form method="post" action="${input.action}">${input.hidden}<input type="hidden" name="upstream" value="${upstream.name}">
        <strong>${upstream.name}</strong> — ${state}
        <span class="muted">(sign in at ${target.host}${target.scopes.length ? html`; permissions: ${target.scopes.join(' ')}` : ''})</span>
        <button type="submit" name="action" value="connect">${row ? 'Reconnect' : 'Connect'}</button></form></li>`);
    }
    return {
      html: html`<h2>Your accounts</h2><p class="muted">Tools of these MCP servers act as you. Connect the accounts this application may use; you come back here afterwards.</p><ul>${items}</ul>`,
      formTargets,
    };
  }

  /** The Connect button: records the consent, starts the flow; returns where to send the browser. */
  async start(input: { identity: Identity; clientId: string; only: string | undefined; upstream: string | undefined; binding: string; requestId: string }): Promise<string> {
    const upstream = this.upstreams(input.identity, input.only).find((u) => u.name === input.upstream);
    if (!upstream) throw new UpstreamAuthError(`there is no MCP server "${String(input.upstream).slice(0, 64)}" to connect here`);
    if (upstream.oauth?.client_id) {
      await this.ctx.repo.recordConsent({
        subject: input.identity.subject,
        upstream: upstream.name,
        client_id: input.clientId,
        scope: upstream.oauth.scopes.join(' ') || null,
        consented_at: nowSeconds(this.ctx.clock),
      });
    }
    return this.ctx.oauth.startFlow({ subject: input.identity.subject, upstream, binding: input.binding, returnTo: input.requestId });
  }
}
