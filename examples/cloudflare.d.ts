// The few types of Cordon's `cloudflare:*` built-in modules the examples and cli/node-polyfills use (for `tsc --noEmit`).
declare module 'cloudflare:workers' {
  export class RpcTarget {
    [Symbol.dispose]?(): void;
  }
  export class WorkerEntrypoint<Env = unknown, Props = unknown> extends RpcTarget {
    constructor(ctx: unknown, env: Env);
    protected ctx: { props: Props; exports: Record<string, unknown>; waitUntil(p: Promise<unknown>): void };
    protected env: Env;
  }
  export class WorkflowEntrypoint<Env = unknown> extends RpcTarget {
    constructor(ctx: unknown, env: Env);
    protected ctx: unknown;
    protected env: Env;
  }
  /** The worker's env, as its handlers receive it. */
  export const env: Record<string, unknown>;
  export class DurableObject<Env = unknown> {
    constructor(ctx: any, env: Env);
    protected ctx: any;
    protected env: Env;
  }
}
declare module 'cloudflare:workflows' {
  // Declared as tenant code sees it: the isolate's own class (services/sandbox/runtime/bootstrap/workflow-step.ts), not a CordonError.
  export class NonRetryableError extends Error {
    constructor(message?: string, name?: string);
  }
}
declare module 'cloudflare:sockets' {
  export interface SocketAddress {
    hostname: string;
    port: number;
  }
  export interface SocketOptions {
    secureTransport?: 'off' | 'on' | 'starttls';
    allowHalfOpen?: boolean;
  }
  export interface Socket {
    readonly readable: ReadableStream<Uint8Array>;
    readonly writable: WritableStream<Uint8Array>;
    readonly opened: Promise<{ remoteAddress: string }>;
    readonly closed: Promise<void>;
    readonly upgraded: boolean;
    readonly secureTransport: 'off' | 'on' | 'starttls';
    close(): Promise<void>;
    startTls(options?: { expectedServerHostname?: string }): Socket;
  }
  export function connect(address: string | SocketAddress, options?: SocketOptions): Socket;
}
