/**
 * The client RPC endpoint: capnweb over a WebSocket at `/rpc` on the admin listener (TLS when it has
 * it), for services outside the mesh (`cordon/client`). The token is the admin API's, checked the same
 * way (tokens.ts): in the upgrade's `Authorization: Bearer …` header (refused with 401 before any
 * WebSocket exists), or else as the first message, `Bearer …` (what a browser can send). Each
 * connection gets its own membrane; revoking the token revokes every capability obtained with it on
 * every connection at once and closes them. Quotas bound each session as inside the mesh, and a
 * connection that breaks the protocol or a quota is closed alone.
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { CordonError } from '../../../lib/errors.ts';
import type { Logger } from '../../../lib/log.ts';
import { Membrane } from '../../../lib/rpc/membrane.ts';
import { DEFAULT_QUOTAS, type Quotas } from '../../../lib/rpc/quotas.ts';
import { MeshSession } from '../../../lib/rpc/session.ts';
import { CLOSE, WebSocketChannel } from '../../../lib/rpc/websocket.ts';
import type { AuditLog } from '../audit.ts';
import type { Principal, TokenStore } from '../tokens.ts';
import type { WorkflowEngine } from '../workflows/engine.ts';
import { CordonMain, type Caller, type WorkerAccess } from './caps.ts';
import type { Channel } from '../../../lib/rpc/channel.ts';
import type { KeyedChannel } from '../../../lib/rpc/index.ts';
import { checkProof, CLIENT_RPC_ENDPOINT, parseProof, proofHello } from '../../../lib/rpc/client-proof.ts';

export const RPC_PATH = '/rpc';

/** A client's session is smaller than a mesh peer's: values are at most 1 MiB, a client needs few capabilities at once. */
export const CLIENT_QUOTAS: Quotas = { maxMessage: 4 * 1024 * 1024, maxDepth: DEFAULT_QUOTAS.maxDepth, maxExports: 1_000, maxCallsInFlight: 100 };

/** How long a connection may take to send its token when the upgrade carried none. */
const AUTH_TIMEOUT_MS = 5_000;
/**
 * Connections waiting for their token at once: each may hold up to one frame of `maxMessage` in `ws`
 * before the 1 KiB check sees it, so their number is what bounds that memory. More wait their turn
 * by being refused (close 1013, try again later); an authenticated one is not counted.
 */
export const MAX_UNAUTHENTICATED = 64;
/** The tenant an operator's (unbound) token acts in until it picks one with `tenant(name)`. */
const DEFAULT_TENANT = 'default';

export interface RpcEndpointDeps {
  tokens: TokenStore;
  audit: AuditLog;
  workflows: WorkflowEngine;
  workers: WorkerAccess;
  log: Logger;
  quotas?: Quotas;
}

const bearer = (value: string | undefined) => /^Bearer (\S{1,256})$/.exec(value ?? '')?.[1];

export class RpcEndpoint {
  readonly #deps: RpcEndpointDeps;
  readonly #quotas: Quotas;
  readonly #wss: WebSocketServer;
  /** Live connections by token id: a revocation closes each. */
  readonly #byToken = new Map<string, Set<(reason: string) => void>>();
  readonly #stopRevocations: () => void;
  #unauthenticated = 0;

