import { test } from 'node:test';
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
