/**
 * The browser's part of an OAuth flow, done with HTTP requests and a cookie jar (the consent page
 * is a plain form; see judges.md). Every judge and flow test uses this one helper.
 */
export class ConsentBrowser {
  readonly cookies = new Map<string, string>();

  private cookieHeader(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  private remember(res: Response): void {
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair!.indexOf('=');
      this.cookies.set(pair!.slice(0, eq).trim(), pair!.slice(eq + 1).trim());
    }
  }

  async get(url: string): Promise<Response> {
    const send = () => fetch(url, { redirect: 'manual', headers: { cookie: this.cookieHeader(), accept: 'text/html' } });
    // Like a browser, retry a GET once when a kept-alive connection turns out to be closed (a
    // gateway that restarted closes its idle connections).
    const res = await send().catch((err: Error & { cause?: { code?: string } }) => {
      if (err.cause?.code === 'UND_ERR_SOCKET') return send();
      throw err;
    });
    this.remember(res);
    return res;
  }

  async post(url: string, fields: Record<string, string>): Promise<Response> {
    const res = await fetch(url, {
      method: 'POST',
      redirect: 'manual',
      headers: { cookie: this.cookieHeader(), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(fields).toString(),
    });
    this.remember(res);
    return res;
  }

  /**
   * Follows an authorize URL to the consent page, enters `virtualKey`, then clicks `decision`.
   * Returns the URL the browser is finally sent to (the client's redirect URI with code or error).
   */
  async authorize(authorizeUrl: string, virtualKey: string, decision: 'allow' | 'deny' = 'allow'): Promise<URL> {
    const start = await this.get(authorizeUrl);
    const consentUrl = location(start, 302);
    let page = await this.get(consentUrl);
    let form = readForm(await expectStatus(page, 200));
    const identified = await this.post(form.action, { ...form.hidden, action: 'identify', virtual_key: virtualKey });
    page = await this.get(location(identified, 303));
    form = readForm(await expectStatus(page, 200));
    const decided = await this.post(form.action, { ...form.hidden, action: decision });
    return new URL(location(decided, 303));
  }
}

export function location(res: Response, status: number): string {
  if (res.status !== status) throw new Error(`expected ${status}, got ${res.status}`);
  const loc = res.headers.get('location');
  if (!loc) throw new Error('no Location header');
  return loc;
}

async function expectStatus(res: Response, status: number): Promise<string> {
  const text = await res.text();
  if (res.status !== status) throw new Error(`expected ${status}, got ${res.status}: ${text.slice(0, 500)}`);
  return text;
}

const unescape = (s: string) => s.replace(/&#(\d+);/g, (_, n: string) => String.fromCharCode(Number(n)));

/** The first form of a page: its action and hidden fields. */
export function readForm(html: string): { action: string; hidden: Record<string, string> } {
  const form = /<form method="post" action="([^"]*)">([\s\S]*?)<\/form>/.exec(html);
  if (!form) throw new Error(`no form on the page: ${html.slice(0, 300)}`);
  const hidden: Record<string, string> = {};
  for (const m of form[2]!.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) hidden[m[1]!] = unescape(m[2]!);
  return { action: unescape(form[1]!), hidden };
}
