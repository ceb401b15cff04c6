import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { AuditLog, verifyAuditLog } from './audit.ts';

function fresh(n = 5) {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-audit-'));
  const key = randomBytes(32);
  const log = new AuditLog(dir, key);
  for (let i = 1; i <= n; i++) log.append({ actor: 'admin:t1', action: 'worker.deploy', target: `acme/w${i}`, outcome: 'ok', detail: { i } });
  log.close();
  const file = join(dir, 'audit.log');
  const head = join(dir, 'audit.head');
  const lines = () => readFileSync(file, 'utf8').split('\n').filter(Boolean);
  const write = (ls: string[]) => writeFileSync(file, ls.map((l) => l + '\n').join(''));
  return { dir, key, file, head, lines, write, verify: () => verifyAuditLog(file, head, key) };
}

test('an intact log verifies, and survives reopening', () => {
  const f = fresh();
  assert.deepEqual(f.verify(), { ok: true, entries: 5 });
  const again = new AuditLog(f.dir, f.key);
  again.append({ actor: 'sandbox:standard', action: 'codekey.refused', outcome: 'denied' });
  assert.deepEqual(again.verify(), { ok: true, entries: 6 });
  assert.equal(again.tail(1)[0]!.seq, 6);
  again.close();
});

test('an edited entry is named', () => {
  const f = fresh();
  const ls = f.lines();
  ls[2] = ls[2]!.replace('acme/w3', 'acme/evil');
  f.write(ls);
  const r = f.verify();
  assert.equal(r.ok, false);
  assert.equal(!r.ok && r.badSeq, 3);
  assert.match(!r.ok ? r.reason : '', /edited/);
});

test('a removed entry is named', () => {
  const f = fresh();
  const ls = f.lines();
  ls.splice(1, 1);
  f.write(ls);
  const r = f.verify();
  assert.equal(!r.ok && r.badSeq, 2);
  assert.match(!r.ok ? r.reason : '', /removed or reordered/);
});

test('reordered entries are caught', () => {
  const f = fresh();
  const ls = f.lines();
  [ls[3], ls[4]] = [ls[4]!, ls[3]!];
  f.write(ls);
  const r = f.verify();
  assert.equal(!r.ok && r.badSeq, 4);
});

test('a truncated log is caught by the head record', () => {
  const f = fresh();
  f.write(f.lines().slice(0, 3));
  const r = f.verify();
  assert.equal(r.ok, false);
  assert.match(!r.ok ? r.reason : '', /truncated/);
});

test('a chain rebuilt without the key does not verify', () => {
  const f = fresh();
  const other = fresh();
  // Swap in a whole valid log made with another key, head and all.
  writeFileSync(f.file, readFileSync(other.file));
  writeFileSync(f.head, readFileSync(other.head));
  assert.equal(f.verify().ok, false);
});

test('garbage lines are caught', () => {
  const f = fresh();
  const ls = f.lines();
  ls[0] = '{not json';
  f.write(ls);
  const r = f.verify();
  assert.equal(!r.ok && r.line, 1);
});

describe('repeated refusals', () => {
  const limits = { windowMs: 60_000, individually: 10, maxKinds: 1000, maxReasons: 20 };
  const open = (l = limits) => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-audit-'));
    const key = randomBytes(32);
    return { dir, key, log: new AuditLog(dir, key, l) };
  };
  const refusal = (target?: string, reason = 'unknown key') => ({
    actor: 'sandbox:standard',
    action: 'codekey.refused',
    target,
    outcome: 'denied' as const,
    detail: { op: 'loadWorker', reason },
  });

  test('5,000 alike are written as the first few and one summary with the count; the chain verifies', () => {
    const { dir, key, log } = open();
    for (let i = 0; i < 5000; i++) log.append(refusal(undefined, i % 2 ? 'unknown key' : 'malformed'));
    log.append({ actor: 'admin:t1', action: 'worker.deploy', target: 'acme/w', outcome: 'ok' });
    log.close();
    const entries = readFileSync(join(dir, 'audit.log'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    assert.equal(entries.length, 12);
    assert.equal(entries.filter((e) => e.action === 'codekey.refused' && !e.detail.count).length, 10);
    const summary = entries.at(-1);
    assert.equal(summary.detail.count, 4990);
    assert.deepEqual(summary.detail.reasons, { 'unknown key': 2495, malformed: 2495 });
    assert.equal(entries[10].action, 'worker.deploy', 'other entries are never held back');
    assert.deepEqual(verifyAuditLog(join(dir, 'audit.log'), join(dir, 'audit.head'), key), { ok: true, entries: 12 });
  });

  test('a window that ends writes its summary by itself, and the next window starts afresh', async () => {
    const { dir, log } = open({ ...limits, windowMs: 100, individually: 2 });
    for (let i = 0; i < 50; i++) log.append(refusal('acme/w'));
    await new Promise((r) => setTimeout(r, 300));
    const lines = () =>
      readFileSync(join(dir, 'audit.log'), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l));
    assert.deepEqual(
      lines().map((e) => e.detail.count ?? 1),
      [1, 1, 48],
    );
    log.append(refusal('acme/w'));
    assert.equal(lines().length, 4, 'a new window writes the first one by one again');
    log.close();
  });

  test('kinds are told apart by actor, action and target; too many kinds share one per actor and action', () => {
    const { dir, log } = open({ ...limits, maxKinds: 3, individually: 1 });
    for (let i = 0; i < 10; i++) log.append(refusal(`t/w${i}`));
    log.close();
    const entries = readFileSync(join(dir, 'audit.log'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      entries.filter((e) => !e.detail.count).map((e) => e.target),
      ['t/w0', 't/w1', 't/w2'],
    );
    const shared = entries.find((e) => e.detail.count);
    assert.equal(shared.target, '*');
    assert.equal(shared.detail.count, 7);
    assert.equal(shared.detail.reasons['t/w9: unknown key'], 1);
  });
});
