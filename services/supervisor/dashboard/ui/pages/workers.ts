/** Workers: each worker's tenant, name, cordon, version, routes and quarantine state; one worker's versions and recent console output. */
import type { LogEntry } from '../../../../../schemas/services.ts';
import type { VersionSettings } from '../../../../../schemas/worker.ts';
import { api, apiFollow, seg, type SessionInfo } from '../api.ts';
import { action, h, link, table, traceLink, when } from '../dom.ts';
import { chart } from '../chart.ts';

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

interface Version {
  version: string;
  createdAt: string;
  current: boolean;
  settings: VersionSettings | null;
}

const canAdmin = (s: SessionInfo) => s.scopes.includes('admin');
const canDeploy = (s: SessionInfo) => canAdmin(s) || s.scopes.includes('deploy');
const short = (version: string) => version.slice(0, 12);

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
      workers.map((w) => [
        w.tenant,
        link(['worker', w.tenant, w.name], w.name),
        w.cordon,
        h('code', {}, w.version),
        w.routes.length
          ? h(
              'ul',
              { class: 'plain' },
              w.routes.map((r) => h('li', {}, r)),
            )
          : '—',
        state(w),
      ]),
      'No workers deployed yet. Deploy one with `cordon deploy`.',
    ),
  );
}

/** What a binding names besides its type (a workflow, a Durable Object class, a KV/D1/queue resource, a service), if anything. */
function bindingTarget(b: VersionSettings['bindings'][number]): string | undefined {
  if (b.type === 'durable_object') return b.className;
  return b.workflow ?? b.resource ?? b.service;
}

/** Each setting as one comparable line: module code by size and hash, vars by name (their values are not shown). */
function flatten(s: VersionSettings | null): Map<string, string> {
  if (!s) return new Map([['integrity', 'fails its integrity check']]);
  const m = new Map<string, string>([['mainModule', s.mainModule]]);
  for (const mod of s.modules) m.set(`module ${mod.name}`, `${mod.bytes} bytes, sha256 ${mod.sha256.slice(0, 12)}`);
  for (const [k, v] of Object.entries(s.limits)) m.set(`limits.${k}`, String(v));
  m.set('vars', s.vars.join(', ') || '—');
  for (const b of s.bindings) m.set(`binding ${b.name}`, bindingTarget(b) ? `${b.type} ${bindingTarget(b)}` : b.type);
  m.set('origins', s.origins.join(', ') || '—');
  m.set('allowEval', String(s.allowEval));
  m.set('egress', s.egress ? JSON.stringify(s.egress) : '—');
  m.set('workflows', s.workflows.map((w) => `${w.name} (${w.className})`).join(', ') || '—');
  m.set('crons', s.crons.join(', ') || '—');
  m.set('assets', s.assets ? `${s.assets.files} files, ${s.assets.bytes} bytes, ${JSON.stringify(s.assets.routing)}` : '—');
  return m;
}

/** The settings in which `v` differs from the current version, side by side. */
function diff(v: Version, current: Version | undefined): Node {
  const mine = flatten(v.settings);
  const theirs = current ? flatten(current.settings) : new Map<string, string>();
  const keys = [...new Set([...theirs.keys(), ...mine.keys()])].filter((k) => mine.get(k) !== theirs.get(k));
  return h(
    'details',
    { class: 'diff' },
    h('summary', {}, `${keys.length} setting${keys.length === 1 ? ' differs' : 's differ'} from the current version`),
    table(
      ['Setting', `This version (${short(v.version)})`, 'Current'],
      keys.map((k) => [k, mine.get(k) ?? '—', theirs.get(k) ?? '—']),
      'Same settings as the current version.',
    ),
  );
}

/** Rollback asks first: the button opens a confirmation whose own button does it. */
function rollback(path: string, v: Version, rerender: () => void): Node {
  const cell = h('div', { class: 'confirm' });
  const ask = h('button', { type: 'button', class: 'rollback' }, `Roll back to ${short(v.version)}`);
  ask.addEventListener('click', () => {
    const yes = action(
      'Yes, roll back',
      { class: 'rollback-confirm' },
      async () => (await api('POST', `${path}/rollback`, { version: v.version }), rerender()),
    );
    const no = h('button', { type: 'button', onclick: () => (cell.replaceChildren(ask), ask.focus()) }, 'Cancel');
    cell.replaceChildren(h('span', { role: 'alert' }, `Serve version ${short(v.version)} from now on? `), yes, ' ', no);
    yes.focus();
  });
  cell.append(ask);
  return cell;
}

