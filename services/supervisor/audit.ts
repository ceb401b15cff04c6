/**
 * The audit log: append-only JSON lines, each chained to the one before by an HMAC (a key derived
 * from the master key) over the previous MAC and the entry. Editing, removing or reordering an entry
 * breaks the chain; cutting entries off the end is caught by the head record (`audit.head`, the last
 * sequence number and MAC, rewritten atomically after every append). Without the master key nobody
 * can write a chain that verifies. Appends are fsync'd: an acknowledged action stays audited.
 * Refusals (outcome `denied`) repeated by one actor are aggregated (audit-repeats.ts): a flood of them
 * is written as a few entries and a summary with the count, so it cannot stall the supervisor.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { RefusalRepeats, type RepeatLimits } from './audit-repeats.ts';

export interface AuditInput {
  /** Who: `admin:<token id>`, `sandbox:<cordon>`, `ingress`, `supervisor`. */
  actor: string;
  /** What, dotted: `worker.deploy`, `codekey.refused`, `admin.denied`, … */
  action: string;
  /** On what, e.g. a worker id. */
  target?: string;
  outcome: 'ok' | 'denied' | 'error';
  detail?: Record<string, unknown>;
}

export interface AuditEntry extends AuditInput {
  seq: number;
  time: string;
  prev: string;
  mac: string;
}

export type VerifyResult = { ok: true; entries: number } | { ok: false; entries: number; badSeq: number; line: number; reason: string };

const GENESIS = '0'.repeat(64);

function macOf(key: Buffer, entry: Omit<AuditEntry, 'mac'>): string {
  const { seq, time, prev, actor, action, target, outcome, detail } = entry;
  return createHmac('sha256', key)
    .update(JSON.stringify([seq, time, prev, actor, action, target ?? null, outcome, detail ?? null]))
    .digest('hex');
}

function sameHex(a: string, b: string): boolean {
  return a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));
}

export class AuditLog {
  readonly #key: Buffer;
  readonly #file: string;
  readonly #headFile: string;
  #seq: number;
  #last: string;
  #fd: number;
  #followers = new Set<(e: AuditEntry) => void>();
  readonly #repeats: RefusalRepeats;
  #closed = false;

  constructor(dir: string, key: Buffer, repeatLimits?: RepeatLimits) {
    this.#repeats = new RefusalRepeats((input) => this.#write(input), repeatLimits);
    this.#key = key;
    this.#file = join(dir, 'audit.log');
    this.#headFile = join(dir, 'audit.head');
    const head = existsSync(this.#headFile) ? (JSON.parse(readFileSync(this.#headFile, 'utf8')) as { seq: number; mac: string }) : { seq: 0, mac: GENESIS };
    this.#seq = head.seq;
    this.#last = head.mac;
    this.#fd = openSync(this.#file, 'a', 0o600);
  }

  /** Write an entry; a refusal repeated too often in its window is counted into a later summary instead (undefined). */
  append(input: AuditInput): AuditEntry | undefined {
    if (this.#closed) throw new Error('the audit log is closed');
    if (input.outcome === 'denied' && !this.#repeats.admit(input)) return undefined;
    return this.#write(input);
  }

  #write(input: AuditInput): AuditEntry {
    const base = { seq: this.#seq + 1, time: new Date().toISOString(), prev: this.#last, ...input };
    const entry: AuditEntry = { ...base, mac: macOf(this.#key, base) };
    writeSync(this.#fd, JSON.stringify(entry) + '\n');
    fsyncSync(this.#fd);
    this.#seq = entry.seq;
    this.#last = entry.mac;
    const tmp = `${this.#headFile}.tmp`;
    writeFileSync(tmp, JSON.stringify({ seq: entry.seq, mac: entry.mac }), { mode: 0o600 });
    renameSync(tmp, this.#headFile);
    for (const f of this.#followers) f(entry);
    return entry;
  }

  /** The last `limit` entries (most recent last). */
  tail(limit = 50): AuditEntry[] {
    const lines = readFileSync(this.#file, 'utf8').split('\n').filter(Boolean);
    return lines.slice(-limit).map((l) => JSON.parse(l) as AuditEntry);
  }

  follow(fn: (e: AuditEntry) => void): () => void {
    this.#followers.add(fn);
    return () => this.#followers.delete(fn);
  }

  verify(): VerifyResult {
    return verifyAuditLog(this.#file, this.#headFile, this.#key);
  }

  close(): void {
    if (this.#closed) return;
    this.#repeats.flush();
    this.#closed = true;
    closeSync(this.#fd);
  }
}

/** Walk the chain; the first entry that does not verify is named by its sequence number and line. */
export function verifyAuditLog(file: string, headFile: string, key: Buffer): VerifyResult {
  const lines = existsSync(file) ? readFileSync(file, 'utf8').split('\n') : [];
  if (lines.at(-1) === '') lines.pop();
  let prev = GENESIS;
  let expected = 1;
  for (let i = 0; i < lines.length; i++) {
    const bad = (reason: string): VerifyResult => ({ ok: false, entries: i, badSeq: expected, line: i + 1, reason });
    let e: AuditEntry;
    try {
      e = JSON.parse(lines[i]!) as AuditEntry;
    } catch {
      return bad('not valid JSON');
    }
    if (e.seq !== expected) return bad(`sequence number ${e.seq} where ${expected} was expected (an entry was removed or reordered)`);
    if (typeof e.prev !== 'string' || !sameHex(e.prev, prev)) return bad('does not chain to the entry before it');
    const { mac, ...rest } = e;
    if (typeof mac !== 'string' || !sameHex(mac, macOf(key, rest))) return bad('its MAC does not match its content (the entry was edited)');
    prev = e.mac;
    expected++;
  }
  const head = existsSync(headFile) ? (JSON.parse(readFileSync(headFile, 'utf8')) as { seq: number; mac: string }) : { seq: 0, mac: GENESIS };
  if (head.seq !== expected - 1 || !sameHex(head.mac, prev)) {
    return {
      ok: false,
      entries: lines.length,
      badSeq: expected,
      line: lines.length + 1,
      reason: `the log ends at entry ${expected - 1} but the head record says ${head.seq} (the log was truncated)`,
    };
  }
  return { ok: true, entries: lines.length };
}
