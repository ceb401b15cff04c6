/**
 * A service outside the mesh calling a worker: `cordon.workers(name).fetch(request)` and the methods
 * of `cordon.workers(name).getEntrypoint(entrypoint?)`. The call goes to the worker's entrypoint over
 * Workers RPC — the same path a service binding takes (its cordon's sandbox serves it, under its
 * limits) — not through the public ingress. The supervisor is the caller end of the session: it speaks
 * capnweb over the pipe, with the mesh's limits on what the worker may send back.
 *
 * A fetch's session is closed once the response is read (bounded like a request's), and so is a method
 * call's once its result is in — unless the result holds something by reference (an RpcTarget, a
 * function of the worker's): then the session lasts for the client to use it, at most the worker's
 * wall-time limit (a session is an invocation of the worker, as a service binding's lasts at most its
 * caller's request). It is registered with the live Workers RPC sessions (undeploy, quarantine revoke
 * it) and with the connection (a revoked token, a closed connection end it).
 */
import { RpcSession, RpcTarget, type RpcStub, type RpcTransport } from 'capnweb';
import { CordonError } from '../../../lib/errors.ts';
import { Inbox } from '../../../lib/rpc/channel.ts';
import { DEFAULT_QUOTAS } from '../../../lib/rpc/quotas.ts';
import { MAX_BODY } from '../../../schemas/http.ts';
import type { RpcPipe } from '../../../schemas/service-bindings.ts';
import type { WorkerRunner } from '../../../schemas/services.ts';
import type { CodeStore } from '../store.ts';
import type { ServiceSessions, SessionEnd } from '../service-bindings.ts';

export interface WorkerFetchDeps {
  store: Pick<CodeStore, 'worker' | 'bundleForKey'>;
  runner(cordon: string): RpcStub<WorkerRunner> | undefined;
  sessions: ServiceSessions;
}

const MAX_MESSAGE = (DEFAULT_QUOTAS.maxMessage / 4) * 3;

/** Our end of the pipe: what the worker's end sends arrives in the inbox. */
class InboxPipe extends RpcTarget implements RpcPipe {
  readonly #inbox: Inbox;
  readonly #ended: () => void;
  constructor(inbox: Inbox, ended: () => void) {
    super();
    this.#inbox = inbox;
    this.#ended = ended;
  }
  async send(message: unknown): Promise<void> {
    if (typeof message !== 'string' || message.length > MAX_MESSAGE) return this.#fail('the worker sent a malformed RPC message');
    this.#inbox.push(message);
  }
  async close(reason: unknown): Promise<void> {
    this.#fail(typeof reason === 'string' ? reason.slice(0, 500) : 'closed');
  }
  [Symbol.dispose](): void {
    this.#fail('the worker released the session');
  }
  #fail(reason: string): void {
    this.#inbox.fail(new Error(reason));
    this.#ended();
  }
}

/** A session to one entrypoint of a worker, the supervisor as the caller end. */
export class WorkerSession {
  readonly main: RpcStub<Record<string, (...args: unknown[]) => unknown>>;
  readonly #inbox: Inbox;
  readonly #theirs: RpcStub<RpcPipe>;
  #ended = false;
  readonly #whenEnded: (() => void)[] = [];

  private constructor(inbox: Inbox, theirs: RpcStub<RpcPipe>) {
    this.#inbox = inbox;
    this.#theirs = theirs;
    const transport: RpcTransport = {
      send: (message) => {
        void theirs.send(message).catch((e: Error) => this.close(e.message));
      },
      receive: () => inbox.receive(),
      abort: (reason) => this.close(reason instanceof Error ? reason.message : String(reason)),
    };
    const session = new RpcSession<Record<string, (...args: unknown[]) => unknown>>(transport, undefined, {
      limits: { maxDepth: DEFAULT_QUOTAS.maxDepth, maxMessageSize: MAX_MESSAGE },
    });
    this.main = session.getRemoteMain();
  }

