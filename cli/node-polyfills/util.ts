/**
 * `node:util` for the isolate: unenv's module, with `inspect`, `format`, `formatWithOptions` and
 * `stripVTControlCharacters` from node-inspect-extracted (Node's own util.inspect source, extracted and
 * kept current with Node releases), so values print as Node and workerd print them rather than as JSON.
 */
import { format, formatWithOptions, inspect, stripVTControlCharacters } from 'node-inspect-extracted';
import * as unenv from 'unenv/node/util';

export * from 'unenv/node/util';
export { format, formatWithOptions, inspect, stripVTControlCharacters };
export default { ...unenv.default, format, formatWithOptions, inspect, stripVTControlCharacters };
