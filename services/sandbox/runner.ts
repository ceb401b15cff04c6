/**
 * What the supervisor has this sandbox run outside requests, in the worker version a code key
 * unlocks: one run of a workflow instance (`run(event, step)`, its step calls going back to the
 * engine through the `step` capability handed over for this run alone), and scheduled() for a cron.
 */
import { RpcTarget, type RpcStub } from 'capnweb';
import { z } from 'zod';
import { check } from '../../lib/rpc/validate.ts';
import { SpanKind } from '@opentelemetry/api';
import { annotateSpan, inSpan } from '../../lib/telemetry.ts';
import { ClassName, type StepApi } from '../../schemas/workflows.ts';
import type { WorkerRunner } from '../../schemas/services.ts';
import { CodeKey } from '../../schemas/worker.ts';
import { QUEUE_CONTENT_TYPES, QUEUE_LIMITS, QueueOutcome } from '../../schemas/queues.ts';
import { ResourceName } from '../../schemas/resources.ts';
import { WorkerError, type PipePeer } from './runtime/index.ts';
import { supervisorCalls } from './call-gate.ts';
import { ForwardedCapabilities, StepForwarder } from './capabilities.ts';
import { FETCH_HANDLE } from '../../schemas/capabilities.ts';
import { BindingProps, EntrypointName, type RpcPipe } from '../../schemas/service-bindings.ts';
import { openPipe, PipeTarget, remotePipe } from './pipe-link.ts';
import { entryHooks, logBatches, type SandboxDeps } from './port.ts';
import type { LoadedWorkerHost, ParentLinkApi } from '../../schemas/loaded-cordon.ts';
import type { ParentSide } from './runtime/worker-loader.ts';
import { Limits } from '../../schemas/worker.ts';
import { MAX_OBJECT_PAYLOAD, ObjectIdHex, ObjectName, type ObjectStorageApi } from '../../schemas/durable-objects.ts';
import { RemoteFacets } from './facets.ts';

type Outcome = Awaited<ReturnType<WorkerRunner['run']>>;
const Outcome = z.union([
  z.object({ outcome: z.literal('complete'), output: z.string().nullable() }),
  z.object({ outcome: z.literal('errored'), name: z.string(), message: z.string() }),
  z.object({ outcome: z.literal('suspended') }),
]);

const Messages = z
  .array(
    z.object({
      id: z.string().max(64),
      timestamp: z.number(),
      attempts: z.number().int().min(1),
      contentType: z.enum(QUEUE_CONTENT_TYPES),
      body: z.instanceof(Uint8Array),
    }),
  )
  .min(1)
  .max(QUEUE_LIMITS.batchMessages);

/** A parent as the supervisor names it to its loaded cordon (schemas/loaded-cordon.ts, RemoteParent). */
const RemoteParent = z.strictObject({
  ref: z.string().max(300),
  workerId: z.string().max(130),
  version: z.string().max(128),
  limits: Limits,
});
const LoaderBinding = z.string().regex(/^[A-Za-z_$][A-Za-z0-9_$]{0,63}$/, 'a binding name');
const Token = z
  .string()
  .regex(/^(id|anon):/, 'a Dynamic Worker token')
  .max(300);
/** A facet of a loaded class as the supervisor names it (supervisor/objects/loaded-facets.ts). */
const HostedFacet = z.strictObject({
  key: z.string().max(600),
  className: ClassName.or(z.literal('default')),
  id: ObjectIdHex,
  name: ObjectName.nullable(),
});
const FacetCall = z.strictObject({
  kind: z.enum(['fetch', 'rpc', 'websocket']),
  method: z.string().min(1).max(256),
  payload: z.string().max(MAX_OBJECT_PAYLOAD),
});

/** The way back into a parent in another cordon: its link, the one capability the supervisor made for this load. */
function throughLink(link: RpcStub<ParentLinkApi>, log: SandboxDeps['log']): ParentSide {
  const dropped = (e: Error) => log.debug('a loaded Worker’s report to its parent was dropped', { error: e.message });
  // fetch() and connect() as the parent's (the link refuses both unless the outbound is inherited); the sockets
  // it opens are kept here under handles, as a worker's own are (capabilities.ts).
  const outbound = new ForwardedCapabilities(
    { [FETCH_HANDLE]: { fetch: (request: unknown) => link.fetch(request), connect: (target: never, options: never) => link.openSocket(target, options) } },
    [],
  );
  return {
    connect: (name, toIsolate) => openPipe(toIsolate, (mine) => link.connect(name, mine)),
    outbound: (handle, method, args) => outbound.call(handle, method, args),
    log: (entries) => {
      for (const batch of logBatches(entries)) void supervisorCalls.run(() => link.log(batch)).catch(dropped);
    },
    events: {
      created: () => void supervisorCalls.run(() => link.created()).catch(dropped),
      limitHit: (kind) => void supervisorCalls.run(() => link.limitHit(kind)).catch(dropped),
    },
    release: () => link[Symbol.dispose](),
  };
}