  static async open(deps: WorkerFetchDeps, workerId: string, entrypoint: string, props: Record<string, unknown>): Promise<WorkerSession> {
    const worker = deps.store.worker(workerId);
    if (!worker) throw new CordonError(`no worker ${workerId}`, { status: 404 });
    const runner = deps.runner(worker.cordon);
    if (!runner) throw new CordonError(`worker ${workerId}'s cordon ${worker.cordon} is not connected; retry`, { status: 503 });
    const inbox = new Inbox();
    let opened: WorkerSession | undefined;
    let endedEarly = false;
    const ours = new InboxPipe(inbox, () => (opened ? opened.#end() : (endedEarly = true)));
    let theirs: RpcStub<RpcPipe>;
    try {
      theirs = (await runner.serve(worker.codeKey, entrypoint, props, ours)) as unknown as RpcStub<RpcPipe>;
    } catch (e) {
      throw new CordonError(`worker ${workerId} cannot be called: ${(e as Error).message}`.slice(0, 1000), { status: 502 });
    }
    opened = new WorkerSession(inbox, theirs);
    if (endedEarly) opened.#end();
    return opened;
  }

  /** `fn` runs once the session has ended (either end, or close()). */
  whenEnded(fn: () => void): void {
    if (this.#ended) fn();
    else this.#whenEnded.push(fn);
  }

  /** The session as the registry of live sessions holds it (both its ends are closed by close()). */
  ends(): [SessionEnd, SessionEnd] {
    const end: SessionEnd = { onEnd: () => {}, close: async (reason) => this.close(reason) };
    this.whenEnded(() => end.onEnd());
    return [end, end];
  }

  close(reason: string): void {
    if (this.#ended) return;
    this.#inbox.fail(new Error(reason));
    void Promise.resolve(this.#theirs.close(reason))
      .catch(() => {})
      .finally(() => this.#theirs[Symbol.dispose]());
    this.#end();
  }

  #end(): void {
    if (this.#ended) return;
    this.#ended = true;
    for (const fn of this.#whenEnded.splice(0)) fn();
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
  // The body is read here, bounded, so what crosses into the worker is bytes, not a stream held open by the client.
  const body = await bounded(request.body, 'the request body');
  const session = await WorkerSession.open(deps, workerId, 'default', {});
  try {
    const response = (await session.main.fetch!(new Request(request.url, { method: request.method, headers: request.headers, body }))) as Response;
    const out = await bounded(response.body, "the worker's response body");
    return new Response(out, { status: response.status, statusText: response.statusText, headers: response.headers });
  } catch (e) {
    if (e instanceof CordonError) throw e;
    throw new CordonError(`worker ${workerId} failed: ${(e as Error).message}`.slice(0, 1000), { status: 502 });
  } finally {
    session.main[Symbol.dispose]();
    session.close('the call is over');
  }
}

/** What a method call's session is opened for. */
export interface WorkerCall {
  workerId: string;
  /** The tenant calling (the client's), for the registry of live sessions. */
  tenant: string;
  entrypoint: string;
  props: Record<string, unknown>;
  method: string;
  args: unknown[];
  /** Told of the session, to end it with the connection. */
  opened(session: Pick<WorkerSession, 'close' | 'whenEnded'>): void;
}

/** A method of a worker's entrypoint, called once on a session of its own (see the top of this file). */
export async function callWorker(deps: WorkerFetchDeps, call: WorkerCall): Promise<unknown> {
  const worker = deps.store.worker(call.workerId);
  const session = await WorkerSession.open(deps, call.workerId, call.entrypoint, call.props);
  deps.sessions.add(call.workerId, worker!.cordon, call.tenant, session.ends());
  call.opened(session);
  let result: unknown;
  try {
    result = await session.main[call.method]!(...call.args);
  } catch (e) {
    session.close('the call is over');
    throw new CordonError(`worker ${call.workerId} failed: ${(e as Error).message}`.slice(0, 1000), { status: 502 });
  }
  if (!holdsReferences(result)) {
    session.close('the call is over');
    return result;
  }
  const wallMs = deps.store.bundleForKey(worker!.codeKey)?.bundle.limits.wallMs ?? 0;
  const timer = setTimeout(
    () => session.close(`what ${call.workerId} returned by reference lasts at most its wall-time limit (${wallMs} ms)`),
    Math.max(0, wallMs - 1000),
  );
  timer.unref();
  session.whenEnded(() => clearTimeout(timer));
  return result;
}

/** Whether a call's result holds a reference into its session (capnweb's stubs are functions). */
function holdsReferences(value: unknown, depth = 0): boolean {
  if (typeof value === 'function') return true;
  if (value === null || typeof value !== 'object' || ArrayBuffer.isView(value) || depth > DEFAULT_QUOTAS.maxDepth) return false;
  return Object.values(value).some((v) => holdsReferences(v, depth + 1));
}
