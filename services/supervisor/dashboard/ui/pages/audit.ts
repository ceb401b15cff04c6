/** Audit: whether the log's hash chain verifies (or the first entry that breaks it), and its latest entries. */
import { api } from '../api.ts';
import { h, table, when } from '../dom.ts';

type Verify = { ok: true; entries: number } | { ok: false; entries: number; badSeq: number; line: number; reason: string };
interface Entry {
  seq: number;
  time: string;
  actor: string;
  action: string;
  target?: string;
  outcome: string;
  detail?: unknown;
}

export async function auditPage(): Promise<Node> {
  const [v, { entries }] = await Promise.all([api<Verify>('GET', '/v1/audit/verify'), api<{ entries: Entry[] }>('GET', '/v1/audit?limit=200')]);
  const verdict = v.ok
    ? h('p', { class: 'verdict ok', id: 'audit-verify' }, `Chain OK: ${v.entries} entries verify.`)
    : h('p', { class: 'verdict bad', id: 'audit-verify', role: 'alert' }, `Chain BROKEN at entry ${v.badSeq} (line ${v.line}): ${v.reason}`);
  return h(
    'section',
    {},
    h('h2', {}, 'Audit log'),
    verdict,
    table(
      ['#', 'Time', 'Actor', 'Action', 'Target', 'Outcome', 'Detail'],
      [...entries]
        .reverse()
        .map((e) => [
          e.seq,
          when(e.time),
          e.actor,
          e.action,
          e.target ?? '—',
          h('span', { class: `badge outcome-${e.outcome}` }, e.outcome),
          e.detail === undefined ? '' : JSON.stringify(e.detail),
        ]),
      'The audit log is empty.',
    ),
  );
}
