/**
 * A `queues.producers` binding as Workers has it (Queue): send(body, { contentType, delaySeconds })
 * and sendBatch(messages, { delaySeconds }). Bodies are encoded here by content type: `text` (a
 * string), `json`, `bytes` (an ArrayBuffer or view), and `v8` (the default: any structured-clonable
 * value, written by tagged-values.ts since the isolate has no V8 serializer).
 */
import { TextEncoder } from './encoding.ts';
import { encodeValue } from './tagged-values.ts';
import type { CallAsync } from './workflow-step.ts';

const JSONstringify = JSON.stringify;
const isArray = Array.isArray;
const U8 = Uint8Array;
const freeze = Object.freeze;

type ContentType = 'text' | 'json' | 'bytes' | 'v8';

function encode(body: unknown, contentType: unknown): { body: Uint8Array; contentType: ContentType } {
  const type = (contentType ?? 'v8') as ContentType;
  const enc = new TextEncoder();
  if (type === 'text') {
    if (typeof body !== 'string') throw new TypeError('a message with contentType "text" must be a string');
    return { body: enc.encode(body), contentType: type };
  }
  if (type === 'json') {
    const text = JSONstringify(body);
    if (text === undefined) throw new TypeError('a message with contentType "json" must be JSON-serializable');
    return { body: enc.encode(text), contentType: type };
  }
  if (type === 'bytes') {
    if (body instanceof ArrayBuffer) return { body: new U8(body.slice(0)), contentType: type };
    if (ArrayBuffer.isView(body)) return { body: new U8(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength)), contentType: type };
    throw new TypeError('a message with contentType "bytes" must be an ArrayBuffer or ArrayBufferView');
  }
  if (type === 'v8') {
    if (body === undefined) throw new TypeError('a message body cannot be undefined');
    return { body: enc.encode(encodeValue(body)), contentType: type };
  }
  throw new TypeError(`contentType ${JSONstringify(type)} is not one of "text", "json", "bytes", "v8"`);
}

function message(body: unknown, options: { contentType?: unknown; delaySeconds?: unknown } | undefined, batchDelay: unknown) {
  const delay = options?.delaySeconds ?? batchDelay;
  return { ...encode(body, options?.contentType), ...(delay === undefined ? {} : { delaySeconds: delay }) };
}

export function queueBinding(call: CallAsync, handle: string): object {
  return freeze({
    async send(body: unknown, options?: { contentType?: unknown; delaySeconds?: unknown }): Promise<void> {
      await call(handle, 'send', [[message(body, options, undefined)]]);
    },
    async sendBatch(messages: unknown, options?: { delaySeconds?: unknown }): Promise<void> {
      if (!isArray(messages) && !(messages && typeof (messages as Iterable<unknown>)[Symbol.iterator] === 'function'))
        throw new TypeError('sendBatch() takes an iterable of { body, contentType?, delaySeconds? }');
      const list = [...(messages as Iterable<{ body: unknown; contentType?: unknown; delaySeconds?: unknown }>)];
      await call(handle, 'send', [list.map((m) => message(m?.body, m, options?.delaySeconds))]);
    },
  });
}
