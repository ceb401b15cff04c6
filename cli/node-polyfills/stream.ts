/** `node:stream` (and `_stream_*`): Node's own streams, as published for other runtimes (readable-stream). */
import rs from 'readable-stream';

export const {
  Readable,
  Writable,
  Duplex,
  Transform,
  PassThrough,
  Stream,
  pipeline,
  finished,
  addAbortSignal,
  compose,
  destroy,
  isDisturbed,
  isErrored,
  isReadable,
} = rs;
export const promises = rs.promises;
// As in Node, the module is the legacy Stream with the classes on it.
export default Object.assign(rs.Stream, rs);