function versionsTable(session: SessionInfo, path: string, versions: Version[], rerender: () => void): Node {
  const current = versions.find((v) => v.current);
  return table(
    ['Version', 'Deployed', 'Settings', ''],
    versions.map((v) => [
      h('code', {}, short(v.version)),
      when(v.createdAt),
      v.current ? h('span', { class: 'badge ok' }, 'current') : diff(v, current),
      !v.current && canDeploy(session) ? rollback(path, v, rerender) : '',
    ]),
    'No stored versions.',
  );
}

const LEVELS = ['debug', 'info', 'log', 'warn', 'error'] as const;

interface MinuteStats {
  minute: number;
  requests: number;
  errors: number;
  p99Ms: number | null;
}
/** How often the charts are redrawn while the page is open (ingress reports every few seconds). */
const CHARTS_MS = 10_000;

/** Requests per minute, the share of them that were 5xx, and p99 latency, over the last hour. */
function charts(minutes: MinuteStats[]): Node[] {
  return [
    chart(
      'chart-requests',
      'Requests per minute',
      minutes.map((m) => m.requests),
      (n) => String(n),
    ),
    chart(
      'chart-errors',
      'Error rate (5xx)',
      minutes.map((m) => (m.requests ? m.errors / m.requests : null)),
      (n) => `${(n * 100).toFixed(n && n < 0.01 ? 2 : 0)}%`,
    ),
    chart(
      'chart-p99',
      'p99 latency',
      minutes.map((m) => m.p99Ms),
      (n) => (n >= 1000 ? `${n / 1000} s` : `${n} ms`),
    ),
  ];
}

/** The charts, redrawn every CHARTS_MS until the page is left. */
function traffic(path: string, signal: AbortSignal): HTMLElement {
  const box = h('div', { class: 'charts', id: 'charts' }, h('p', { class: 'muted' }, 'Loading…'));
  const draw = async () => {
    try {
      const { minutes } = await api<{ minutes: MinuteStats[] }>('GET', `${path}/metrics`);
      if (!signal.aborted) box.replaceChildren(...charts(minutes));
    } catch (e) {
      box.replaceChildren(h('p', { class: 'error', role: 'alert' }, `The charts could not be loaded: ${(e as Error).message}`));
    }
  };
  void draw();
  const timer = setInterval(draw, CHARTS_MS);
  signal.addEventListener('abort', () => clearInterval(timer));
  return box;
}

/** One worker, and its console output: the recent lines, then each new one as it is logged, until the page is left. */
export async function workerPage(session: SessionInfo, tenant: string, name: string, signal: AbortSignal, rerender: () => void): Promise<Node> {
  const path = `/v1/workers/${seg(tenant)}/${seg(name)}`;
  const [w, { versions }] = await Promise.all([api<Worker>('GET', path), api<{ versions: Version[] }>('GET', `${path}/versions`)]);
  const current = versions.find((v) => v.current)?.settings;
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
    log.append(
      h(
        'li',
        { class: `level-${e.level}` },
        h('time', {}, when(new Date(e.time).toISOString())),
        ' ',
        h('span', { class: 'level' }, e.level),
        ' ',
        e.message,
        ' ',
        traceLink(session.jaegerUrl, e.traceId),
      ),
    );
  }).catch((e: unknown) => log.after(h('p', { class: 'error', role: 'alert' }, `The log stream stopped: ${(e as Error).message}`)));
  return h(
    'section',
    {},
    h('h2', {}, `Worker ${w.tenant}/${w.name}`),
    h(
      'dl',
      {},
      h('dt', {}, 'Cordon'),
      h('dd', {}, w.cordon),
      h('dt', {}, 'Version'),
      h('dd', { id: 'worker-version' }, h('code', {}, w.version)),
      h('dt', {}, 'Routes'),
      h('dd', {}, w.routes.join(', ') || '—'),
      current && [
        h('dt', {}, 'Limits'),
        h('dd', {}, `CPU ${current.limits.cpuMs} ms, wall ${current.limits.wallMs} ms, memory ${current.limits.memoryMb} MB`),
        h('dt', {}, 'Bindings'),
        h('dd', {}, current.bindings.map((b) => (bindingTarget(b) ? `${b.name} (${b.type} ${bindingTarget(b)})` : `${b.name} (${b.type})`)).join(', ') || '—'),
        h('dt', {}, 'Vars'),
        h('dd', {}, current.vars.join(', ') || '—'),
      ],
    ),
    h('h3', {}, 'Traffic, last hour'),
    traffic(path, signal),
    h('h3', {}, 'Versions'),
    versionsTable(session, path, versions, rerender),
    h('h3', {}, 'Console output (live)'),
    h('p', {}, h('label', { for: 'level-filter' }, 'Show '), filter),
    empty,
    log,
  );
}