  constructor(deps: RpcEndpointDeps) {
    this.#deps = deps;
    this.#quotas = deps.quotas ?? CLIENT_QUOTAS;
    // perMessageDeflate off: a compressed frame could inflate past the limit it was checked against.
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: this.#quotas.maxMessage, perMessageDeflate: false });
    this.#stopRevocations = deps.tokens.onRevoke((tokenId) => {
      for (const revoke of this.#byToken.get(tokenId) ?? []) revoke(`token ${tokenId} was revoked`);
    });
  }

  /** Serve `/rpc` upgrades of the admin server; any other upgrade is refused. */
  attach(server: Server): void {
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.#upgrade(req, socket, head));
  }

  close(): void {
    this.#stopRevocations();
    for (const ws of this.#wss.clients) ws.terminate();
    this.#wss.close();
  }

  #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    const path = new URL(req.url ?? '/', 'http://admin').pathname;
    if (path !== RPC_PATH) return refuse(socket, 404, `no WebSocket endpoint at ${path}; the RPC endpoint is ${RPC_PATH}`);
    let who: Principal | undefined;
    if (req.headers.authorization !== undefined) {
      who = this.#authenticate(bearer(req.headers.authorization), 'header');
      if (!who) return refuse(socket, 401, 'missing or invalid bearer token');
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => void this.#serve(ws, who, req.socket.remoteAddress ?? 'unknown'));
  }

  #authenticate(token: string | undefined, how: string): Principal | undefined {
    const who = token ? this.#deps.tokens.authenticate(token) : undefined;
    if (!who)
      this.#deps.audit.append({
        actor: 'anonymous',
        action: 'rpc.connect',
        target: RPC_PATH,
        outcome: 'denied',
        detail: { reason: `bad or missing token (${how})` },
      });
    return who;
  }

  async #serve(ws: WebSocket, known: Principal | undefined, from: string): Promise<void> {
    const channel = new WebSocketChannel(ws, this.#quotas.maxMessage, `RPC client at ${from}`);
    let who = known;
    if (!who) {
      if (this.#unauthenticated >= MAX_UNAUTHENTICATED) return channel.close(new Error('too many connections waiting to authenticate; try again'), CLOSE.busy);
      this.#unauthenticated++;
      const timer = setTimeout(() => channel.close(new Error(`no token within ${AUTH_TIMEOUT_MS / 1000} s`), CLOSE.unauthorized), AUTH_TIMEOUT_MS);
      const first = await channel.receive().catch(() => undefined);
      clearTimeout(timer);
      this.#unauthenticated--;
      if (first === undefined) return;
      who = this.#authenticate(bearer(first), 'first message');
      if (!who) return channel.close(new Error('missing or invalid bearer token: send "Bearer <token>" first'), CLOSE.unauthorized);
    }
    this.#open(channel, who, from, (reason) => channel.close(new Error(reason), CLOSE.revoked));
  }

  /**
   * A client in the cluster, over NATS (subject cordon.connect.client-rpc): it proves its token without
   * sending it (lib/rpc/client-proof.ts), then the session's frames are keyed; the same token check
   * (a revoked token proves nothing), audit, quotas and capabilities as over the WebSocket.
   */
  async serveNats(channel: KeyedChannel & Channel): Promise<void> {
    const sid = /^nats:(.+)$/.exec(channel.description)?.[1];
    if (!sid) return channel.close(new Error('not a NATS session'));
    if (this.#unauthenticated >= MAX_UNAUTHENTICATED) return channel.close(new Error('too many connections waiting to authenticate; try again'));
    this.#unauthenticated++;
    const opened = proofHello();
    const timer = setTimeout(() => channel.close(new Error(`no token proof within ${AUTH_TIMEOUT_MS / 1000} s`)), AUTH_TIMEOUT_MS);
    let first: string | undefined;
    try {
      channel.send(JSON.stringify(opened.hello));
      first = await channel.receive();
    } catch {
      first = undefined;
    } finally {
      clearTimeout(timer);
      this.#unauthenticated--;
    }
    if (first === undefined) return;
    const proof = parseProof(first);
    const who = proof && this.#deps.tokens.byNatsKey(proof.publicKey);
    const key = who && checkProof(sid, opened, proof);
    if (!key) {
      this.#deps.audit.append({
        actor: 'anonymous',
        action: 'rpc.connect',
        target: `nats:${CLIENT_RPC_ENDPOINT}`,
        outcome: 'denied',
        detail: { reason: 'bad or missing token proof' },
      });
      return channel.close(new Error('missing or invalid token proof'));
    }
    channel.send('ok');
    channel.useSessionKey(key);
    this.#open(channel, who, `NATS session ${sid.slice(0, 8)}…`, (reason) => channel.close(new Error(reason)));
  }

  /** An authenticated connection: its membrane, its audit, its session with the main capability. */
  #open(channel: Channel, who: Principal, from: string, revoked: (reason: string) => void): void {
    channel.authenticated();
    const { audit, log } = this.#deps;
    const principal = who;
    const actor = `token:${principal.tokenId}`;
    audit.append({ actor, action: 'rpc.connect', target: RPC_PATH, outcome: 'ok', detail: { from } });
    const membrane = new Membrane();
    let session: MeshSession<any> | undefined;
    const caller: Caller = {
      who: principal,
      membrane,
      engine: this.#deps.workflows,
      audit: (action, target, outcome, reason) => audit.append({ actor, action, target, outcome, ...(reason ? { detail: { reason } } : {}) }),
      watches: new Set(),
      sessions: new Set(),
      stats: () => session!.stats(),
      workers: this.#deps.workers,
    };
    const revoke = (reason: string) => {
      membrane.revoke(reason);
      for (const end of [...caller.watches]) end();
      for (const close of [...caller.sessions]) close(reason);
      revoked(reason);
    };
    const live = this.#byToken.get(principal.tokenId) ?? new Set();
    this.#byToken.set(principal.tokenId, live.add(revoke));
    // The token may have been revoked while this connection was being set up.
    if (this.#deps.tokens.get(principal.tokenId)?.revoked) return revoke(`token ${principal.tokenId} was revoked`);
    const main = membrane.wrap(new CordonMain(caller, principal.tenant ?? DEFAULT_TENANT));
    session = new MeshSession(channel, { role: 'cli', name: actor }, main, this.#quotas, { onSendError: (e) => this.#shown(e), traceContext: false });
    void session.closed.then((reason) => {
      for (const end of [...caller.watches]) end();
      for (const close of [...caller.sessions]) close('the connection closed');
      membrane.revoke('the connection closed');
      live.delete(revoke);
      if (!live.size) this.#byToken.delete(principal.tokenId);
      log.info('RPC client disconnected', { actor, reason: reason.message });
    });
  }

  /** What the client is told of an error: a refusal or a protocol error as it is; our own faults not. */
  #shown(e: Error): Error {
    if (e instanceof CordonError || e.name === 'TypeError' || e.name === 'RangeError') return stackless(e instanceof CordonError ? 'Error' : e.name, e.message);
    this.#deps.log.error('RPC call failed', { error: e });
    return stackless('Error', 'internal error; see the supervisor log');
  }
}

/** An error to send: capnweb sends the stack of what `onSendError` returns, and ours names host files. */
function stackless(name: string, message: string): Error {
  const e = new Error(message);
  e.name = name;
  e.stack = undefined;
  return e;
}

/** An HTTP answer on a socket that asked to upgrade, then the end of it. */
function refuse(socket: Duplex, status: 401 | 404, message: string): void {
  const body = JSON.stringify({ error: message });
  const reason = status === 401 ? 'Unauthorized' : 'Not Found';
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
