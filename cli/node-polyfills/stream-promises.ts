/** `node:stream/promises`. */
import rs from 'readable-stream';

export const { pipeline, finished } = rs.promises;
export default rs.promises;
