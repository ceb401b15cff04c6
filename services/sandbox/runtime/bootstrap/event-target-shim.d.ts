// event-target-shim ships types that its package.json "exports" does not expose to NodeNext
// resolution; this declares the part the bootstrap uses.
declare module 'event-target-shim' {
  export namespace Event {
    interface EventInit {
      bubbles?: boolean;
      cancelable?: boolean;
      composed?: boolean;
    }
  }
  export class Event {
    constructor(type: string, init?: Event.EventInit);
    readonly type: string;
    readonly eventPhase: number;
    initEvent(type: string, bubbles?: boolean, cancelable?: boolean): void;
  }
  export class EventTarget {
    addEventListener(type: string, listener: ((event: Event) => void) | null, options?: unknown): void;
    removeEventListener(type: string, listener: ((event: Event) => void) | null, options?: unknown): void;
    dispatchEvent(event: Event): boolean;
  }
  export function getEventAttributeValue(target: EventTarget, type: string): ((event: Event) => void) | null;
  export function setEventAttributeValue(target: EventTarget, type: string, callback: ((event: Event) => void) | null): void;
}
