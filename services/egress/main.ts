/**
 * The egress process: the only one meant to reach the outside. It offers the supervisor fetchers,
 * each bound to one worker, and checks every destination (policy.ts) before it connects.
 */
// First: it checks every setting before the modules below, some of which read theirs as they load.
import { startService } from '../../lib/service.ts';
import { MeshClient } from '../../lib/mesh.ts';
import { configHash, reportDrift } from '../../lib/drift.ts';
import type { SupervisorForEgress } from '../../schemas/services.ts';
import { systemResolver } from './policy.ts';
import { EgressPort, RateLimits } from './port.ts';
import { HttpCache } from './cache.ts';
import { SocketCounts } from './sockets.ts';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

await startService('egress', 'egress', async ({ config, settings, log, node, onStop }) => {
  // The settings this process started with (the config file may change under it: that is drift).
  const loadedConfig = configHash(settings);
  const resolver = systemResolver(settings.egress.egressDns);
  let supervisor: MeshClient<SupervisorForEgress> | undefined;
  const refused = (workerId: string, reason: string) => {
    void supervisor?.current?.remote.refused(workerId, reason).catch(() => {});
  };
  const dir = join(config.dataDir, 'egress');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const cache = new HttpCache({
    maxBytes: settings.egress.egressCacheMb * 1024 * 1024,
    file: join(dir, 'cache.db'),
    tenantDiskBytes: settings.egress.cacheTenantDiskMb * 1024 * 1024,
  });
  onStop(() => cache.close());
  const port = new EgressPort({
    resolver,
    refused,
    log,
    cache,
    limits: new RateLimits(settings.egress.egressRate),
    timeoutMs: settings.egress.egressTimeoutMs,
    maxResponseBytes: settings.egress.egressMaxResponseMb * 1024 * 1024,
    // This platform's own listeners: a socket may not reach them on any address of this host.
    sockets: {
      maxSockets: settings.egress.egressSocketsPerWorker,
      ownPorts: [settings.ingress.httpPort, settings.ingress.httpsPort, settings.supervisor.adminPort],
    },
    socketCounts: new SocketCounts(),
  });
  supervisor = new MeshClient<SupervisorForEgress>(node, 'supervisor', 'supervisor', {
    onSession: (session) => session.remote.register(port),
  });
  onStop(() => supervisor?.close());
  onStop(
    reportDrift(
      (state) => supervisor?.current?.remote.report(state),
      () => ({ config: loadedConfig }),
      settings.mesh.driftMs,
    ),
  );
});
