/** @exodus/bytes' own multi-byte encoder, which its package exports do not list (multibyte-unit.ts; bootstrap-bundle.ts resolves it). */
declare module '@exodus/bytes/fallback/multi-byte.js' {
  export function multibyteEncoder(encoding: string, onError?: (codePoint: number) => number): (s: string) => Uint8Array;
}
