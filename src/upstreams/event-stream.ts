import type { Readable } from 'node:stream';
import { isJSONRPCResultResponse, type JSONRPCResultResponse } from '@modelcontextprotocol/sdk/types.js';
import { createParser } from 'eventsource-parser';

/**
 * Upstream answers that are event streams (`text/event-stream`), as the SDK's Streamable HTTP
 * transport will read them.
 *
 * Most upstreams answer every request with an event stream, and most of those streams hold one
 * `message` event with the JSON-RPC result, then end. The SDK reads an event stream through two
 * web stream transforms (text decoding, then event parsing) that cost a few hundred microseconds
 * per answer on Node 20, and reads a JSON answer — one message or an array of them — at once. A
 * stream that starts with its result and ends right after, which the SDK would turn into exactly
 * that message and nothing else, is therefore handed to it as JSON. Every other stream (a long
 * call sending progress, a request to the client, an error response, a reconnection hint, an event
 * the SDK would skip or report, a stream that stays open) is handed over as a stream, chunk for
 * chunk, so the SDK does exactly what it always does.
 */

/** Past this many bytes without a decision, the stream goes to the SDK as it is. */
const MAX_HELD = 256 * 1024;

/** How an answer's body goes to the SDK: its one result, or the stream it is. */
export type EventStreamAnswer = { result: JSONRPCResultResponse } | { stream: ReadableStream<Uint8Array> };

/**
 * Reads `source` until it is clear how the SDK should get it: its result alone (the stream ended
 * after a single result response, its first event with data) or as a stream, starting with what
 * was read (as soon as anything else arrives: a notification, a request to the client, an error
 * response, data that is not JSON, an event of another type, a reconnection hint, a comment; past
 * 256 KiB; when it has not ended by the event loop's next check phase after its result; when it
 * ends without one). Nothing waits for this that would not wait anyway: until an event arrives the
 * SDK has nothing to read.
 *
 * The SDK (client/streamableHttp.js, `_handleSseStream`) decodes the bytes as UTF-8, parses events
 * with eventsource-parser, skips events without data, takes `message` events (or events without a
 * type) and parses their data as JSON-RPC messages, reporting those that do not parse; a `retry`
 * field changes its reconnection delay. From a stream that passes these checks it reads the result
 * and nothing else.
 */
export function eventStreamAnswer(source: Readable): Promise<EventStreamAnswer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const decoder = new TextDecoder();
    let result: JSONRPCResultResponse | undefined;
    let other = false;
    let settled = false;
    const parser = createParser({
      onEvent: (event) => {
        if (!event.data) return; // a priming event or a keep-alive: nothing for the SDK to read yet
        if (result || (event.event && event.event !== 'message')) {
          other = true;
          return;
        }
        let value: unknown;
        try {
          value = JSON.parse(event.data);
        } catch {
          other = true;
          return;
        }
        if (isJSONRPCResultResponse(value)) result = value;
        else other = true;
      },
      onRetry: () => {
        other = true;
      },
      onComment: () => {
        other = true; // keep-alive comments come on long-lived streams: never hold those back
      },
      onError: () => {
        other = true;
      },
    });
    let buffered = 0;
    const settle = (answer: EventStreamAnswer) => {
      if (settled) return;
      settled = true;
      source.off('data', onData);
      source.off('end', onEnd);
      source.off('error', onError);
      resolve(answer);
    };
    // Paused until the web stream's reader pulls; its listeners are attached at once.
    const handOver = () => {
      if (settled) return;
      source.pause();
      settle({ stream: webStream(source, chunks) });
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      buffered += chunk.length;
      parser.feed(decoder.decode(chunk, { stream: true }));
      if (other || buffered > MAX_HELD) handOver();
      else if (result) setImmediate(handOver);
    };
    const onEnd = () => settle(result ? { result } : { stream: webStream(null, chunks) });
    const onError = (err: Error) => settle({ stream: webStream(null, chunks, err) });
    source.on('data', onData);
    source.once('end', onEnd);
    source.once('error', onError);
  });
}

/**
 * Chunks as a web stream: `initial` first, then, unless `source` is null (it has ended, or failed
 * with `error`), what it delivers, the socket paused while the reader is behind.
 */
export function webStream(source: Readable | null, initial: Buffer[] = [], error?: Error): ReadableStream<Uint8Array> {
  const view = (chunk: Buffer) => new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        for (const chunk of initial) controller.enqueue(view(chunk));
        if (source === null) {
          if (error) controller.error(error);
          else controller.close();
          return;
        }
        source.on('data', (chunk: Buffer) => {
          controller.enqueue(view(chunk));
          if ((controller.desiredSize ?? 1) <= 0) source.pause();
        });
        source.once('end', () => {
          try {
            controller.close();
          } catch {
            // Cancelled by the reader already.
          }
        });
        source.once('error', (err) => controller.error(err));
      },
      pull() {
        source?.resume();
      },
      cancel(reason) {
        source?.destroy(reason instanceof Error ? reason : undefined);
      },
    },
    { highWaterMark: 16 },
  );
}
