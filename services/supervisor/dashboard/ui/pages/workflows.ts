/** Workflows: instances of every workflow the session may see, filtered by status; one instance with its steps on a time axis. */
import { STATUSES, type InstanceStatusName } from '../../../../../schemas/workflow-statuses.ts';
import type { StepRecord } from '../../../../../schemas/workflows.ts';
import { api, seg, type SessionInfo } from '../api.ts';
import { h, link, table, when } from '../dom.ts';
import { listWorkers } from './workers.ts';

interface Instance {
  id: string;
  workflow: string;
  status: InstanceStatusName;
  output?: unknown;
  error?: { name: string; message: string };
  createdAt: string;
  steps: (Omit<StepRecord, 'output'> & { output?: unknown })[];
}

const badge = (status: string) => h('span', { class: `badge status-${status}` }, status);

export async function workflowsPage(session: SessionInfo, status: string | undefined): Promise<Node> {
  const filter = (STATUSES as readonly string[]).includes(status ?? '') ? status : undefined;
  const tenants = session.tenant !== null ? [session.tenant] : [...new Set((await listWorkers()).map((w) => w.tenant))].sort();
  const rows: Node[][] = [];
  for (const tenant of tenants) {
    const { workflows } = await api<{ workflows: { name: string; worker: string }[] }>('GET', `/v1/workflows/${seg(tenant)}`);
    for (const wf of workflows) {
      const q = new URLSearchParams({ limit: '100', ...(filter ? { status: filter } : {}) });
      const { instances } = await api<{ instances: Instance[] }>('GET', `/v1/workflows/${seg(tenant)}/${seg(wf.name)}/instances?${q}`);
      for (const i of instances) rows.push([document.createTextNode(tenant), document.createTextNode(wf.name), link(['instance', tenant, wf.name, i.id], i.id), badge(i.status), document.createTextNode(when(i.createdAt))]);
    }
  }
  const select = h(
    'select',
    { id: 'status-filter', onchange: (e: Event) => (location.hash = `#/workflows/${(e.target as HTMLSelectElement).value}`) },
    h('option', { value: '' }, 'any status'),
    STATUSES.map((s) => h('option', { value: s, selected: s === filter }, s)),
  );
  return h(
    'section',
    {},
    h('h2', {}, 'Workflow instances'),
    h('p', {}, h('label', { for: 'status-filter' }, 'Status '), select),
    table(['Tenant', 'Workflow', 'Instance', 'Status', 'Created'], rows, filter ? `No ${filter} instances.` : 'No workflow instances yet.'),
  );
}

/** Each step as a bar from its start to its end (or now) on one axis from the instance's creation. */
function timeline(i: Instance): Node {
  const t0 = Date.parse(i.createdAt);
  const ends = i.steps.map((s) => (s.endedAt ? Date.parse(s.endedAt) : Date.now()));
  const span = Math.max(1, ...ends.map((e) => e - t0));
  return h(
    'ol',
    { class: 'timeline', 'aria-label': 'Step timeline' },
    i.steps.map((s, n) => {
      const start = s.startedAt ? Date.parse(s.startedAt) - t0 : 0;
      const bar = h('span', { class: `bar status-${s.status}`, title: `${s.name}: ${s.status}` });
      // CSSOM, not a style attribute: the CSP allows no inline style.
      bar.style.marginLeft = `${(100 * start) / span}%`;
      bar.style.width = `${Math.max(0.5, (100 * (ends[n]! - t0 - start)) / span)}%`;
      return h('li', {}, h('span', { class: 'label' }, `${s.name} (${s.type})`), h('span', { class: 'track' }, bar));
    }),
  );
}

const took = (s: { startedAt: string | null; endedAt: string | null }) => (s.startedAt && s.endedAt ? `${Date.parse(s.endedAt) - Date.parse(s.startedAt)} ms` : '—');
const json = (v: unknown) => h('pre', {}, JSON.stringify(v, null, 2));

export async function instancePage(session: SessionInfo, tenant: string, workflow: string, id: string, rerender: () => void): Promise<Node> {
  const path = `/v1/workflows/${seg(tenant)}/${seg(workflow)}/instances/${seg(id)}`;
  const i = await api<Instance>('GET', path);
  const canAct = session.scopes.includes('workflows') || session.scopes.includes('admin');
  const actions = (['pause', 'resume', 'terminate', 'restart'] as const).map((a) =>
    h('button', { type: 'button', class: `action-${a}`, onclick: async () => (await api('POST', `${path}/${a}`), rerender()) }, a),
  );
  return h(
    'section',
    {},
    h('h2', {}, `Instance ${i.id}`),
    h('dl', {}, h('dt', {}, 'Workflow'), h('dd', {}, `${tenant}/${workflow}`), h('dt', {}, 'Status'), h('dd', { id: 'instance-status' }, badge(i.status)), h('dt', {}, 'Created'), h('dd', {}, when(i.createdAt))),
    canAct && h('p', { class: 'actions' }, actions),
    i.error && h('div', { class: 'error', role: 'alert' }, `${i.error.name}: ${i.error.message}`),
    i.output !== undefined && h('details', { open: true }, h('summary', {}, 'Output'), json(i.output)),
    h('h3', {}, 'Steps'),
    i.steps.length ? timeline(i) : null,
    table(
      ['Step', 'Type', 'Status', 'Attempts', 'Started', 'Took', 'Result'],
      i.steps.map((s) => [s.name, s.type, badge(s.status), s.attempts, when(s.startedAt), took(s), s.error ? h('details', {}, h('summary', {}, s.error.name), s.error.message) : s.output !== undefined ? h('details', {}, h('summary', {}, 'output'), json(s.output)) : '—']),
      'No steps yet.',
    ),
  );
}
