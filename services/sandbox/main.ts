/** A sandbox process: one per cordon (trust level). Runs tenant code in isolates; holds no code of its own. */
// First: it checks every setting before the modules below, some of which read theirs as they load.
import { startService } from '../../lib/service.ts';
import { MeshClient, serve } from '../../lib/mesh.ts';
import { flightRecorderPath, sandboxSettings } from '../../lib/config.ts';
import { configHash, reportDrift } from '../../lib/drift.ts';
import type { SupervisorForSandbox } from '../../schemas/services.ts';
import { WorkerRuntime } from './runtime/index.ts';
import { BundleCache, SandboxPort, type SupervisorLink } from './port.ts';
import { FlightRecorder } from './flight-recorder.ts';
import { serveFastPath } from './fast-port.ts';
import { Runner } from './runner.ts';
import { CreationReports } from './creation-reports.ts';
import { ObjectHostTarget } from './objects.ts';
import { join } from 'node:path';
import { bootstrap } from './runtime/bootstrap-bundle.ts';
import { lockdown } from '../../lib/seccomp/lockdown.ts';
import { INSECURE_ENV } from '../../lib/process-sandbox.ts';
import { RELAY_ENV } from '../../lib/relay.ts';
import { serveInspector } from './inspector.ts';
import { CORDON_NAME } from '../../lib/rpc/index.ts';

const cordon = process.env.CORDON_CORDON || 'standard';
if (!CORDON_NAME.test(cordon)) {
  process.stderr.write(`CORDON_CORDON=${JSON.stringify(cordon)} is not a valid cordon name (lower-case letters, digits, dashes)\n`);
  process.exit(2);
}

await startService('sandbox', cordon, async ({ config, settings, log, node, onStop }) => {
  // The settings this process started with (the config file may change under it: that is drift).
  const loadedConfig = configHash(settings);
  const recorder = new FlightRecorder(flightRecorderPath(config.dataDir, cordon));
  onStop(() => recorder.close());
  // A debug sandbox (`cordon debug`) runs one worker alone, with the inspector on; no other sandbox ever has it.
  const inspectorToken = process.env.CORDON_INSPECTOR_TOKEN_SHA256;
  const sandbox = sandboxSettings(settings);
  const runtime = new WorkerRuntime({ ...sandbox, inspector: Boolean(inspectorToken) });
  onStop(() => runtime.dispose());
  let reported = recorder.previous.length === 0;
  const link: SupervisorLink = { ready: (ms?: number) => supervisor.ready(ms) };
  const bundles: BundleCache = new BundleCache(link);
  const creations = new CreationReports(link, log);
  onStop(() => creations.flush());
  const deps = { runtime, bundles, supervisor: link, log, recorder, creations };
  const objects = new ObjectHostTarget(deps, sandbox.objectIdleMs);
  onStop(() => objects.dispose());
  await bootstrap();
  if (inspectorToken) {
    const inspector = await serveInspector(join(config.dataDir, 'sockets', `inspector-${cordon}.sock`), inspectorToken, runtime, log);
    onStop(() => inspector.close());
  }
  const listener = await serve(node, `sandbox-${cordon}`, {
    accept: ['ingress'],
    mainFor: () => new SandboxPort(deps),
    onSession: (session) => serveFastPath(session, new SandboxPort(deps), log),
  });
  onStop(() => listener.close());
  // Everything is loaded and bound (the runtime, its bootstrap, the recorder's file, the listening
  // socket): from here on no path, exec or network syscall succeeds. This runs before the event loop
  // accepts a connection, and tenant code arrives only through that listener and the supervisor below.
  if (process.env[INSECURE_ENV] === '1')
    log.warn('running WITHOUT the process sandbox (--insecure-no-process-sandbox): tenant code that escapes V8 owns this process');
  else {
    const tcp = Boolean(process.env[RELAY_ENV.nats] || process.env[RELAY_ENV.otlp]);
    lockdown({ tcp });
    log.info('locked down: seccomp filter installed on every thread', { relays: tcp });
  }
  // A new supervisor session means the old one's capability stubs are dead: fetch afresh.
  const supervisor: MeshClient<SupervisorForSandbox> = new MeshClient<SupervisorForSandbox>(node, 'supervisor', 'supervisor', {
    async onSession(session): Promise<void> {
      bundles.clear();
      objects.clear();
      await session.remote.registerRunner(new Runner(deps));
      await session.remote.registerObjectHost(objects);
      if (!reported) {
        log.warn('the previous process of this cordon died while running workers', { workers: recorder.previous });
        await session.remote.crashed(recorder.previous);
        reported = true;
      }
    },
  });
  onStop(() => supervisor.close());
  onStop(
    reportDrift(
      (state) => supervisor.current?.remote.report(state),
      () => ({ config: loadedConfig }),
      settings.mesh.driftMs,
    ),
  );
});
