import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import secureJson from 'secure-json-parse';
import { InvalidRequestError } from '../oauth/errors.js';

/**
 * The JSON body parser for every endpoint. Stricter than JSON.parse, because what we store must
 * be exactly what the client meant:
 *  - invalid UTF-8 is refused, not replaced with U+FFFD (RFC 8259 §8.1);
 *  - duplicate member names are refused, not resolved last-wins (RFC 8259 §4 leaves it undefined,
 *    and two parsers reading one body differently is how checks get bypassed);
 *  - `__proto__` / `constructor.prototype` members are refused (prototype poisoning).
 */
const utf8 = new TextDecoder('utf-8', { fatal: true });

export function parseStrictJson(body: Buffer): unknown {
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw new InvalidRequestError('the request body is not valid UTF-8');
  }
  if (text.trim() === '') throw new InvalidRequestError('the request body is empty; send a JSON object');
  let value: unknown;
  try {
    value = secureJson.parse(text, undefined, { protoAction: 'error', constructorAction: 'error' });
  } catch (err) {
    // secure-json-parse reports poisoning as a SyntaxError too; tell the two apart by its message.
    if (/prototype property/.test((err as Error).message)) {
      throw new InvalidRequestError('the request body must not contain "__proto__" or "constructor.prototype" members');
    }
    throw new InvalidRequestError('the request body is not valid JSON');
  }
  const duplicate = findDuplicateKey(text);
  if (duplicate !== undefined) {
    throw new InvalidRequestError(`the request body repeats the member ${JSON.stringify(duplicate.slice(0, 64))}`);
  }
  return value;
}

/**
 * Returns the first member name that appears twice in one object, or undefined. Expects text
 * that JSON.parse has accepted, so it only has to tell keys from values and find string ends.
 */
export function findDuplicateKey(text: string): string | undefined {
  // One entry per open container: the keys seen so far for an object, null for an array.
  const stack: Array<Set<string> | null> = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      let escaped = false;
      for (;;) {
        const d = text.charCodeAt(j);
        if (d === 0x5c /* \ */) {
          escaped = true;
          j += 2;
        } else if (d === 0x22) {
          break;
        } else {
          j++;
        }
      }
      const keys = stack[stack.length - 1];
      if (expectKey && keys) {
        const key = escaped ? (JSON.parse(text.slice(i, j + 1)) as string) : text.slice(i + 1, j);
        if (keys.has(key)) return key;
        keys.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === 0x7b /* { */) {
      stack.push(new Set());
      expectKey = true;
    } else if (c === 0x5b /* [ */) {
      stack.push(null);
      expectKey = false;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
      expectKey = false;
    } else if (c === 0x2c /* , */) {
      expectKey = stack[stack.length - 1] != null;
    }
  }
  return undefined;
}

/**
 * Replaces Fastify's application/json parser with the strict one, and drops its text/plain
 * parser: no endpoint takes plain text.
 */
export function useStrictJsonBodies(app: FastifyInstance): void {
  app.removeContentTypeParser(['application/json', 'text/plain']);
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body: Buffer | string, done) => {
    try {
      done(null, parseStrictJson(typeof body === 'string' ? Buffer.from(body) : body));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
}

/**
 * A preValidation hook for JSON-only endpoints: another media type (a form, say, which a parser
 * registered for other endpoints may have accepted) is refused with a message that says so.
 */
export function requireJsonBody(request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction): void {
  const type = request.headers['content-type']?.split(';', 1)[0]?.trim().toLowerCase();
  if (type !== 'application/json') {
    done(new InvalidRequestError('Content-Type must be application/json'));
    return;
  }
  done();
}
