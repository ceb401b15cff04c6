/**
 * TextDecoder's legacy multi-byte decoders (Shift_JIS, EUC-JP, ISO-2022-JP, EUC-KR, GBK, gb18030, Big5;
 * @exodus/bytes), a lazy unit (units.ts): loaded by an isolate's first decoder of one of them, wired in
 * by bootstrap-bundle.ts (`multibyteOnFirstUse`). Their tables come from the host then (legacy-tables.ts).
 */
export { createMultibyteDecoder } from '@exodus/bytes/multi-byte.js';
export { multibyteEncoder } from '@exodus/bytes/fallback/multi-byte.js';
