/**
 * The NATS transport for the mesh (`CORDON_NATS_URL`): one NATS connection per process, sessions over
 * subjects. The URL lists seeds of one NATS cluster, comma-separated; the client keeps reconnecting
 * to whichever of them (and of the servers the cluster announces) answers.
 */
import { readFileSync } from 'node:fs';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { isIP } from 'node:net';
import { connect, nkeyAuthenticator, usernamePasswordAuthenticator, type ConnectionOptions, type NatsConnection } from '@nats-io/transport-node';
import { connectNats, listenNats, MESH_SESSION_TIMING, replicasNats } from './rpc/nats.ts';
import { natsServers } from './relay.ts';
import type { Logger } from './log.ts';
import type { NatsTls } from './config.ts';
import type { Transport } from './mesh.ts';

/**
 * How this process authenticates to NATS: CORDON_NATS_USER + CORDON_NATS_PASS, or an nkey seed in the
 * file CORDON_NATS_NKEY_FILE. Never in the URL: the URL is printed and logged, credentials must not be.
 */
export function natsAuth(env: NodeJS.ProcessEnv): Pick<ConnectionOptions, 'authenticator'> {
  const user = env.CORDON_NATS_USER;
  const pass = env.CORDON_NATS_PASS;
  const nkeyFile = env.CORDON_NATS_NKEY_FILE;
  if ((user === undefined) !== (pass === undefined)) throw new Error('set both CORDON_NATS_USER and CORDON_NATS_PASS, or neither');
  if (user !== undefined && nkeyFile) throw new Error('set either CORDON_NATS_USER/CORDON_NATS_PASS or CORDON_NATS_NKEY_FILE, not both');
  if (user !== undefined) return { authenticator: usernamePasswordAuthenticator(user, pass) };
  if (nkeyFile) {
    let seed: string;
    try {
      seed = readFileSync(nkeyFile, 'utf8').trim();
    } catch (e) {
      throw new Error(`cannot read the nkey seed file CORDON_NATS_NKEY_FILE=${nkeyFile}: ${(e as Error).message}`);
    }
    if (!/^SU[A-Z2-7]{56}$/.test(seed))
      throw new Error(`CORDON_NATS_NKEY_FILE=${nkeyFile} does not hold a user nkey seed (SU…, as \`nsc\` or \`nk -gen user\` writes)`);
    return { authenticator: nkeyAuthenticator(new TextEncoder().encode(seed)) };
  }
  return {};
}

/**
 * TLS options for `tls://` seeds. Relayed (a sandbox), the connection goes to 127.0.0.1 and on to
 * whichever seed answers, so the server's certificate is checked against every seed's name rather
 * than the address dialled: it must still chain to the CA and name one of the cluster's seeds.
 */
export function natsTlsOptions(tls: NatsTls, relayed: boolean): NonNullable<ConnectionOptions['tls']> {
  const files = { caFile: tls.ca, certFile: tls.cert, keyFile: tls.key };
  if (!relayed) return files;
  const name = tls.names.find((n) => !isIP(n));
  return {
    ...files,
    ...(name ? { servername: name } : {}),
    checkServerIdentity: (_host: string, cert: PeerCertificate) => {
      const problems = tls.names.map((n) => checkServerIdentity(n, cert));
      return problems.some((p) => p === undefined) ? undefined : problems[0];
    },
  } as NonNullable<ConnectionOptions['tls']>;
}

/**
 * connect(), given up at `deadline`: with several seeds and reconnects without end, nats.js may keep
 * dialling inside one connect() (a TLS server dropping the client after the handshake looks
 * connected). A connection that arrives after the deadline is closed.
 */
async function connectBy(options: ConnectionOptions, deadline: number): Promise<NatsConnection> {
  const pending = connect(options);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('no seed completed a connection in time')), Math.max(0, deadline - Date.now()));
  });
  try {
    return await Promise.race([pending, late]);
  } catch (e) {
    void pending.then((nc) => nc.close()).catch(() => {});
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

/** The first connection's back-off between attempts, and the cap. */
const FIRST_RETRY_MS = 250;
const MAX_RETRY_MS = 2000;

/**
 * Connects to NATS. While no seed answers yet (a cluster still coming up) it retries with back-off,
 * logging each attempt, for up to `waitSeconds`; then it fails with one line naming the seeds.
 * Refused credentials fail at once: retrying would not help. `relayed`: the URL is a sandbox's relay,
 * so servers the cluster announces are unreachable from where this process runs and are ignored.
 */
export async function natsTransport(
  url: string,
  opts: { env?: NodeJS.ProcessEnv; waitSeconds?: number; tls?: NatsTls; relayed?: boolean; log?: Logger } = {},
): Promise<Transport> {
  const env = opts.env ?? process.env;
  const servers = natsServers(url).map((d) => `${d.host.includes(':') ? `[${d.host}]` : d.host}:${d.port}`);
  const options: ConnectionOptions = {
    servers,
    ...natsAuth(env),
    ...(opts.tls ? { tls: natsTlsOptions(opts.tls, opts.relayed === true) } : {}),
    // Keep reconnecting forever: a NATS node going away must not take the service down with it.
    // 250 ms between attempts at one server: a client whose node died is on another seed well within 2 s.
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    reconnectJitter: 100,
    ignoreClusterUpdates: opts.relayed === true,
    // One attempt may not eat the whole wait (a TLS server that drops a client without a certificate looks like silence).
    timeout: Math.min(5000, (opts.waitSeconds ?? 30) * 1000),
    name: env.CORDON_NATS_CLIENT_NAME,
  };
  const deadline = Date.now() + (opts.waitSeconds ?? 30) * 1000;
  let delay = FIRST_RETRY_MS;
  for (let attempt = 1; ; attempt++) {
    try {
      const nc = await connectBy(options, deadline);
      return {
        listen: (endpoint, max, onChannel, instance) => listenNats(nc, endpoint, max, onChannel, { ...MESH_SESSION_TIMING, instance }),
        dial: (endpoint, max, instance) => connectNats(nc, endpoint, max, { ...MESH_SESSION_TIMING, instance }),
        replicas: (endpoint, waitMs) => replicasNats(nc, endpoint, waitMs),
        close: () => nc.drain(),
      };
    } catch (e) {
      const message = (e as Error).message;
      if (opts.tls && /certificate|self.signed|tls|ssl|ENOENT/i.test(message))
        throw new Error(`TLS to NATS at ${servers.join(',')} failed (${message}): check CORDON_NATS_TLS_CA, _CERT and _KEY and the servers' certificates`);
      if (/authori[sz]ation|authentication/i.test(message))
        throw new Error(
          `NATS at ${servers.join(',')} refused this process's credentials (${message}): check CORDON_NATS_USER/CORDON_NATS_PASS or CORDON_NATS_NKEY_FILE`,
        );
      if (Date.now() + delay > deadline)
        throw new Error(
          `cannot reach NATS at ${servers.join(',')} (tried for ${opts.waitSeconds ?? 30} s, last error: ${message}); start it, or fix CORDON_NATS_URL` +
            (opts.tls ? ' (or the TLS settings: a server that verifies clients drops one without CORDON_NATS_TLS_CERT/_KEY)' : ''),
        );
      opts.log?.warn('NATS not reachable yet, retrying', { servers, attempt, delayMs: delay, error: message });
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, MAX_RETRY_MS);
    }
  }
}
