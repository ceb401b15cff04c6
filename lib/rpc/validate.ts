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

/** Parse `value` with `schema`, or throw a ValidationError naming `what` and the first problem. */
export function check<S extends z.ZodType>(schema: S, value: unknown, what: string): z.infer<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const at = issue && issue.path.length ? ` at ${issue.path.join('.')}` : '';
  throw new ValidationError(`invalid ${what}${at}: ${issue?.message ?? 'rejected'}`);
}

/** Bytes as they arrive over capnweb: a Uint8Array no longer than `max`. */
export const bytes = (max: number) => z.custom<Uint8Array>((v) => v instanceof Uint8Array && v.byteLength <= max, { message: `expected at most ${max} bytes` });
