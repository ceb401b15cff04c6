/**
 * `cordon run dedicated`: the dedicated-cordon agent, for a cluster. Quarantine and debug cordons
 * (`q-…`, `d-…`) are made by the supervisor at run time, and a sandbox keyring can only be issued
 * where the mesh secret is; so this process runs on the operator's host, beside the secret. It asks
 * the supervisor, over the mesh, which dedicated cordons exist now (role `agent`: a link of its own
 * whose only method is that read-only list) and runs one confined sandbox process per cordon with a
 * keyring issued for it alone — the same DedicatedSandboxes `cordon start` uses — restarted when it
 * dies and stopped when the cordon is released.
 *
 * Why a mesh role and not the admin API: the agent then holds no admin token (which could deploy,
 * read and release everything), opens no HTTP port, and a stolen sandbox keyring cannot reach the
 * list, since the agent's link key is derived for that role alone.
 *
 * Stops at once (one line, exit 1): a setting that does not parse, no mesh secret here, a process
 * sandbox this machine cannot make, NATS seeds that do not answer within CORDON_NATS_WAIT_SECONDS.
 * Waits (retrying with back-off): a supervisor that is not up yet, or restarting; the processes it
 * runs keep running meanwhile, so a supervisor restart does not take a quarantined worker down.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createLogger } from '../lib/log.ts';
import { MeshClient, openTransport, type MeshNode, type Transport } from '../lib/mesh.ts';
import { KEYRING_ENV, KEYRING_FILE_ENV, Keyring, loadMeshSecret } from '../lib/rpc/index.ts';
import type { SupervisorForAgent } from '../schemas/services.ts';
import { DedicatedSandboxes, dedicatedCordons } from './dedicated.ts';
import { runConfig } from './run.ts';
import { memoryCeilings, processSandbox } from './service-process.ts';

/** How often the agent asks for the list: a new quarantine gets its process within about this. */
const POLL_MS = 1000;
const CALL_TIMEOUT_MS = 10_000;

export async function runDedicatedAgent(args: { insecureNoProcessSandbox?: boolean }): Promise<number> {
  const env = { ...process.env };
  const log = createLogger('agent', { component: 'run' });
  let transport: Transport | undefined;
  let sandboxes: DedicatedSandboxes | undefined;
  let cleanup = () => {};
  try {
    const config = runConfig(env);
    if (env[KEYRING_FILE_ENV] || env[KEYRING_ENV])
      throw new Error(`the agent issues keyrings from the mesh secret and takes none: unset ${env[KEYRING_FILE_ENV] ? KEYRING_FILE_ENV : KEYRING_ENV}`);
    // Never mint a secret here: one no running mesh uses would give every dedicated sandbox keys nobody accepts.
    if (!env.CORDON_MESH_SECRET && !existsSync(join(config.dataDir, 'mesh.secret'))) {
      throw new Error(
        `no mesh secret here (${join(config.dataDir, 'mesh.secret')} does not exist and CORDON_MESH_SECRET is not set): run the agent on the operator's host, with CORDON_DATA_DIR where the mesh secret is`,
      );
    }
    const secret = loadMeshSecret(config.dataDir, env);
    env.CORDON_DATA_DIR = config.dataDir;
    mkdirSync(join(config.dataDir, 'sockets'), { recursive: true, mode: 0o700 });
    const report = (msg: string) => log[msg.startsWith('WARNING') ? 'warn' : 'info'](msg);
    const confine = await processSandbox(
      { natsUrl: config.natsUrl, natsTls: config.natsTls, insecureNoProcessSandbox: args.insecureNoProcessSandbox },
      env,
      report,
    );
    const ceilings = memoryCeilings(env, report);
    cleanup = () => {
      ceilings?.close();
      for (const r of confine?.relays ?? []) r.close();
    };
    sandboxes = new DedicatedSandboxes(secret, env, report, { confine, ceilings });
    transport = await openTransport(config, log);
    const node: MeshNode = { keyring: Keyring.forRole(secret, 'agent'), name: 'agent', instance: randomBytes(6).toString('hex'), transport, log };
    const supervisor = new MeshClient<SupervisorForAgent>(node, 'supervisor', 'supervisor');
    let stopping = false;
    let wake = () => {};
    const stop = () => {
      stopping = true;
      wake();
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    log.info('started', { transport: config.natsUrl ? 'nats' : 'unix' });
    let failing = false;
    while (!stopping) {
      const session = supervisor.current;
      if (session) {
        try {
          const answer = await Promise.race([
            session.remote.dedicated(),
            new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no answer within ${CALL_TIMEOUT_MS} ms`)), CALL_TIMEOUT_MS).unref()),
          ]);
          if (!stopping) sandboxes.apply(dedicatedCordons(answer));
          failing = false;
        } catch (e) {
          // The session is re-made by the client; the processes running keep running meanwhile.
          if (!failing) log.warn('could not get the list of dedicated cordons; retrying', { error: (e as Error).message });
          failing = true;
        }
      }
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, POLL_MS).unref();
      });
    }
    supervisor.close();
    await sandboxes.stop();
    await transport.close();
    cleanup();
    return 0;
  } catch (e) {
    log.error((e as Error).message);
    await sandboxes?.stop();
    await transport?.close();
    cleanup();
    return 1;
  }
}
