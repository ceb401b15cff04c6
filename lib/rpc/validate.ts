/**
 * Runtime validation of what a less trusted peer sends. TypeScript types say nothing at run time:
 * a peer can send a stub, a getter-laden object or a 100 MB string where a short string is declared.
 * Schemas are zod; this module turns a failure into one clear error that names the argument.
 */
import { z } from 'zod';
import { CordonError } from '../errors.ts';

/** A peer sent what its contract does not allow: 400, and a refusal (a compromised peer probing is worth an audit entry). */
export class ValidationError extends CordonError {
  constructor(message: string) {
    super(message, { status: 400, refusal: true });
    this.name = 'ValidationError';
  }
}

/**
 * Hand-written acceptors for the few schemas every request passes at every hop (a request's target and
 * metadata, a response's head): zod's parse of those was ~16% of the sandbox's main thread per small
 * request (megamorphic loads in its shared parse functions, an issue list and a copy per object). An
 * acceptor returns the value zod would for the inputs it is sure of, and undefined for anything else,
 * which zod then decides and words the error for. It must never accept what zod refuses, nor return
 * other than zod would: test/schema-acceptors.test.ts holds each one to its schema, over valid inputs
 * and their mutations.
 */
const acceptors = new WeakMap<z.ZodType, (value: unknown) => unknown>();

/** A plain object (not an array, not of a class): what acceptors take, leaving anything else to zod. */
export function plainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype;
}

/** `schema`, with `accept` tried before it by `check` and `safeCheck`. */
export function withAcceptor<S extends z.ZodType>(schema: S, accept: (value: unknown) => z.output<S> | undefined): S {
  acceptors.set(schema, accept);
  return schema;
}

/** `schema.safeParse(value)`, its acceptor first. */
export function safeCheck<S extends z.ZodType>(schema: S, value: unknown): z.ZodSafeParseResult<z.output<S>> {
  const accepted = acceptors.get(schema)?.(value);
  return accepted === undefined ? schema.safeParse(value) : { success: true, data: accepted as z.output<S> };
}

/** Parse `value` with `schema`, or throw a ValidationError naming `what` and the first problem. */
export function check<S extends z.ZodType>(schema: S, value: unknown, what: string): z.infer<S> {
  const r = safeCheck(schema, value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const at = issue && issue.path.length ? ` at ${issue.path.join('.')}` : '';
  throw new ValidationError(`invalid ${what}${at}: ${issue?.message ?? 'rejected'}`);
}

/** Bytes as they arrive over capnweb: a Uint8Array no longer than `max`. */
export const bytes = (max: number) => z.custom<Uint8Array>((v) => v instanceof Uint8Array && v.byteLength <= max, { message: `expected at most ${max} bytes` });
