/**
 * Workflows: instances of every workflow the session may see, filtered by status or found by id; one
 * instance with its steps on a time axis, redrawn each second while it has not finished, its actions
 * and a form that sends it an event.
 */
import { STATUSES, type InstanceStatusName } from '../../../../../schemas/workflow-statuses.ts';
import type { StepRecord } from '../../../../../schemas/workflows.ts';
import { api, seg, type SessionInfo } from '../api.ts';
import { action, h, link, table, traceLink, when } from '../dom.ts';
import { listWorkers } from './workers.ts';

interface Instance {
  id: string;
  traceId?: string;
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
  const known: { tenant: string; workflow: string }[] = [];
  for (const tenant of tenants) {
    const { workflows } = await api<{ workflows: { name: string; worker: string }[] }>('GET', `/v1/workflows/${seg(tenant)}`);
    for (const wf of workflows) {
      known.push({ tenant, workflow: wf.name });
      const q = new URLSearchParams({ limit: '100', ...(filter ? { status: filter } : {}) });
      const { instances } = await api<{ instances: Instance[] }>('GET', `/v1/workflows/${seg(tenant)}/${seg(wf.name)}/instances?${q}`);
      for (const i of instances)
        rows.push([
          document.createTextNode(tenant),
          document.createTextNode(wf.name),
          link(['instance', tenant, wf.name, i.id], i.id),
          badge(i.status),
          document.createTextNode(when(i.createdAt)),
        ]);
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
    search(known),
    table(['Tenant', 'Workflow', 'Instance', 'Status', 'Created'], rows, filter ? `No ${filter} instances.` : 'No workflow instances yet.'),
  );
}

/** Finds an instance by its exact id in every workflow the session may see (the list shows the latest 100 only), and opens it; none found says so. */
function search(known: { tenant: string; workflow: string }[]): Node {
  const input = h('input', {
    id: 'instance-search',
    type: 'search',
    name: 'id',
    required: true,
    maxlength: 100,
    pattern: '[A-Za-z0-9_][A-Za-z0-9_\\-]*',
    autocomplete: 'off',
  });
  const result = h('span', { id: 'search-result', role: 'status' });
  const form = h(
    'form',
    { class: 'inline', role: 'search' },
    h('label', { for: 'instance-search' }, 'Instance id '),
    input,
    h('button', { type: 'submit' }, 'Find'),
    ' ',
    result,
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const id = input.value.trim();
    result.textContent = 'Searching…';
    let hit: (typeof known)[number] | undefined;
    try {
      const hits = await Promise.all(
        known.map(async (k) => {
          const { instances } = await api<{ instances: Instance[] }>(
            'GET',
            `/v1/workflows/${seg(k.tenant)}/${seg(k.workflow)}/instances?${new URLSearchParams({ id })}`,
          );
          return instances.length > 0 ? k : undefined;
        }),
      );
      hit = hits.find((k) => k !== undefined);
    } catch (err) {
      result.textContent = (err as Error).message;
      return;
    }
    if (hit) location.hash = `#/instance/${[hit.tenant, hit.workflow, id].map(seg).join('/')}`;
    else result.textContent = `No instance ${id} in any workflow you can see.`;
  });
  return form;
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

const took = (s: { startedAt: string | null; endedAt: string | null }) =>
  s.startedAt && s.endedAt ? `${Date.parse(s.endedAt) - Date.parse(s.startedAt)} ms` : '—';
const json = (v: unknown) => h('pre', {}, JSON.stringify(v, null, 2));
const FINISHED: readonly InstanceStatusName[] = ['complete', 'errored', 'terminated'];
const POLL_MS = 1000;

/** What changes as an instance runs: its status, output or error, and its steps. Expanded details are keyed so a redraw keeps them open. */
function live(i: Instance, tenant: string, workflow: string): Node[] {
  const more = (key: string, summary: string, body: Node | string) => h('details', { 'data-key': key }, h('summary', {}, summary), body);
  const parts: (Node | false)[] = [
    h(
      'dl',
      {},
      h('dt', {}, 'Workflow'),
      h('dd', {}, `${tenant}/${workflow}`),
      h('dt', {}, 'Status'),
      h('dd', { id: 'instance-status' }, badge(i.status)),
      h('dt', {}, 'Created'),
      h('dd', {}, when(i.createdAt)),
    ),
    i.error !== undefined && h('div', { class: 'error', role: 'alert' }, `${i.error.name}: ${i.error.message}`),
    i.output !== undefined && h('details', { open: true, 'data-key': 'output' }, h('summary', {}, 'Output'), json(i.output)),
    h('h3', {}, 'Steps'),
    i.steps.length > 0 && timeline(i),
    table(
      ['Step', 'Type', 'Status', 'Attempts', 'Started', 'Took', 'Result'],
      i.steps.map((s, n) => [
        s.name,
        s.type,
        badge(s.status),
        s.attempts,
        when(s.startedAt),
        took(s),
        s.error ? more(`step-${n}`, s.error.name, s.error.message) : s.output !== undefined ? more(`step-${n}`, 'output', json(s.output)) : '—',
      ]),
      'No steps yet.',
    ),
  ];
  return parts.filter((p): p is Node => p !== false);
}

/** Sends the instance an event of a type, with an optional JSON payload (what a waitForEvent of that type receives). */
function sendEvent(path: string, after: () => Promise<void>): Node {
  const type = h('input', { id: 'event-type', name: 'type', required: true, maxlength: 100, pattern: '[A-Za-z0-9_][A-Za-z0-9_\\-]*', autocomplete: 'off' });
  const payload = h('textarea', { id: 'event-payload', name: 'payload', rows: 2, placeholder: '{"approved": true}' });
  const result = h('span', { id: 'event-result', role: 'status' });
  const form = h(
    'form',
    { class: 'event' },
    h('label', { for: 'event-type' }, 'Event type'),
    type,
    h('label', { for: 'event-payload' }, 'Payload (JSON, optional)'),
    payload,
    h('span', {}, h('button', { type: 'submit', id: 'send-event' }, 'Send event'), ' ', result),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    let body: { payload?: unknown } = {};
    try {
      if (payload.value.trim()) body = { payload: JSON.parse(payload.value) };
    } catch (err) {
      result.textContent = `The payload is not JSON: ${(err as Error).message}`;
      return;
    }
    try {
      await api('POST', `${path}/events/${seg(type.value.trim())}`, body);
      result.textContent = `Sent ${type.value.trim()}.`;
      await after();
    } catch (err) {
      result.textContent = (err as Error).message;
    }
  });
  return form;
}

