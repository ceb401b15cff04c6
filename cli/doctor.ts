/**
 * `cordon doctor`: each protection layer of the sandbox processes, whether this machine provides it,
 * and a live probe — a process confined exactly as a sandbox is, trying to escape.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { findBwrap, processLayers, ROOT, spawnConfined } from '../lib/process-sandbox.ts';
import { ceilingSupport, MemoryCeilings } from '../lib/memory-ceiling.ts';
import { sandboxCeilingMb } from '../lib/config.ts';

export type ProbeResult = Record<string, unknown>;

/** Runs services/sandbox/probe.ts confined as a sandbox is, with a Unix socket to talk to; its findings. */
export async function probeSandbox(): Promise<ProbeResult> {
  const bwrap = findBwrap();
  if (!bwrap) throw new Error('bubblewrap is not installed');
  const dataDir = mkdtempSync(join(tmpdir(), 'cordon-probe-'));
  const socket = join(dataDir, 'sockets', 'probe.sock');
  mkdirSync(join(dataDir, 'sockets'), { mode: 0o700 });
  const server = createServer((s) => s.once('data', () => s.end('pong')));
  await new Promise<void>((r) => server.listen(socket, r));
  try {
    const child = spawnConfined(
      { bwrap, nodeArgs: ['--no-node-snapshot'], script: join(ROOT, 'services/sandbox/probe.ts'), scriptArgs: [socket], dataDir },
      { output: 'pipe' },
    );
    let out = '';
    let err = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (err += d));
    const code = await new Promise<number | string>((r) => child.on('exit', (c, sig) => r(sig ?? c ?? -1)));
    const line = out.trim().split('\n').pop() ?? '';
    // Its exit code is not looked at: isolated-vm may crash on exit after a memory-limit disposal (docs/security.md, "What the code relies on").
    if (!line.startsWith('{')) throw new Error(`the probe process ended with ${code} before reporting: ${err.trim().slice(-500) || out.trim().slice(-500)}`);
    return JSON.parse(line) as ProbeResult;
  } finally {
    server.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** What the probe must find: [finding, its key, a test of the value]. */
const EXPECTED: [string, string, (v: unknown) => boolean][] = [
  ['opening /etc/passwd fails', 'readEtcPasswd', (v) => v === 'EACCES'],
  ['reading the app itself fails once locked down', 'readOwnCode', (v) => v === 'EACCES'],
  ['writing a file fails', 'writeFile', (v) => v === 'EACCES'],
  ['exec fails', 'exec', (v) => v !== 'ran'],
  ['a TCP connection to the internet fails', 'tcpConnect', (v) => v !== 'connected'],
  ['a TCP connection to loopback fails', 'tcpLoopback', (v) => v !== 'connected'],
  ['the Unix socket works', 'unixSocket', (v) => v === 'pong'],
  ['isolates run', 'isolate', (v) => v === 42],
  ['the CPU limit ends an endless loop', 'cpuLimit', (v) => typeof v === 'string' && /timed out/i.test(v)],
  ['Wasm validates', 'wasm', (v) => v === true],
  ['timers fire', 'timer', (v) => v === 'fired'],
  ['the memory limit ends a memory bomb', 'memoryLimit', (v) => typeof v === 'string' && /memory|disposed/i.test(v)],
  ['a new isolate works afterwards', 'isolateAfter', (v) => v === 'still works'],
];

export function checkProbe(result: ProbeResult): { finding: string; ok: boolean; value: unknown }[] {
  return EXPECTED.map(([finding, key, test]) => ({ finding, ok: test(result[key]), value: result[key] }));
}

/**
 * The kernel's memory ceiling for sandbox processes: which kind is in force (tried for real: a cgroup
 * is made, given the ceiling, read back and removed), or none and why.
 */
export function memoryCeiling(): { kind: 'cgroup2' | 'cgroup1' | 'none'; detail: string } {
  const bytes = sandboxCeilingMb() * 1024 * 1024;
  const ceilings = MemoryCeilings.open(ceilingSupport(), bytes);
  if (!(ceilings instanceof MemoryCeilings)) return { kind: 'none', detail: ceilings.reason };
  try {
    ceilings.join('doctor-probe');
    const read = ceilings.limitOf('doctor-probe');
    if (read !== bytes) return { kind: 'none', detail: `the kernel reads the ceiling back as ${read}, not ${bytes}` };
    return { kind: ceilings.kind, detail: ceilings.describe() };
  } catch (e) {
    return { kind: 'none', detail: `cannot set a ceiling under ${ceilings.group}: ${(e as Error).message}` };
  } finally {
    ceilings.close();
  }
}

/** Prints the report; the exit code is 1 when a layer is missing (unless insecure mode is chosen) or the probe fails. */
export async function runDoctor(opts: { insecure: boolean }): Promise<number> {
  const out = (s: string) => process.stdout.write(s + '\n');
  out('Process sandbox layers (each sandbox process):');
  const layers = processLayers();
  for (const l of layers) out(`  ${l.active ? '✔' : '✖'} ${l.name} — ${l.detail}`);
  const missing = layers.filter((l) => !l.active);
  const ceiling = memoryCeiling();
  out('Memory ceiling (each sandbox process, from the kernel):');
  if (ceiling.kind === 'none')
    out(`  ⚠ none — ${ceiling.detail}. \`cordon start\` runs sandboxes without one (and says so); the isolates' own limits still apply.`);
  else out(`  ✔ ${ceiling.detail}`);
  let failed = false;
  if (missing.length === 0 || layers.slice(0, 2).every((l) => l.active)) {
    out('Probe (a process confined as a sandbox is, trying to get out):');
    try {
      for (const c of checkProbe(await probeSandbox())) {
        out(`  ${c.ok ? '✔' : '✖'} ${c.finding} (${JSON.stringify(c.value)})`);
        failed ||= !c.ok;
      }
    } catch (e) {
      out(`  ✖ the probe could not run: ${(e as Error).message}`);
      failed = true;
    }
  }
  if (missing.length && opts.insecure) {
    out(`WARNING: ${missing.length} layer(s) missing; with --insecure-no-process-sandbox the mesh starts anyway. Never in production.`);
    return failed ? 1 : 0;
  }
  if (missing.length)
    out(`${missing.length} layer(s) missing: \`cordon start\` refuses to run sandboxes until they are there (or --insecure-no-process-sandbox).`);
  else if (!failed) out('All layers active.');
  return missing.length || failed ? 1 : 0;
}
