/** `node:stream/consumers`: a whole Node or web stream (any async iterable of chunks) as one value. */
import { Buffer } from 'node:buffer';

async function chunks(stream: AsyncIterable<unknown>): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const c of stream) out.push(typeof c === 'string' ? Buffer.from(c) : new Uint8Array(c as ArrayBuffer));
  return out;
}
export const buffer = async (s: AsyncIterable<unknown>) => Buffer.concat(await chunks(s));
export const arrayBuffer = async (s: AsyncIterable<unknown>) => {
  const b = await buffer(s);
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
};
export const text = async (s: AsyncIterable<unknown>) => (await buffer(s)).toString('utf8');
export const json = async (s: AsyncIterable<unknown>) => JSON.parse(await text(s));
export const blob = async (s: AsyncIterable<unknown>) => new Blob(await chunks(s));
export default { arrayBuffer, blob, buffer, json, text };
