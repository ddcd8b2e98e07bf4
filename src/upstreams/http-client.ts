import http from 'node:http';
import { Agent } from 'undici';
import { eventStreamAnswer, webStream } from './event-stream.js';

/**
 * The HTTP client under the SDK's upstream transports: a `fetch` built on undici's dispatcher API
 * with a keep-alive connection pool per upstream. Node's global fetch costs about half a
 * millisecond more per request (WHATWG streams and objects for every request and response), and
 * node:http's client about a tenth of one more than undici's `request`; every tool call crosses
 * it once. The SDK takes the function and keeps doing all the MCP framing itself.
 */
export type Fetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

const NULL_BODY_STATUS = new Set([101, 204, 205, 304]);
type ResponseHeaders = Record<string, string | string[] | undefined>;

export function keepAliveFetch(options: { connections?: number } = {}): { fetch: Fetch; close: () => void } {
  const agent = new Agent({
    connections: options.connections ?? 256,
    // The SDK bounds each request (its timeout, and the signal it passes); a stream of server
    // events may stay quiet for as long as the upstream likes. Idle connections are kept for as
    // long as the upstream's Keep-Alive header says, else 4 s (servers commonly close at 5 s).
    headersTimeout: 0,
    bodyTimeout: 0,
  });

  const fetch: Fetch = async (input, init) => {
    const url = input instanceof URL ? input : new URL(input instanceof Request ? input.url : input);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`unsupported protocol ${url.protocol}`);
    const body = init?.body;
    if (body !== undefined && body !== null && typeof body !== 'string') throw new TypeError('only string bodies are sent to upstreams');
    const method = init?.method ?? 'GET';
    const headers = plainHeaders(init?.headers);
    // Credentials in the URL are sent as HTTP Basic, as node:http does (unless the request has its own).
    if ((url.username !== '' || url.password !== '') && headers.authorization === undefined) {
      headers.authorization = `Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString('base64')}`;
    }
    const res = await agent.request({
      origin: url.origin,
      path: url.pathname + url.search,
      method: method as 'GET',
      headers,
      body: body ?? null,
      signal: init?.signal ?? null,
    });
    const status = res.statusCode;
    if (NULL_BODY_STATUS.has(status) || method === 'HEAD') {
      await res.body.dump();
      return responseOf(url, status, res.headers, null);
    }
    // Event streams are handed over as they arrive, except one holding only its result, which
    // goes as JSON (event-stream.ts); anything else is read whole (it is small).
    if (headerValue(res.headers, 'content-type')?.includes('text/event-stream')) {
      if (status < 200 || status >= 300) return responseOf(url, status, res.headers, webStream(res.body));
      const answer = await eventStreamAnswer(res.body);
      if ('stream' in answer) return responseOf(url, status, res.headers, answer.stream);
      return responseOf(url, status, { ...res.headers, 'content-type': 'application/json' }, null, answer.result);
    }
    return responseOf(url, status, res.headers, Buffer.from(await res.body.arrayBuffer()));
  };

  return {
    fetch,
    close: () => {
      agent.destroy().catch(() => {});
    },
  };
}

/** The request's headers as undici takes them, without building a WHATWG Headers when there is one already. */
function plainHeaders(headers: RequestInit['headers']): Record<string, string> {
  const out: Record<string, string> = {};
  if (headers === undefined) return out;
  if (headers instanceof Headers) {
    headers.forEach((value, name) => {
      out[name] = value;
    });
  } else if (Array.isArray(headers)) {
    for (const [name, value] of headers) if (name !== undefined && value !== undefined) out[name.toLowerCase()] = value;
  } else {
    for (const [name, value] of Object.entries(headers as Record<string, string>)) out[name.toLowerCase()] = value;
  }
  return out;
}

function headerValue(headers: ResponseHeaders, name: string): string | null {
  const value = headers[name.toLowerCase()];
  return value === undefined ? null : Array.isArray(value) ? value.join(', ') : value;
}

function toHeaders(headers: ResponseHeaders): Headers {
  const out = new Headers();
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) out.append(name, v);
    else out.set(name, value);
  }
  return out;
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/**
 * A response as the SDK's transports read it (status, ok, headers.get, body, json, text): a whole,
 * small answer (a Buffer), an event stream, or JSON-RPC messages already parsed (`parsed`).
 * Building a WHATWG Response and its Headers for every JSON-RPC answer costs more than the rest of
 * forwarding it.
 */
function responseOf(
  url: URL,
  status: number,
  headers: ResponseHeaders,
  body: Buffer | ReadableStream<Uint8Array> | null,
  parsed?: unknown,
): Response {
  const get = (name: string) => headerValue(headers, name);
  const bytes = (): Promise<Buffer> =>
    parsed !== undefined
      ? Promise.resolve(Buffer.from(JSON.stringify(parsed)))
      : body === null
        ? Promise.resolve(Buffer.alloc(0))
        : Buffer.isBuffer(body)
          ? Promise.resolve(body)
          : readAll(body);
  const text = () => bytes().then((b) => b.toString('utf8'));
  const response = {
    url: url.toString(),
    status,
    ok: status >= 200 && status < 300,
    redirected: false,
    statusText: http.STATUS_CODES[status] ?? '',
    type: 'basic',
    bodyUsed: false,
    headers: { get, has: (name: string) => get(name) !== null, forEach: (fn: (v: string, k: string) => void) => toHeaders(headers).forEach(fn) },
    body: Buffer.isBuffer(body) || parsed !== undefined ? { cancel: () => Promise.resolve() } : body,
    text,
    json: () => (parsed !== undefined ? Promise.resolve(parsed) : text().then((t) => JSON.parse(t) as unknown)),
    arrayBuffer: () => bytes().then((b) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)),
  };
  return response as unknown as Response;
}
