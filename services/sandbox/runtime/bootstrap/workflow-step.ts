/**
 * Workflows inside the isolate: the `step` object `run(event, step)` receives, and the `env` binding
 * of a workflow. Every step call asks the engine (in the supervisor) first; it answers with the
 * recorded outcome, permission to run an attempt, or `suspend`: the run ends there (a sleep, a wait,
 * a retry later) and is replayed from the top when the instance wakes. Values cross as the capability
 * wire encoding (JSON, bytes as {"$b": …}); the engine keeps them as text.
 */
import { parseDuration, MAX_SLEEP_MS } from '../../../../lib/workflow-durations.ts';

export type CallAsync = (handle: string, method: string, args: unknown[]) => Promise<unknown>;
type Reply =
  | { state: 'done'; value: string | null }
  | { state: 'error'; name: string; message: string }
  | { state: 'run'; attempt: number }
  | { state: 'suspend' };

export interface ValueCodec {
  encode(value: unknown): string | null;
  decode(text: string | null): unknown;
}

/**
 * `import { NonRetryableError } from 'cloudflare:workflows'` is this class (so `instanceof` holds here).
 * Not a CordonError: it lives in the isolate, which tenant code sees and which imports no host module.
 */
export class NonRetryableError extends Error {
  constructor(message?: string, name = 'NonRetryableError') {
    super(message);
    this.name = name;
  }
}

/** Thrown through the tenant's run() when the engine ends the run; never a real error. */
export const SUSPEND: object = Object.freeze({ toString: () => 'the workflow instance is suspended (sleeping, waiting or retrying later)' });

const DEFAULTS = { retries: { limit: 5, delay: 10_000, backoff: 'exponential' as const }, timeout: 10 * 60_000 };
const BACKOFFS = ['constant', 'linear', 'exponential'];

function stepConfig(config: unknown): { retries: { limit: number; delay: number; backoff: 'constant' | 'linear' | 'exponential' }; timeout: number } {
  if (config === undefined || config === null) return DEFAULTS;
  if (typeof config !== 'object') throw new TypeError('step.do config must be an object: { retries?: { limit, delay, backoff }, timeout? }');
  const c = config as { retries?: { limit?: unknown; delay?: unknown; backoff?: unknown }; timeout?: unknown };
  for (const k of Object.keys(c)) if (k !== 'retries' && k !== 'timeout' && k !== 'sensitive') throw new TypeError(`unknown step.do config key ${k}`);
  const r = c.retries ?? {};
  if (typeof r.delay === 'function') throw new TypeError('retries.delay as a function is not supported by this runtime; give milliseconds or "<n> <unit>"');
  const limit = r.limit === undefined ? DEFAULTS.retries.limit : Number(r.limit);
  if (!Number.isInteger(limit) || limit < 0 || limit > 10_000) throw new TypeError('retries.limit must be a whole number from 0 to 10000');
  const backoff = (r.backoff ?? DEFAULTS.retries.backoff) as 'constant' | 'linear' | 'exponential';
  if (!BACKOFFS.includes(backoff)) throw new TypeError('retries.backoff must be constant, linear or exponential');
  const delay = r.delay === undefined ? DEFAULTS.retries.delay : parseDuration(r.delay, 'retries.delay');
  const timeout = c.timeout === undefined ? DEFAULTS.timeout : parseDuration(c.timeout, 'timeout');
  if (timeout <= 0) throw new TypeError('timeout must be more than 0');
  return { retries: { limit, delay: Math.min(delay, MAX_SLEEP_MS), backoff }, timeout: Math.min(timeout, MAX_SLEEP_MS) };
}

function checkName(name: unknown): string {
  if (typeof name !== 'string' || name.length === 0 || name.length > 256) throw new TypeError('a step name is a string of 1 to 256 characters');
  return name;
}

function replayedError(r: { name: string; message: string }): Error {
  const e = r.name === 'NonRetryableError' ? new NonRetryableError(r.message) : new Error(r.message);
  e.name = r.name;
  return e;
}

/**
 * The `step` of one run, whose engine calls go to capability `handle`. `onSuspend` marks the run as
 * suspended whatever the tenant does with the throw.
 */