export class Runner extends RpcTarget implements WorkerRunner, LoadedWorkerHost {
  readonly #deps: SandboxDeps;
  /** As a loaded cordon: facets of other cordons' objects whose class is a Worker held here. */
  readonly #facets = new RemoteFacets();

  constructor(deps: SandboxDeps) {
    super();
    this.#deps = deps;
  }

  async scheduled(codeKey: unknown, cron: unknown, scheduledTime: unknown): Promise<{ ok: true } | { ok: false; error: string }> {
    const key = check(CodeKey, codeKey, 'code key');
    const expr = check(z.string().max(100), cron, 'cron');
    const time = check(z.number().int().min(0), scheduledTime, 'scheduled time');
    const { bundle, capabilities } = await this.#deps.bundles.get(key);
    const leave = this.#deps.recorder.enter(bundle.workerId);
    try {
      await this.#deps.runtime.runScheduled(bundle, expr, time, entryHooks(this.#deps, key, capabilities));
      return { ok: true };
    } catch (e) {
      if (e instanceof WorkerError) return { ok: false, error: e.detail === e.message ? e.message : `${e.message}: ${e.detail}` };
      throw e;
    } finally {
      leave();
    }
  }

  /** In a span under the supervisor's batch span (the call carries it), as a workflow run is. */
  queue(codeKey: unknown, queue: unknown, messages: unknown): Promise<QueueOutcome> {
    return inSpan('sandbox queue batch', SpanKind.SERVER, {}, () => this.#queue(codeKey, queue, messages));
  }

  async #queue(codeKey: unknown, queue: unknown, messages: unknown): Promise<QueueOutcome> {
    const key = check(CodeKey, codeKey, 'code key');
    const name = check(ResourceName, queue, 'queue');
    const batch = check(Messages, messages, 'messages');
    const { bundle, capabilities } = await this.#deps.bundles.get(key);
    const leave = this.#deps.recorder.enter(bundle.workerId);
    try {
      return check(
        QueueOutcome,
        JSON.parse(await this.#deps.runtime.runQueue(bundle, name, batch, entryHooks(this.#deps, key, capabilities))),
        'queue outcome',
      );
    } catch (e) {
      // The handler broke a limit (or the worker failed to load): the batch failed, as a throw would.
      if (e instanceof WorkerError)
        return { error: e.detail === e.message ? e.message : `${e.message}: ${e.detail}`, acks: [], retries: [], batch: null, batchDelay: null };
      throw e;
    } finally {
      leave();
    }
  }

  /**
   * Workers RPC: a session serving an entrypoint of the worker the code key unlocks (a key of this
   * cordon: the supervisor chose it; the caller's code never names it). A failure to serve says why.
   */
  async serve(codeKey: unknown, entrypoint: unknown, props: unknown, caller: RpcStub<RpcPipe>): Promise<RpcPipe> {
    const key = check(CodeKey, codeKey, 'code key');
    const name = check(EntrypointName, entrypoint, 'entrypoint');
    const ctxProps = check(BindingProps, props, 'props');
    if (typeof caller?.dup !== 'function') throw new TypeError('caller must be a capability');
    const { bundle, capabilities } = await this.#deps.bundles.get(key);
    // Params are released when this call returns: the caller's end is kept for the session's life.
    const callerEnd = caller.dup();
    let end: PipePeer;
    const peer = remotePipe(callerEnd, (reason) => end?.close(reason));
    try {
      end = await this.#deps.runtime.serve(bundle, name, ctxProps, peer, entryHooks(this.#deps, key, capabilities));
    } catch (e) {
      peer.close('not served');
      if (e instanceof WorkerError) throw new Error(e.detail === e.message ? e.message : `${e.message}: ${e.detail}`);
      throw e;
    }
    return new PipeTarget(end);
  }

  /**
   * As the loaded cordon of a parent in another cordon (docs/dynamic-workers.md, "A stricter cordon for
   * loaded Workers"): load one of its Workers here. What the parent is, and the link back, come from the
   * supervisor; the code is checked here as in the parent's own process.
   */
  async loadChild(parent: unknown, binding: unknown, token: unknown, code: unknown, link: RpcStub<ParentLinkApi>): Promise<void> {
    const p = check(RemoteParent, parent, 'parent');
    const b = check(LoaderBinding, binding, 'binding');
    const t = check(Token, token, 'token');
    if (typeof link?.dup !== 'function') throw new TypeError('link must be a capability');
    const leave = this.#deps.recorder.enter(p.workerId);
    try {
      await this.#deps.runtime.remoteParent(p.ref, p)!.load(b, t, code, throughLink(link.dup(), this.#deps.log));
    } finally {
      leave();
    }
  }

  async childHeld(parentRef: unknown, binding: unknown, token: unknown): Promise<boolean> {
    const ref = check(RemoteParent.shape.ref, parentRef, 'parent');
    return this.#deps.runtime.remoteParent(ref)?.heldChild(check(LoaderBinding, binding, 'binding'), check(Token, token, 'token')) ?? false;
  }

  /** A session from a parent in another cordon to an entrypoint of a Worker held here for it. */
  async serveChild(parentRef: unknown, target: unknown, caller: RpcStub<RpcPipe>): Promise<RpcPipe> {
    const ref = check(RemoteParent.shape.ref, parentRef, 'parent');
    const json = check(z.string().max(2 * 1024 * 1024), target, 'target');
    if (typeof caller?.dup !== 'function') throw new TypeError('caller must be a capability');
    const loaders = this.#deps.runtime.remoteParent(ref);
    if (!loaders) throw new Error('the Dynamic Worker was unloaded; call it again to load it afresh');
    const callerEnd = caller.dup();
    let end: PipePeer;
    const peer = remotePipe(callerEnd, (reason) => end?.close(reason));
    try {
      end = await loaders.intoChild(json, peer);
    } catch (e) {
      peer.close('not served');
      throw e;
    }
    return new PipeTarget(end);
  }

  /** As a loaded cordon: one call on a facet whose class is one of a held Worker's (its storage comes from the supervisor). */
  async childObjectCall(
    parentRef: unknown,
    binding: unknown,
    token: unknown,
    facet: unknown,
    storage: RpcStub<ObjectStorageApi>,
    call: unknown,
  ): Promise<string> {
    const ref = check(RemoteParent.shape.ref, parentRef, 'parent');
    const place = { binding: check(LoaderBinding, binding, 'binding'), token: check(Token, token, 'token') };
    const { key, ...object } = check(HostedFacet, facet, 'facet');
    const c = check(FacetCall, call, 'facet call');
    const loaders = this.#deps.runtime.remoteParent(ref);
    if (!loaders) throw new Error('the Dynamic Worker was unloaded; call the facet again to load it afresh');
    const leave = this.#deps.recorder.enter(ref.slice(0, ref.lastIndexOf('@')));
    try {
      return await this.#facets.call(
        key,
        storage,
        place,
        {
          call: (p, o, cl) => (p === null ? Promise.reject(new Error('no such facet class')) : loaders.objectCall(p.binding, p.token, o, cl)),
          drop: (p, k) => p !== null && loaders.objectDrop(p.binding, p.token, k),
          sockets: (p, k) => loaders.facetSockets(p.binding, p.token, k),
        },
        object,
        c,
      );
    } finally {
      leave();
    }
  }

