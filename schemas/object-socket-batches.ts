/**
 * The bounds of an object's batched `ws.send` (ObjectSocketsApi.send), shared by the isolate's bootstrap
 * and the supervisor. A module of its own without zod: the bootstrap runs in every isolate and must not
 * bundle a schema library (bootstrap-bundle.ts refuses it).
 */

/** Messages in one `send` batch at most (the isolate also flushes at MAX_SEND_BATCH_BYTES). */
export const MAX_SEND_BATCH = 1024;
export const MAX_SEND_BATCH_BYTES = 4 * 1024 * 1024;
