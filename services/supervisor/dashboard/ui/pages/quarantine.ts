/** Quarantine: workers and tenants held in a cordon of their own, and the buttons that release them. */
import { api, seg, type SessionInfo } from '../api.ts';
import { action, h, table, when } from '../dom.ts';
import type { QuarantineList } from './workers.ts';

export async function quarantinePage(session: SessionInfo, rerender: () => void): Promise<Node> {
  const q = await api<QuarantineList>('GET', '/v1/quarantine');
  const release = (label: string, method: string, path: string) => action(label, {}, async () => (await api(method, path), rerender()));
  return h(
    'section',
    {},
    h('h2', {}, 'Quarantine'),
    table(
      ['Worker', 'Cordon', 'Came from', 'Since', 'Reason', ''],
      q.quarantined.map((e) => {
        const [tenant, name] = e.worker.split('/') as [string, string];
        return [
          e.worker,
          e.cordon,
          e.previousCordon,
          when(e.since),
          e.reason,
          release(`Release ${e.worker}`, 'POST', `/v1/quarantine/${seg(tenant)}/${seg(name)}/release`),
        ];
      }),
      'No worker is quarantined.',
    ),
    h('h3', {}, 'Tenants'),
    table(
      ['Tenant', 'Cordon', 'Since', 'Reason', ''],
      q.tenants.map((t) => [
        t.tenant,
        t.cordon,
        when(t.since),
        t.reason,
        session.tenant === null ? release(`Release tenant ${t.tenant}`, 'DELETE', `/v1/tenants/${seg(t.tenant)}/quarantine`) : '',
      ]),
      'No tenant is quarantined.',
    ),
  );
}
