/** The ingress process: the only public listener. Routes requests to the sandbox of the worker's cordon. */
// First: it checks every setting before the modules below, some of which read theirs as they load.
import { startService } from '../../lib/service.ts';
import { CordonError } from '../../lib/errors.ts';
import { createServer, type IncomingMessage, type Server, type ServerOptions, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { loadTls } from './tls.ts';
import { context, propagation, ROOT_CONTEXT, SpanKind } from '@opentelemetry/api';
import { annotateSpan, inSpan, traceAttributes } from '../../lib/telemetry.ts';
import { MeshClient } from '../../lib/mesh.ts';
import { ReplicaClients } from '../../lib/replicas.ts';
import { configHash, reportDrift } from '../../lib/drift.ts';
import type { Route } from '../../schemas/routes.ts';
import { RouteFollower } from './route-follower.ts';
import type { SandboxApi, SupervisorForIngress } from '../../schemas/services.ts';
import { MAX_HEADERS, type WireRequest, type WireResponse } from '../../schemas/http.ts';
import { webSocketUpgrades } from './websockets.ts';
import {
  ADDED_HEADERS,
  bodyStream,
  bodyTooLarge,
  readBody,
  requestIdOf,
  responseProblem,
  streamsBody,
  toWireRequest,
  writeError,
  writeWireResponse,
} from './forward.ts';
import { parseHost, type RequestHost } from './host.ts';
import { RequestTally } from '../../lib/request-stats.ts';
import { callSandbox } from './fast-link.ts';

/** How often ingress reports what it served to the supervisor (request rate, errors, latency per worker). */
const STATS_REPORT_MS = 5000;

/** Methods safe to send twice when a sandbox died before answering. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);

/** The pause before an idempotent request's next attempt, times the attempts made (0.1, 0.2, 0.3 s). */
const RETRY_PAUSE_MS = 100;

await startService('ingress', 'ingress', async ({ config, settings, log, node, onStop }) => {
  // The settings this process started with (the config file may change under it: that is drift).
  const loadedConfig = configHash(settings);
  /** A request body that streams may be this long in all. */
  const maxStreamedRequest = settings.ingress.maxRequestMb * 1024 * 1024;
  /** The answer to a streamed body that went over that: the same 413 as one read in full. */
  const tooLarge = (res: ServerResponse, requestId: string) => {
    const e = bodyTooLarge(maxStreamedRequest);
    return writeError(res, e.status, e.message, requestId);
  };
  const routes = new RouteFollower(log, () => supervisor.current?.remote.routingTable());
  const supervisor = new MeshClient<SupervisorForIngress>(node, 'supervisor', 'supervisor', {
    async onSession(session) {
      routes.load(await session.remote.subscribeRoutes(routes.listener()));
    },
  });
  onStop(() => supervisor.close());
  onStop(
    reportDrift(
      (state) => supervisor.current?.remote.report(state),
      () => ({ config: loadedConfig, routes: routes.digest }),
      settings.mesh.driftMs,
    ),
  );

  // Every live sandbox process of a cordon gets a session; each request goes to one of them.
  const sandboxes = new Map<string, ReplicaClients<SandboxApi>>();
  const sandboxFor = (cordon: string) => {
    let c = sandboxes.get(cordon);
    if (!c) sandboxes.set(cordon, (c = new ReplicaClients<SandboxApi>(node, `sandbox-${cordon}`, 'sandbox', { expectName: cordon })));
    return c;
  };
  onStop(() => sandboxes.forEach((c) => c.close()));

  /**
   * Which worker a request is for (by Host and path), with its request id; or why none: a Host that
   * is not a host, or a target that is not a path (400), or no route (404).
   */
  function routeOf(req: IncomingMessage): { requestId: string } & ({ route: Route; host: RequestHost } | { refusal: [number, string] }) {
    const requestId = requestIdOf(req);
    const host = parseHost(req.headers.host);
    if (!host) return { requestId, refusal: [400, 'The Host header must be a host name or an IP address, with an optional port.'] };
    const target = req.url ?? '/';
    if (!target.startsWith('/')) return { requestId, refusal: [400, 'The request target must be a path.'] };
    const query = target.indexOf('?');
    const path = query < 0 ? target : target.slice(0, query);
    const route = routes.table.match(host.name, path)?.value;
    if (!route) return { requestId, refusal: [404, `No worker is routed for ${host.authority}${path}.`] };
    return { requestId, route, host };
  }
  /**
   * One call on one replica of the route's cordon, never one of `tried` while another is live; the
   * replica used is added to `tried` (a call that is retried has one). A request whose body is in hand
   * takes the fast path (fast-link.ts).
   */
  const callReplica = async (route: Route, wire: WireRequest, tried?: Set<string>) => {
    const replicas = sandboxFor(route.cordon);
    const picked = replicas.pickNow(tried) ?? (await replicas.pick(5000, tried));
    tried?.add(picked.instance);
    try {
      return await callSandbox(picked.session, route.target, wire);
    } finally {
      picked.done();
    }
  };

  async function handle(req: IncomingMessage, res: ServerResponse, routed: { workerId?: string }): Promise<void> {
    const found = routeOf(req);
    const { requestId } = found;
    if ('refusal' in found) return writeError(res, ...found.refusal, requestId);
    const { route, host } = found;
    routed.workerId = route.target.workerId;
    annotateSpan({ workerId: route.target.workerId, version: route.target.version, cordon: route.cordon, route: route.pattern });
    // The sandbox refuses more (ingress adds ADDED_HEADERS of its own): the client's error, never a sandbox failure to retry.
    if (req.rawHeaders.length / 2 > MAX_HEADERS - ADDED_HEADERS)
      return writeError(res, 431, `Too many request headers: at most ${MAX_HEADERS - ADDED_HEADERS}.`, requestId);
    const streaming = streamsBody(req);
    let body: Buffer[] | null = null;
    let incoming: ReturnType<typeof bodyStream> | undefined;
    if (streaming) incoming = bodyStream(req, maxStreamedRequest);
    else {
      try {
        body = await readBody(req);
      } catch (e) {
        if (e instanceof CordonError) return writeError(res, e.status, e.message, requestId);
        throw e;
      }
    }
    const wire = toWireRequest(req, host.authority, requestId, null, settings.ingress.colo);
    if (body) wire.bodyParts = body;
    // A streamed body can be sent once only: such a request is never retried. An idempotent one is
    // retried on another replica of the cordon where there is one (a replica that died took it down),
    // after a pause that grows: a request fails at once on a link that just broke, and the sessions a
    // lost NATS node or a dead replica took with it take a moment to be made again or dropped.
    const attempts = IDEMPOTENT.has(wire.method) && !streaming ? 4 : 1;
    const tried = new Set<string>();
    let response: WireResponse | undefined;
    let answered = false;
    for (let attempt = 1; !answered; attempt++) {
      try {
        response = await callReplica(route, incoming ? { ...wire, stream: incoming.stream } : wire, tried);
        answered = true;
      } catch (e) {
        if (incoming?.overLimit()) return tooLarge(res, requestId);
        log.warn('sandbox call failed', { requestId, cordon: route.cordon, attempt, error: (e as Error).message });
        if (attempt >= attempts) return writeError(res, 502, `The worker's sandbox failed before it answered.`, requestId);
        await new Promise((r) => setTimeout(r, RETRY_PAUSE_MS * attempt));
      }
    }
    if (incoming?.overLimit()) return tooLarge(res, requestId);
    // The sandbox has answered, so the worker ran: from here nothing is retried, whatever fails.
    const problem = responseProblem(response);
    if (problem || !response) {
      if (response?.stream instanceof ReadableStream) void response.stream.cancel().catch(() => {});
      log.warn('the sandbox answered with a response that cannot be sent', { requestId, cordon: route.cordon, worker: route.target.workerId, problem });
      return writeError(res, 502, `The worker's response could not be sent: ${problem}.`, requestId);
    }
    try {
      await writeWireResponse(res, response, requestId, wire.method);
    } catch (e) {
      log.warn('writing the response failed', { requestId, cordon: route.cordon, worker: route.target.workerId, error: (e as Error).message });
      writeError(res, 502, `The worker's response could not be sent.`, requestId);
    }
  }

  // The dashboard's charts: counted here, reported to the supervisor in one batch every few seconds.
  const tally = new RequestTally();
  const reporting = setInterval(() => {
    const batch = tally.drain();
    if (batch.length) supervisor.current?.remote.requestStats(batch).catch((e: Error) => log.warn('request stats report failed', { error: e.message }));
  }, STATS_REPORT_MS);
  onStop(() => clearInterval(reporting));

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    const started = performance.now();
    const routed: { workerId?: string } = {};
    // A client's traceparent is honoured; the request's span is the parent of every hop after it.
    const parent = propagation.extract(ROOT_CONTEXT, req.headers);
    // No path or query: they can carry a tenant's tokens, and traces leave the mesh. The route says where it went.
    const traced = () =>
      inSpan('ingress request', SpanKind.SERVER, { 'http.request.method': req.method ?? '' }, (span) =>
        handle(req, res, routed).finally(() => {
          span.setAttributes(traceAttributes({ status: res.statusCode }));
          if (routed.workerId) tally.record(routed.workerId, res.statusCode, performance.now() - started);
        }),
      );
    // Without a traceparent, the context to run in is the root one, already active: no switch.
    const run = parent === ROOT_CONTEXT && context.active() === ROOT_CONTEXT ? traced() : context.with(parent, traced);
    run.catch((e: Error) => {
      log.error('request failed', { error: e });
      writeError(res, 500, 'Internal error in ingress.', requestIdOf(req));
    });
  };
  // Slow clients (slowloris) are cut off: headers must arrive within headersTimeout, the whole
  // request within requestTimeout, and Node checks both every second rather than every 30 s.
  const limits: ServerOptions = {
    headersTimeout: settings.ingress.headersTimeoutMs,
    requestTimeout: settings.ingress.requestTimeoutMs,
    connectionsCheckingInterval: 1000,
    maxHeaderSize: 32 * 1024,
    keepAliveTimeout: 5000,
  };
  const host = settings.ingress.httpHost;
  const listen = (server: Server, port: number) =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
  const onUpgrade = webSocketUpgrades({
    log,
    maxSockets: settings.ingress.maxWebsockets,
    route(req) {
      const found = routeOf(req);
      if ('refusal' in found) return { status: found.refusal[0], text: `${found.refusal[1]}\nrequest id: ${found.requestId}\n` };
      return {
        wire: toWireRequest(req, found.host.authority, found.requestId, null, settings.ingress.colo),
        handle: (wire) => callReplica(found.route, wire),
      };
    },
  });
  const server = createServer(limits, onRequest).on('upgrade', onUpgrade);
  await listen(server, config.httpPort);
  const tls = await loadTls(config.dataDir);
  const secure = createTlsServer({ ...limits, cert: tls.cert, key: tls.key, SNICallback: tls.SNICallback }, onRequest).on('upgrade', onUpgrade);
  await listen(secure, config.httpsPort);
  log.info('listening', { http: config.httpPort, https: config.httpsPort, certificate: tls.source });
  onStop(() => new Promise<void>((r) => secure.close(() => r())));
  onStop(() => new Promise<void>((r) => server.close(() => r())));
});