export function makeStep(
  call: CallAsync,
  handle: string,
  codec: ValueCodec,
  setTimer: (fn: () => void, ms: number) => () => void,
  onSuspend: () => void,
): object {
  const counts = new Map<string, number>();
  const next = (name: string) => {
    const n = (counts.get(name) ?? 0) + 1;
    counts.set(name, n);
    return n;
  };
  const ask = async (method: string, args: unknown[]): Promise<Reply> => {
    const r = (await call(handle, method, args)) as Reply;
    if (r.state === 'suspend') {
      onSuspend();
      throw SUSPEND;
    }
    if (r.state === 'error') throw replayedError(r);
    return r;
  };
  const withTimeout = <T>(p: Promise<T>, ms: number) =>
    new Promise<T>((resolve, reject) => {
      const cancel = setTimer(() => reject(Object.assign(new Error(`step timed out after ${ms} ms`), { name: 'WorkflowTimeoutError' })), ms);
      p.then(
        (v) => (cancel(), resolve(v)),
        (e: unknown) => (cancel(), reject(e)),
      );
    });
  return Object.freeze({
    async do(nameArg: unknown, configOrFn: unknown, maybeFn?: unknown): Promise<unknown> {
      const name = checkName(nameArg);
      const [config, fn] = typeof configOrFn === 'function' ? [undefined, configOrFn] : [configOrFn, maybeFn];
      if (typeof fn !== 'function') throw new TypeError('step.do(name, [config], callback): the callback must be a function');
      const cfg = stepConfig(config);
      const count = next(name);
      const begun = await ask('begin', [name, count]);
      if (begun.state === 'done') return codec.decode(begun.value);
      const attempt = (begun as { attempt: number }).attempt;
      let outcome: { value: string | null } | { error: { name: string; message: string }; nonRetryable: boolean };
      try {
        const value = await withTimeout(
          Promise.resolve((fn as (ctx: unknown) => unknown)(Object.freeze({ step: Object.freeze({ name, count }), attempt, config: cfg }))),
          cfg.timeout,
        );
        outcome = { value: codec.encode(value) };
      } catch (e) {
        if (e === SUSPEND) throw e;
        const err = e as { name?: unknown; message?: unknown } | null;
        outcome = { error: { name: String(err?.name ?? 'Error'), message: String(err?.message ?? e) }, nonRetryable: e instanceof NonRetryableError };
      }
      const ended = await ask('end', [name, count, attempt, outcome, cfg]);
      return codec.decode((ended as { value: string | null }).value);
    },
    async sleep(nameArg: unknown, duration: unknown): Promise<void> {
      const name = checkName(nameArg);
      const ms = parseDuration(duration, 'the sleep duration');
      if (ms > MAX_SLEEP_MS) throw new RangeError('a sleep is at most 365 days');
      await ask('sleep', [name, next(name), Date.now() + ms]);
    },
    async sleepUntil(nameArg: unknown, when: unknown): Promise<void> {
      const name = checkName(nameArg);
      const at = when instanceof Date ? when.getTime() : Number(when);
      if (!Number.isFinite(at) || at < 0) throw new TypeError('sleepUntil takes a Date or milliseconds since the epoch');
      if (at - Date.now() > MAX_SLEEP_MS) throw new RangeError('a sleep is at most 365 days');
      await ask('sleep', [name, next(name), Math.floor(at)]);
    },
    async waitForEvent(nameArg: unknown, options: unknown): Promise<unknown> {
      const name = checkName(nameArg);
      const o = (options ?? {}) as { type?: unknown; timeout?: unknown };
      if (typeof o.type !== 'string' || !/^[a-zA-Z0-9_][a-zA-Z0-9-_]{0,99}$/.test(o.type))
        throw new TypeError('waitForEvent needs { type } of up to 100 letters, digits, - and _');
      const timeout = o.timeout === undefined ? 24 * 3_600_000 : parseDuration(o.timeout, 'the waitForEvent timeout');
      const r = await ask('waitForEvent', [name, next(name), o.type, Math.min(timeout, MAX_SLEEP_MS)]);
      const event = codec.decode((r as { value: string | null }).value) as { payload: unknown; timestamp: number; type: string };
      return { payload: event.payload, timestamp: new Date(event.timestamp), type: event.type };
    },
  });
}

/** `env.<BINDING>` for a workflow: create/createBatch/get, and instances with status/pause/…/sendEvent. */
export function workflowBinding(call: CallAsync, handle: string, codec: ValueCodec): object {
  // An instance's status with its output and step outputs decoded (the engine keeps them encoded).
  type Status = { status: string; output?: string; error?: unknown; steps: { output?: string }[] } & Record<string, unknown>;
  const decoded = (s: Status) => ({
    ...s,
    output: s.output === undefined ? undefined : codec.decode(s.output),
    steps: s.steps.map((st) => ({ ...st, output: st.output === undefined ? undefined : codec.decode(st.output) })),
  });
  const instance = (id: string) =>
    Object.freeze({
      id,
      status: async () => decoded((await call(handle, 'status', [id])) as Status),
      pause: () => call(handle, 'pause', [id]).then(() => undefined),
      resume: () => call(handle, 'resume', [id]).then(() => undefined),
      terminate: () => call(handle, 'terminate', [id]).then(() => undefined),
      restart: () => call(handle, 'restart', [id]).then(() => undefined),
      sendEvent: (e: { type?: unknown; payload?: unknown }) => call(handle, 'sendEvent', [id, e?.type, codec.encode(e?.payload)]).then(() => undefined),
    });
  const options = (o: unknown) => {
    const { id, params } = (o ?? {}) as { id?: unknown; params?: unknown };
    return { id: id === undefined ? null : id, params: codec.encode(params) };
  };
  return Object.freeze({
    async create(o?: unknown) {
      const { id, params } = options(o);
      return instance((await call(handle, 'create', [id, params])) as string);
    },
    async createBatch(batch: unknown) {
      if (!Array.isArray(batch)) throw new TypeError('createBatch takes an array of { id?, params? }');
      return ((await call(handle, 'createBatch', [batch.map(options)])) as string[]).map(instance);
    },
    async get(id: unknown) {
      return instance((await call(handle, 'get', [id])) as string);
    },
    async list(filter?: unknown) {
      return ((await call(handle, 'list', [filter ?? {}])) as Status[]).map(decoded);
    },
  });
}
