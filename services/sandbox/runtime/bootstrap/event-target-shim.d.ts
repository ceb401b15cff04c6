// event-target-shim ships types that its package.json "exports" does not expose to NodeNext
// resolution; this declares the part the bootstrap uses.
declare module 'event-target-shim' {
  export class Event {
    constructor(type: string, init?: { bubbles?: boolean; cancelable?: boolean; composed?: boolean });
    readonly type: string;
  }
  export class EventTarget {
    addEventListener(type: string, listener: ((event: Event) => void) | null, options?: unknown): void;
    removeEventListener(type: string, listener: ((event: Event) => void) | null, options?: unknown): void;
    dispatchEvent(event: Event): boolean;
  }
}
