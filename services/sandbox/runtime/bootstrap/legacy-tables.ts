/**
 * The index tables of the legacy multi-byte encodings (Shift_JIS, EUC-JP, ISO-2022-JP, EUC-KR, GBK,
 * gb18030, Big5) for `TextDecoder`: ~150 KB of JSON that is not in the start-up snapshot. @exodus/bytes
 * loads them through this module (bootstrap-bundle.ts puts it in place of the package's own loader) on
 * the first decode in one of those encodings; the text comes from the host, and the tables are built in
 * the worker's own heap, charged to its memory limit.
 */
let source: (() => string) | undefined;
const JSONparse = JSON.parse;

/** Set by the init half (index.ts) with the host's callback. */
export function setLegacyTablesSource(fn: () => string): void {
  source = fn;
}

export default function loadLegacyTables(): unknown {
  if (!source) throw new TypeError('the legacy multi-byte encodings are not available here');
  return JSONparse(source());
}
