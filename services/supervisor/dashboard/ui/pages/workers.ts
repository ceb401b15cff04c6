/** Workers: each worker's tenant, name, cordon, version, routes and quarantine state; one worker's recent console output. */
import type { LogEntry } from '../../../../../schemas/services.ts';
import { api, apiLines, seg, type SessionInfo } from '../api.ts';
import { h, link, table, when } from '../dom.ts';

interface Worker {
  id: string;
  tenant: string;
  name: string;
  cordon: string;
  version: string;
  routes: string[];
}
export interface QuarantineList {
  quarantined: { worker: string; cordon: string; previousCordon: string; since: string; reason: string }[];
  tenants: { tenant: string; cordon: string; since: string; reason: string }[];
}

const canAdmin = (s: SessionInfo) => s.scopes.includes('admin');

export async function listWorkers(): Promise<Worker[]> {
  return (await api<{ workers: Worker[] }>('GET', '/v1/workers')).workers;
}

export async function workersPage(session: SessionInfo): Promise<Node> {
  const [workers, q] = await Promise.all([listWorkers(), canAdmin(session) ? api<QuarantineList>('GET', '/v1/quarantine') : undefined]);
  const state = (w: Worker) => {
    const held = q?.quarantined.find((e) => e.worker === w.id);
    if (held) return h('span', { class: 'badge bad' }, `quarantined: ${held.reason}`);
    const tenant = q?.tenants.find((t) => t.tenant === w.tenant);
    if (tenant) return h('span', { class: 'badge bad' }, `tenant quarantined: ${tenant.reason}`);
    return q ? h('span', { class: 'badge ok' }, 'no') : h('span', { class: 'muted' }, 'needs admin scope');
  };
  return h(
    'section',
    {},
    h('h2', {}, 'Workers'),
    table(
      ['Tenant', 'Name', 'Cordon', 'Version', 'Routes', 'Quarantine'],
      workers.map((w) => [w.tenant, link(['worker', w.tenant, w.name], w.name), w.cordon, h('code', {}, w.version), w.routes.length ? h('ul', { class: 'plain' }, w.routes.map((r) => h('li', {}, r))) : '—', state(w)]),
      'No workers deployed yet. Deploy one with `cordon deploy`.',
    ),
  );
}

export async function workerPage(tenant: string, name: string): Promise<Node> {
  const w = await api<Worker>('GET', `/v1/workers/${seg(tenant)}/${seg(name)}`);
  const lines = await apiLines<LogEntry>(`/v1/workers/${seg(tenant)}/${seg(name)}/logs`);
  return h(
    'section',
    {},
    h('h2', {}, `Worker ${w.tenant}/${w.name}`),
    h('dl', {}, h('dt', {}, 'Cordon'), h('dd', {}, w.cordon), h('dt', {}, 'Version'), h('dd', {}, h('code', {}, w.version)), h('dt', {}, 'Routes'), h('dd', {}, w.routes.join(', ') || '—')),
    h('h3', {}, 'Recent console output'),
    lines.length === 0
      ? h('p', { class: 'empty' }, 'Nothing logged yet.')
      : h('ol', { class: 'log' }, lines.map((e) => h('li', { class: `level-${e.level}` }, h('time', {}, when(new Date(e.time).toISOString())), ' ', h('span', { class: 'level' }, e.level), ' ', e.message))),
  );
}
