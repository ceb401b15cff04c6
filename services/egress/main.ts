/**
 * The egress process: the only one meant to reach the outside. This milestone joins the mesh and
 * answers the supervisor; the outbound proxy and its destination policy come with the egress issue,
 * and until then no tenant has a fetch capability at all.
 */
import { MeshClient } from '../../lib/mesh.ts';
import { startService } from '../../lib/service.ts';
import type { SupervisorForEgress } from '../../schemas/services.ts';

await startService('egress', 'egress', async ({ node, onStop }) => {
  const supervisor = new MeshClient<SupervisorForEgress>(node, 'supervisor', 'supervisor');
  onStop(() => supervisor.close());
});
