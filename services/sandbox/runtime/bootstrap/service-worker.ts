/**
 * Service-worker syntax, as Workers ran workers before ES modules: no default export, and
 * `addEventListener('fetch', (event) => event.respondWith(...))` (and `'scheduled'`) at the top level.
 * The listeners registered while the worker's modules are evaluated become a handler shaped like a
 * module worker's default export, so the request and cron paths are the same for both syntaxes.
 * Listeners for other event types are accepted and never called (Cordon dispatches no others).
 */
import { DOMException } from './encoding.ts';

type Listener = (event: unknown) => unknown;
interface Ctx {
  waitUntil(p: unknown): void;
  passThroughOnException?(): void;
  noRetry?(): void;
}
export interface ServiceWorkerHandler {
  fetch?(request: unknown, env: unknown, ctx: Ctx): unknown;
  scheduled?(event: { cron: string; scheduledTime: number }, env: unknown, ctx: Ctx): unknown;
}

const apply = Reflect.apply;
const freeze = Object.freeze;
const listeners: Record<'fetch' | 'scheduled', Listener[]> = { fetch: [], scheduled: [] };
let registering = true;

function listenerFunction(listener: unknown): Listener | undefined {
  if (typeof listener === 'function') return listener as Listener;
  const handleEvent = (listener as { handleEvent?: unknown } | null)?.handleEvent;
  return typeof handleEvent === 'function' ? (event) => apply(handleEvent, listener, [event]) : undefined;
}

export function addEventListener(type: unknown, listener: unknown): void {
  const t = String(type);
  if (t !== 'fetch' && t !== 'scheduled') return;
  if (!registering) throw new TypeError(`addEventListener('${t}') registers a handler only while the worker's script is evaluated`);
  const fn = listenerFunction(listener);
  if (fn && !listeners[t].includes(fn)) listeners[t].push(fn);
}

export function removeEventListener(type: unknown, listener: unknown): void {
  const t = String(type);
  if ((t !== 'fetch' && t !== 'scheduled') || !registering) return;
  const i = listeners[t].indexOf(listener as Listener);
  if (i >= 0) listeners[t].splice(i, 1);
}

function dispatchFetch(request: unknown, ctx: Ctx): unknown {
  let dispatching = true;
  let responded = false;
  let response: unknown;
  const event = freeze({
    type: 'fetch',
    request,
    respondWith(r: unknown) {
      if (!dispatching) throw new DOMException('respondWith() must be called while the fetch event is dispatched', 'InvalidStateError');
      if (responded) throw new DOMException('respondWith() was already called', 'InvalidStateError');
      responded = true;
      response = r;
    },
    waitUntil: (p: unknown) => ctx.waitUntil(p),
    passThroughOnException: () => ctx.passThroughOnException?.(),
  });
  try {
    for (const l of listeners.fetch) apply(l, globalThis, [event]);
  } finally {
    dispatching = false;
  }
  if (!responded) throw new Error('no fetch event listener called event.respondWith()');
  return response;
}

function dispatchScheduled(e: { cron: string; scheduledTime: number }, ctx: Ctx): void {
  const event = freeze({
    type: 'scheduled',
    cron: e.cron,
    scheduledTime: e.scheduledTime,
    waitUntil: (p: unknown) => ctx.waitUntil(p),
    noRetry: () => ctx.noRetry?.(),
  });
  for (const l of listeners.scheduled) apply(l, globalThis, [event]);
}

/**
 * Once the worker's modules are evaluated: registration ends, and the handler the listeners make
 * (undefined when none was registered).
 */
export function serviceWorkerHandler(): ServiceWorkerHandler | undefined {
  registering = false;
  if (!listeners.fetch.length && !listeners.scheduled.length) return undefined;
  return freeze({
    fetch: listeners.fetch.length ? (request: unknown, _env: unknown, ctx: Ctx) => dispatchFetch(request, ctx) : undefined,
    scheduled: listeners.scheduled.length
      ? (event: { cron: string; scheduledTime: number }, _env: unknown, ctx: Ctx) => dispatchScheduled(event, ctx)
      : undefined,
  });
}
