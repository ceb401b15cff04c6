/**
 * Bounds of an HTTP message as it crosses service boundaries (schemas/http.ts), without zod: the
 * isolate's bootstrap reads them too (a loaded Worker's fetch() takes the request path only within them).
 */
/** A method: 1 to MAX_METHOD upper-case letters. */
export const MAX_METHOD = 32;
export const MAX_URL = 16 * 1024;
export const MAX_HEADERS = 128;
/** A header name: a token of 1 to MAX_HEADER_NAME characters. */
export const MAX_HEADER_NAME = 256;
export const MAX_HEADER_BYTES = 64 * 1024;
/** A body that travels whole (bytes) is at most this big; bigger ones stream (see `stream` in schemas/http.ts). */
export const MAX_BODY = 8 * 1024 * 1024;