  async childObjectDrop(parentRef: unknown, binding: unknown, token: unknown, key: unknown): Promise<void> {
    check(RemoteParent.shape.ref, parentRef, 'parent');
    check(LoaderBinding, binding, 'binding');
    check(Token, token, 'token');
    this.#facets.drop(check(HostedFacet.shape.key, key, 'facet key'));
  }

  /** In a span under the engine's run span (the call carries it), so the sandbox's part of a run shows in the instance's trace. */
  run(codeKey: unknown, className: unknown, event: unknown, step: RpcStub<StepApi>): Promise<Outcome> {
    return inSpan('sandbox workflow run', SpanKind.SERVER, {}, () => this.#run(codeKey, className, event, step));
  }

  async #run(codeKey: unknown, className: unknown, event: unknown, step: RpcStub<StepApi>): Promise<Outcome> {
    const key = check(CodeKey, codeKey, 'code key');
    const cls = check(ClassName, className, 'class name');
    const ev = check(z.string().max(2 * 1024 * 1024), event, 'event');
    const steps = step.dup();
    try {
      const { bundle, capabilities } = await this.#deps.bundles.get(key);
      annotateSpan({ workerId: bundle.workerId, version: bundle.version });
      const leave = this.#deps.recorder.enter(bundle.workerId);
      try {
        const out = await this.#deps.runtime.runWorkflow(bundle, cls, ev, new StepForwarder(steps), entryHooks(this.#deps, key, capabilities));
        return check(Outcome, JSON.parse(out), 'workflow outcome') as Outcome;
      } finally {
        leave();
      }
    } catch (e) {
      // A broken limit (or a worker that failed to load) ends the run as an error of the instance, as an
      // exception in run() would; anything else (the supervisor away) is thrown, and the engine tries again.
      if (e instanceof WorkerError) return { outcome: 'errored', name: 'Error', message: e.detail === e.message ? e.message : `${e.message}: ${e.detail}` };
      throw e;
    } finally {
      steps[Symbol.dispose]();
    }
  }
}
