import type { FastifyInstance } from 'fastify';
import { InvalidRequestError } from '../oauth/errors.js';

/**
 * Parameters of a query string or an application/x-www-form-urlencoded body, parsed strictly:
 * RFC 6749 §3.1 "Request and response parameters MUST NOT be included more than once", and a
 * value whose percent-encoding is not UTF-8 is refused rather than turned into U+FFFD.
 */
export type Params = ReadonlyMap<string, string>;

export class ParamsError extends InvalidRequestError {}

const MAX_PARAMS = 64;

export function parseParams(text: string): Params {
  const params = new Map<string, string>();
  if (text === '') return params;
  const pairs = text.split('&');
  if (pairs.length > MAX_PARAMS) throw new ParamsError('too many parameters');
  for (const pair of pairs) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const name = decode(eq === -1 ? pair : pair.slice(0, eq));
    const value = eq === -1 ? '' : decode(pair.slice(eq + 1));
    if (params.has(name)) throw new ParamsError(`the parameter ${JSON.stringify(name.slice(0, 64))} is repeated`);
    params.set(name, value);
  }
  return params;
}

function decode(part: string): string {
  try {
    return decodeURIComponent(part.replace(/\+/g, ' '));
  } catch {
    throw new ParamsError('a parameter is not valid percent-encoded UTF-8');
  }
}

/** The query string of a request URL, parsed strictly. */
export function queryParams(url: string): Params {
  const q = url.indexOf('?');
  return parseParams(q === -1 ? '' : url.slice(q + 1));
}

/** Registers the strict parser for form bodies: `request.body` is a Params map. */
export function useStrictFormBodies(app: FastifyInstance): void {
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'buffer' }, (_req, body: Buffer | string, done) => {
    const bytes = typeof body === 'string' ? Buffer.from(body) : body;
    // A form body is ASCII: everything else must be percent-encoded.
    if (bytes.some((b) => b > 0x7e || (b < 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09))) {
      done(new ParamsError('the form body must be ASCII (percent-encode other characters)'), undefined);
      return;
    }
    try {
      done(null, parseParams(bytes.toString('ascii').trim()));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
}

/** `request.body` as Params, or an error saying what Content-Type is expected. */
export function formBody(body: unknown): Params {
  if (body instanceof Map) return body as Params;
  throw new InvalidRequestError('send the parameters as application/x-www-form-urlencoded');
}
