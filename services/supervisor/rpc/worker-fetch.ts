/**
 * `cordon.workers(name).fetch(request)` for a service outside the mesh: the request goes to the
 * worker's default entrypoint as a Workers RPC `fetch` — the same path a service binding takes (its
 * cordon's sandbox serves it, under its limits) — not through the public ingress. The supervisor is
 * the caller end of the session: it speaks capnweb over the pipe, with the mesh's limits on what the
 * worker may send back, and closes the session once the response is read (bounded like a request's).
 */
import { RpcSession, RpcTarget, type RpcStub, type RpcTransport } from 'capnweb';
import { CordonError } from '../../../lib/errors.ts';
import { Inbox } from '../../../lib/rpc/channel.ts';
import { DEFAULT_QUOTAS } from '../../../lib/rpc/quotas.ts';
import { MAX_BODY } from '../../../schemas/http.ts';
import type { RpcPipe } from '../../../schemas/service-bindings.ts';
import type { WorkerRunner } from '../../../schemas/services.ts';
import type { CodeStore } from '../store.ts';

export interface WorkerFetchDeps {
  store: Pick<CodeStore, 'worker'>;
  runner(cordon: string): RpcStub<WorkerRunner> | undefined;
}

const MAX_MESSAGE = (DEFAULT_QUOTAS.maxMessage / 4) * 3;

/** Our end of the pipe: what the worker's end sends arrives in the inbox. */
class InboxPipe extends RpcTarget implements RpcPipe {
  readonly #inbox: Inbox;
  constructor(inbox: Inbox) {
    super();
    this.#inbox = inbox;
  }
  async send(message: unknown): Promise<void> {
    if (typeof message !== 'string' || message.length > MAX_MESSAGE) return this.#inbox.fail(new Error('the worker sent a malformed RPC message'));
    this.#inbox.push(message);
  }
  async close(reason: unknown): Promise<void> {
    this.#inbox.fail(new Error(typeof reason === 'string' ? reason.slice(0, 500) : 'closed'));
  }
  [Symbol.dispose](): void {
    this.#inbox.fail(new Error('the worker released the session'));
  }
}

async function bounded(body: ReadableStream<Uint8Array> | null, what: string): Promise<Uint8Array | null> {
  if (!body) return null;
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > MAX_BODY) throw new CordonError(`${what} is larger than ${MAX_BODY / 1024 / 1024} MiB`, { status: 413, refusal: true });
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

export async function fetchWorker(deps: WorkerFetchDeps, workerId: string, request: Request): Promise<Response> {
  const worker = deps.store.worker(workerId);
  if (!worker) throw new CordonError(`no worker ${workerId}`, { status: 404 });
  const runner = deps.runner(worker.cordon);
  if (!runner) throw new CordonError(`worker ${workerId}'s cordon ${worker.cordon} is not connected; retry`, { status: 503 });
  // The body is read here, bounded, so what crosses into the worker is bytes, not a stream held open by the client.
  const body = await bounded(request.body, 'the request body');
  const inbox = new Inbox();
  let theirs: RpcStub<RpcPipe>;
  try {
    theirs = (await runner.serve(worker.codeKey, 'default', {}, new InboxPipe(inbox))) as unknown as RpcStub<RpcPipe>;
  } catch (e) {
    throw new CordonError(`worker ${workerId} cannot be called: ${(e as Error).message}`.slice(0, 1000), { status: 502 });
  }
  const transport: RpcTransport = {
    send: (message) => {
      void theirs.send(message).catch((e: Error) => inbox.fail(e));
    },
    receive: () => inbox.receive(),
    abort: (reason) => {
      inbox.fail(reason instanceof Error ? reason : new Error(String(reason)));
    },
  };
  const session = new RpcSession<{ fetch(request: Request): Response }>(transport, undefined, {
    limits: { maxDepth: DEFAULT_QUOTAS.maxDepth, maxMessageSize: MAX_MESSAGE },
  });
  const main = session.getRemoteMain();
  try {
    const response = (await main.fetch(new Request(request.url, { method: request.method, headers: request.headers, body }))) as unknown as Response;
    const out = await bounded(response.body, "the worker's response body");
    return new Response(out, { status: response.status, statusText: response.statusText, headers: response.headers });
  } catch (e) {
    if (e instanceof CordonError) throw e;
    throw new CordonError(`worker ${workerId} failed: ${(e as Error).message}`.slice(0, 1000), { status: 502 });
  } finally {
    main[Symbol.dispose]();
    void Promise.resolve(theirs.close('the call is over'))
      .catch(() => {})
      .finally(() => theirs[Symbol.dispose]());
  }
}
