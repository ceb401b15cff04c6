// readable-stream publishes no types; these modules use it as Node's `stream` (the types of `node:stream`).
declare module 'readable-stream' {
  import * as stream from 'node:stream';
  const rs: typeof stream & typeof stream.Readable & { promises: typeof import('node:stream/promises'); compose: unknown; destroy: unknown };
  export default rs;
}
