/**
 * A consumer's `queue(batch, env, ctx)`: the MessageBatch Workers gives it, built from the batch the
 * supervisor sent, and what the handler decided for each message. As in Workers: the first call on a
 * message (`ack()`/`retry()`) wins, as does the first batch-wide one (`ackAll()`/`retryAll()`), and a
 * call on a message wins over a batch-wide one; a handler that throws has every message it did not
 * ack retried.
 */
import { fromMessage, type WireMessage } from './wire-codec.ts';
import { TextDecoder } from './encoding.ts';
import { decodeValue } from './tagged-values.ts';
import { errorText } from './response-out.ts';

const JSONstringify = JSON.stringify;
const JSONparse = JSON.parse;
const freeze = Object.freeze;
const DateCtor = Date;
const PromiseCtor = Promise;
const allSettled = Promise.allSettled.bind(Promise);
const isInteger = Number.isInteger;
const MAX_DELAY = 86_400;

interface QueuedMessage {
  id: string;
  timestamp: number;
  attempts: number;
  contentType: 'text' | 'json' | 'bytes' | 'v8';
  body: Uint8Array;
}

interface QueueHandler {
  queue?(batch: unknown, env: unknown, ctx: unknown): unknown;
}

function delayOf(options: unknown): number | null {
  const d = (options as { delaySeconds?: unknown } | undefined)?.delaySeconds;
  if (d === undefined) return null;
  if (typeof d !== 'number' || !isInteger(d) || d < 0 || d > MAX_DELAY)
    throw new RangeError(`delaySeconds must be a whole number of seconds from 0 to ${MAX_DELAY}`);
  return d;
}

/** A message body as its producer sent it (the `v8` type as tagged-values.ts writes it). */
export function decodeBody(contentType: QueuedMessage['contentType'], body: Uint8Array): unknown {
  if (contentType === 'bytes') return body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength);
  const text = new TextDecoder().decode(body);
  if (contentType === 'text') return text;
  if (contentType === 'json') return JSONparse(text);
  return decodeValue(text);
}

/** Run the handler with one batch; answers the QueueOutcome as JSON. */
export async function runQueueHandler(
  handler: QueueHandler | (new (ctx: unknown, env: unknown) => unknown) | undefined,
  env: object,
  queue: string,
  messagesWire: WireMessage,
  logError: (...args: unknown[]) => void,
): Promise<string> {
  const explicit = new Map<string, ['ack' | 'retry', number | null]>();
  let batchCall: ['ack' | 'retry', number | null] | null = null;
  const wire = fromMessage(messagesWire) as QueuedMessage[];
  const messages = freeze(
    wire.map((m) =>
      freeze({
        id: m.id,
        timestamp: new DateCtor(m.timestamp),
        attempts: m.attempts,
        body: decodeBody(m.contentType, m.body),
        ack() {
          if (!explicit.has(m.id)) explicit.set(m.id, ['ack', null]);
        },
        retry(options?: { delaySeconds?: number }) {
          const delay = delayOf(options);
          if (!explicit.has(m.id)) explicit.set(m.id, ['retry', delay]);
        },
      }),
    ),
  );
  const batch = freeze({
    queue,
    messages,
    ackAll() {
      batchCall ??= ['ack', null];
    },
    retryAll(options?: { delaySeconds?: number }) {
      const delay = delayOf(options);
      batchCall ??= ['retry', delay];
    },
  });
  const outcome = () => ({
    acks: [...explicit].filter(([, [k]]) => k === 'ack').map(([id]) => id),
    retries: [...explicit].filter(([, [k]]) => k === 'retry').map(([id, [, d]]) => [id, d]),
    batch: batchCall?.[0] ?? null,
    batchDelay: batchCall?.[1] ?? null,
  });
  const target = typeof handler === 'function' ? (handler.prototype as QueueHandler | undefined) : handler;
  if (!target || typeof target.queue !== 'function')
    return JSONstringify({ ...outcome(), error: 'the worker has no queue(batch, env, ctx) handler in its default export' });
  const waitUntil: Promise<unknown>[] = [];
  const ctx = freeze({
    waitUntil: (p: unknown) => void waitUntil.push(PromiseCtor.resolve(p).catch((e) => logError('waitUntil promise rejected:', e))),
    passThroughOnException: () => {},
  });
  try {
    if (typeof handler === 'function') await (new handler(ctx, env) as QueueHandler).queue!(batch, env, ctx);
    else await handler!.queue!(batch, env, ctx);
  } catch (e) {
    logError('queue() threw; the batch will be retried:', e);
    await allSettled(waitUntil);
    return JSONstringify({ ...outcome(), error: errorText(e).slice(0, 10_000) });
  }
  await allSettled(waitUntil);
  return JSONstringify(outcome());
}
