/**
 * The Streams standard (web-streams-polyfill), a lazy unit (units.ts): loaded by an isolate's first use of
 * a stream (streams.ts). Most requests never make one (a body the worker reads or answers with whole
 * crosses as bytes), and the polyfill's classes and functions were ~150 KB of every isolate's heap.
 */
export * from 'web-streams-polyfill';
