import http from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';

/**
 * The HTTP client under the SDK's upstream transports: a `fetch` built on node:http with a
 * keep-alive agent per upstream. Node's global fetch costs about half a millisecond more per
 * request than node:http on the same connection, and every tool call crosses it once; the SDK
 * takes the function and keeps doing all the MCP framing itself.
 */
export type Fetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

const NULL_BODY_STATUS = new Set([101, 204, 205, 304]);

export function keepAliveFetch(options: { maxSockets?: number } = {}): { fetch: Fetch; close: () => void } {
  const agents = {
    'http:': new http.Agent({ keepAlive: true, maxSockets: options.maxSockets ?? 256, scheduling: 'lifo' }),
    'https:': new https.Agent({ keepAlive: true, maxSockets: options.maxSockets ?? 256, scheduling: 'lifo' }),
  };

  const fetch: Fetch = (input, init) => {
    const url = new URL(input instanceof Request ? input.url : input);
    const client = url.protocol === 'https:' ? https : url.protocol === 'http:' ? http : undefined;
    if (!client) return Promise.reject(new TypeError(`unsupported protocol ${url.protocol}`));
    const headers: Record<string, string> = {};
    new Headers(init?.headers).forEach((value, name) => {
      headers[name] = value;
    });
    const body = init?.body;
    if (body !== undefined && body !== null && typeof body !== 'string') {
      return Promise.reject(new TypeError('only string bodies are sent to upstreams'));
    }
    const signal = init?.signal ?? undefined;
    return new Promise<Response>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason ?? new DOMException('aborted', 'AbortError'));
        return;
      }
      const req = client.request(url, { method: init?.method ?? 'GET', headers, agent: agents[url.protocol as 'http:' | 'https:'] }, (res) => {
        const status = res.statusCode ?? 502;
        if (NULL_BODY_STATUS.has(status) || init?.method === 'HEAD') {
          res.resume();
          cleanup();
          resolve(bufferedResponse(url, status, res.headers, null));
          return;
        }
        // Event streams are handed over as they arrive; anything else is read whole (it is small).
        if ((res.headers['content-type'] ?? '').includes('text/event-stream')) {
          res.once('close', cleanup);
          resolve(new Response(Readable.toWeb(res) as ReadableStream<Uint8Array>, { status, headers: toHeaders(res.headers) }));
          return;
        }
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.once('end', () => {
          cleanup();
          resolve(bufferedResponse(url, status, res.headers, Buffer.concat(chunks)));
        });
        res.once('error', (err) => {
          cleanup();
          reject(err);
        });
      });
      // The SDK passes one long-lived signal for all of a transport's requests: listen only while
      // this request lives, or listeners pile up on it.
      const onAbort = () => req.destroy(signal?.reason instanceof Error ? signal.reason : new DOMException('aborted', 'AbortError'));
      const cleanup = () => signal?.removeEventListener('abort', onAbort);
      signal?.addEventListener('abort', onAbort, { once: true });
      req.once('error', (err) => {
        cleanup();
        reject(err);
      });
      req.end(body ?? undefined);
    });
  };

  return {
    fetch,
    close: () => {
      agents['http:'].destroy();
      agents['https:'].destroy();
    },
  };
}

function toHeaders(headers: http.IncomingHttpHeaders): Headers {
  const out = new Headers();
  for (const [name, value] of Object.entries(headers)) if (value !== undefined) out.set(name, Array.isArray(value) ? value.join(', ') : value);
  return out;
}

/**
 * A whole, small response as the SDK's transports read it (status, ok, headers.get, json, text,
 * body?.cancel): building a WHATWG Response and its web stream for every JSON-RPC answer costs
 * more than the rest of forwarding it.
 */
function bufferedResponse(url: URL, status: number, headers: http.IncomingHttpHeaders, body: Buffer | null): Response {
  const get = (name: string): string | null => {
    const value = headers[name.toLowerCase()];
    return value === undefined ? null : Array.isArray(value) ? value.join(', ') : value;
  };
  const text = () => Promise.resolve(body ? body.toString('utf8') : '');
  const response = {
    url: url.toString(),
    status,
    ok: status >= 200 && status < 300,
    redirected: false,
    statusText: http.STATUS_CODES[status] ?? '',
    type: 'basic',
    bodyUsed: false,
    headers: { get, has: (name: string) => get(name) !== null, forEach: (fn: (v: string, k: string) => void) => toHeaders(headers).forEach(fn) },
    body: body && { cancel: () => Promise.resolve() },
    text,
    json: () => text().then((t) => JSON.parse(t) as unknown),
    arrayBuffer: () => Promise.resolve(body ? body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength) : new ArrayBuffer(0)),
  };
  return response as unknown as Response;
}
