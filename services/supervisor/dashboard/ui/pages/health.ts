/** Service health (`/healthz`: each service up or down) and drift (whether each runs with the settings the mesh means it to). */
import { CordonError } from '../../../../../lib/errors.ts';
import { api, type SessionInfo } from '../api.ts';
import { h, table, when } from '../dom.ts';

type DriftStatus = { config: 'ok' | 'drift'; routes?: 'ok' | 'drift'; reportedAt: string };
interface Health {
  status: 'ok' | 'starting';
  services: Record<string, 'up' | 'down'>;
}

const flag = (good: boolean, text: string) => h('span', { class: `badge ${good ? 'ok' : 'bad'}` }, text);

/** The mesh-wide drift report is the operator's (the API refuses it to any other token): others get a note, not an error. */
async function drift(session: SessionInfo): Promise<Node> {
  const operatorOnly = h('p', { class: 'muted', id: 'drift-note' }, 'Drift is shown to the operator only (an admin token not bound to a tenant).');
  if (session.tenant !== null || !session.scopes.includes('admin')) return operatorOnly;
  let services: Record<string, DriftStatus>;
  try {
    ({ services } = await api<{ services: Record<string, DriftStatus> }>('GET', '/v1/drift'));
  } catch (e) {
    if (e instanceof CordonError && e.status === 403) return operatorOnly;
    throw e;
  }
  const entries = Object.entries(services).sort(([a], [b]) => a.localeCompare(b));
  const drifting = entries.filter(([, d]) => d.config === 'drift' || d.routes === 'drift').map(([s]) => s);
  return h(
    'div',
    {},
    entries.length === 0
      ? h('p', { class: 'muted', id: 'drift-verdict' }, 'No service has reported its settings yet.')
      : drifting.length === 0
        ? h('p', { class: 'verdict ok', id: 'drift-verdict' }, `No drift: all ${entries.length} services run with the settings the mesh means them to.`)
        : h(
            'p',
            { class: 'verdict bad', id: 'drift-verdict', role: 'alert' },
            `Drift in: ${drifting.join(', ')}. Restart them with the mesh's settings (cordon start).`,
          ),
    entries.length > 0 &&
      table(
        ['Service', 'Settings', 'Routes', 'Reported'],
        entries.map(([s, d]) => [s, flag(d.config === 'ok', d.config), d.routes ? flag(d.routes === 'ok', d.routes) : '—', when(d.reportedAt)]),
        '',
      ),
  );
}

export async function healthPage(session: SessionInfo): Promise<Node> {
  // /healthz answers 503 while a service is down, with the same body: read it either way.
  const r = await fetch('/healthz', { credentials: 'same-origin' });
  const health = (await r.json()) as Health;
  const services = Object.entries(health.services).sort(([a], [b]) => a.localeCompare(b));
  return h(
    'section',
    {},
    h('h2', {}, 'Service health'),
    health.status === 'ok'
      ? h('p', { class: 'verdict ok', id: 'health-verdict' }, `OK: all ${services.length} services are up.`)
      : h(
          'p',
          { class: 'verdict bad', id: 'health-verdict', role: 'alert' },
          `Not ready: ${
            services
              .filter(([, u]) => u === 'down')
              .map(([s]) => s)
              .join(', ') || 'starting'
          } down.`,
        ),
    table(
      ['Service', 'State'],
      services.map(([s, u]) => [s, flag(u === 'up', u)]),
      'No service has registered yet.',
    ),
    h('h3', {}, 'Drift'),
    await drift(session),
  );
}
