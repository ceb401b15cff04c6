/**
 * How the supervisor words the end of a Workers RPC session to a Durable Object whose lease ended, shared
 * with the caller's isolate, which marks the error its calls in flight get as `retryable` (Cloudflare's
 * property for a call the runtime cannot tell ran). A module of its own without zod: the bootstrap
 * runs in every isolate and must not bundle a schema library (bootstrap-bundle.ts refuses it).
 */
export const INSTANCE_ENDED = "the Durable Object's instance ended";
