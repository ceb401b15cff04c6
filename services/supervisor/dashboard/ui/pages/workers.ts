/** Workers: each worker's tenant, name, cordon, version, routes and quarantine state; one worker's recent console output. */
import type { LogEntry } from '../../../../../schemas/services.ts';
import { api, apiFollow, seg, type SessionInfo } from '../api.ts';
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

const LEVELS = ['debug', 'info', 'log', 'warn', 'error'] as const;

/** One worker, and its console output: the recent lines, then each new one as it is logged, until the page is left. */
export async function workerPage(tenant: string, name: string, signal: AbortSignal): Promise<Node> {
  const path = `/v1/workers/${seg(tenant)}/${seg(name)}`;
  const w = await api<Worker>('GET', path);
  const log = h('ol', { class: 'log', id: 'log', 'aria-live': 'polite' });
  const empty = h('p', { class: 'empty' }, 'Nothing logged yet.');
  const filter = h(
    'select',
    { id: 'level-filter', onchange: (e: Event) => (log.dataset.only = (e.target as HTMLSelectElement).value) },
    h('option', { value: '' }, 'every level'),
    LEVELS.map((l) => h('option', { value: l }, `${l} only`)),
  );
  void apiFollow<LogEntry>(`${path}/logs?follow=1`, signal, (e) => {
    empty.remove();
    log.append(h('li', { class: `level-${e.level}` }, h('time', {}, when(new Date(e.time).toISOString())), ' ', h('span', { class: 'level' }, e.level), ' ', e.message));
  }).catch((e: unknown) => log.after(h('p', { class: 'error', role: 'alert' }, `The log stream stopped: ${(e as Error).message}`)));
  return h(
    'section',
    {},
    h('h2', {}, `Worker ${w.tenant}/${w.name}`),
    h('dl', {}, h('dt', {}, 'Cordon'), h('dd', {}, w.cordon), h('dt', {}, 'Version'), h('dd', {}, h('code', {}, w.version)), h('dt', {}, 'Routes'), h('dd', {}, w.routes.join(', ') || '—')),
    h('h3', {}, 'Console output (live)'),
    h('p', {}, h('label', { for: 'level-filter' }, 'Show '), filter),
    empty,
    log,
  );
}