export async function instancePage(session: SessionInfo, tenant: string, workflow: string, id: string, signal: AbortSignal): Promise<Node> {
  const path = `/v1/workflows/${seg(tenant)}/${seg(workflow)}/instances/${seg(id)}`;
  let i = await api<Instance>('GET', path);
  const canAct = session.scopes.includes('workflows') || session.scopes.includes('admin');
  const shown = h('div', { id: 'instance-live' }, live(i, tenant, workflow));
  const draw = async () => {
    i = await api<Instance>('GET', path);
    if (signal.aborted) return;
    const open = new Set([...shown.querySelectorAll<HTMLDetailsElement>('details[data-key]')].filter((d) => d.open).map((d) => d.dataset.key));
    shown.replaceChildren(...live(i, tenant, workflow));
    for (const d of shown.querySelectorAll<HTMLDetailsElement>('details[data-key]')) if (open.has(d.dataset.key)) d.open = true;
  };
  // Redrawn each second while the instance may still change and the page is open; one loop at a time.
  let polling = false;
  const poll = async () => {
    if (polling) return;
    polling = true;
    try {
      while (!signal.aborted && !FINISHED.includes(i.status)) {
        await new Promise((r) => setTimeout(r, POLL_MS));
        if (!signal.aborted) await draw();
      }
    } catch (e) {
      shown.before(h('p', { class: 'error', role: 'alert' }, `Live updates stopped: ${(e as Error).message}. Reload the page to resume them.`));
    } finally {
      polling = false;
    }
  };
  // After an action the instance may run again (resume, restart): draw it now and watch it again.
  const acted = async () => {
    await draw();
    void poll();
  };
  const actions = (['pause', 'resume', 'terminate', 'restart'] as const).map((a) =>
    action(a, { class: `action-${a}` }, async () => (await api('POST', `${path}/${a}`), await acted())),
  );
  void poll();
  const trace = traceLink(session.jaegerUrl, i.traceId, 'Open its trace in Jaeger');
  return h(
    'section',
    {},
    h('h2', {}, `Instance ${i.id}`),
    trace && h('p', {}, trace),
    canAct && h('p', { class: 'actions' }, actions),
    canAct && sendEvent(path, acted),
    shown,
  );
}
