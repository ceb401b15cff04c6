/**
 * The frozen clock. Tenant code sees the time the host last set: at request start, when a timer
 * fires and when an asynchronous call (fetch) returns. It does not move while code runs, so it is
 * useless as a timer for side channels. Covers `Date.now()`, `new Date()`, `Date()`, subclasses of
 * Date, `performance.now()` and the default date of `Intl.DateTimeFormat` `format`/`formatToParts`.
 *
 * The original Date constructor is not reachable afterwards: the replacement is a plain function
 * (not a subclass, whose [[Prototype]] would be the original) sharing the original prototype.
 */
let clock = 0;
let origin = 0;

export function setClock(now: number): void {
  if (typeof now === 'number' && now === now) clock = now;
  if (!origin) origin = clock;
}

/** Back to the state before any request (a spare's rehearsal leaves no time behind). */
export function resetClock(): void {
  clock = 0;
  origin = 0;
}

export function now(): number {
  return clock;
}

export function installClock(g: Record<string, unknown>): void {
  const OrigDate = Date;
  const construct = Reflect.construct;
  const DateFn = function Date(this: unknown, ...args: unknown[]): unknown {
    if (new.target === undefined) return construct(OrigDate, [clock], OrigDate).toString();
    return construct(OrigDate, args.length === 0 ? [clock] : args, new.target);
  } as unknown as DateConstructor & Record<string, unknown>;
  Object.defineProperty(DateFn, 'length', { value: 7 });
  // The bundler renames a function that shadows a global (`Date2`): its name is the global's.
  Object.defineProperty(DateFn, 'name', { value: 'Date' });
  Object.defineProperty(DateFn, 'prototype', { value: OrigDate.prototype, writable: false, enumerable: false, configurable: false });
  for (const name of ['parse', 'UTC'] as const) Object.defineProperty(DateFn, name, { value: OrigDate[name], writable: true, configurable: true });
  Object.defineProperty(DateFn, 'now', {
    value: function now() {
      return clock;
    },
    writable: true,
    configurable: true,
  });
  Object.defineProperty(OrigDate.prototype, 'constructor', { value: DateFn, writable: true, configurable: true });
  g.Date = DateFn;

  const DTF = Intl.DateTimeFormat.prototype;
  const origFormatToParts = DTF.formatToParts;
  const formatGetter = Object.getOwnPropertyDescriptor(DTF, 'format')!.get!;
  const apply = Reflect.apply;
  Object.defineProperty(DTF, 'formatToParts', {
    value: function formatToParts(this: Intl.DateTimeFormat, date?: Date | number) {
      return apply(origFormatToParts, this, [date === undefined ? clock : date]);
    },
    writable: true,
    configurable: true,
  });
  Object.defineProperty(DTF, 'format', {
    get(this: Intl.DateTimeFormat) {
      const f = apply(formatGetter, this, []) as (d?: Date | number) => string;
      return (date?: Date | number) => f(date === undefined ? clock : date);
    },
    configurable: true,
  });
  // Date.prototype.toLocale*String() without a date argument already use the Date's own time.

  const performance = {
    now: () => clock - origin,
    get timeOrigin() {
      return origin;
    },
  };
  g.performance = Object.freeze(performance);
}
