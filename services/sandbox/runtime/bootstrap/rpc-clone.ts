/**
 * Workers RPC values as workerd clones them. capnweb, which carries Workers RPC between isolates
 * (workers-rpc.ts), writes JSON-like data, Date, BigInt, bytes and errors, and refuses or loses what
 * else structured clone keeps: Map, Set, RegExp, Boolean/Number/String objects, -0, cycles and shared
 * references. An argument or a result holding any of these travels instead as one tagged value
 * (tagged-values.ts, the isolate's one encoding of structured-clonable values) inside capnweb's
 * message, `["clone", text, holes]`: what goes by reference (functions, RpcTargets, stubs, streams,
 * Request/Response, …) is left out of the text as a numbered hole and carried by capnweb itself, so
 * it stays a reference. Values capnweb carries faithfully take its own path, unchanged.
 *
 * capnweb's bundled code is patched to call these (bootstrap-bundle.ts, `capnwebClones`): both ends of
 * a session are this bootstrap, and the hosts carry its messages verbatim. The receiving end treats
 * the text as hostile: unknown tags, holes it was not sent, and over-long BigInts are refused.
 */
import { decodeValue, encodeValue } from './tagged-values.ts';
import { Body } from './fetch-api.ts';

/**
 * A Response's body bytes to send in capnweb's message (bootstrap-bundle.ts RPC_INLINE_BODY), or null
 * for its stream: taken here, in the init half, before any tenant code could replace it on Body.
 */
export const takeBodyBytes = Body.takeBytes;

/** capnweb's own classification of a value (its `typeForRpc`). */
export type Kind = (value: unknown) => string;

/** A value capnweb writes as `["clone", text, holes]` (recognised by its patched serializer). */
export class Cloned {
  readonly text: string;
  readonly holes: unknown[];
  constructor(text: string, holes: unknown[]) {
    this.text = text;
    this.holes = holes;
  }
}

/** Kinds capnweb passes by reference or rebuilds itself (streams, Request/Response): holes in a clone. */
const BY_REFERENCE = new Set([
  'function',
  'rpc-target',
  'rpc-thenable',
  'stub',
  'rpc-promise',
  'readable',
  'writable',
  'request',
  'response',
  'headers',
  'blob',
  'url',
]);
/** capnweb's serializer refuses nesting this deep; past it the value takes the clone path, which refuses it as workerd does. */
const MAX_DEPTH = 256;
const is = Object.is;

/** Whether capnweb's own path carries `value` as structured clone would (no kinds it lacks, nothing reached twice). */
function faithful(value: unknown, kind: Kind): boolean {
  const seen = new Set<object>();
  const walk = (v: unknown, depth: number): boolean => {
    if (typeof v === 'number') return !is(v, -0);
    if (typeof v === 'symbol') return false;
    if (v === null || typeof v !== 'object') return true;
    if (depth > MAX_DEPTH || seen.has(v)) return false;
    seen.add(v);
    switch (kind(v)) {
      case 'object':
        for (const k in v) if (!walk((v as Record<string, unknown>)[k], depth + 1)) return false;
        return true;
      case 'array':
        for (const e of v as unknown[]) if (!walk(e, depth + 1)) return false;
        return true;
      case 'unsupported':
        return false;
      default:
        return true;
    }
  };
  return walk(value, 0);
}

function clone(value: unknown, kind: Kind): Cloned {
  const holes: unknown[] = [];
  const text = encodeValue(value, { instances: 'refuse', holes, byReference: (v) => BY_REFERENCE.has(kind(v)) });
  return new Cloned(text, holes);
}

/** A call's result (or a property's value), as capnweb should write it. */
export function cloneResult(value: unknown, kind: Kind): unknown {
  return faithful(value, kind) ? value : clone(value, kind);
}

/**
 * A call's arguments, as capnweb should write them: each on its own (capnweb writes the list as a
 * list), so a reference shared between two arguments arrives as two copies.
 */
export function cloneArgs(args: unknown, kind: Kind): unknown {
  if (!Array.isArray(args) || faithful(args, kind)) return args;
  return args.map((a) => cloneResult(a, kind));
}

/** The value a `["clone", text, holes]` stood for; `holes` are capnweb's already. */
export function decodeClone(text: string, holes: unknown[], limits: { maxBigIntDigits: number }): unknown {
  return decodeValue(text, { holes, maxBigIntDigits: limits.maxBigIntDigits });
}
