/**
 * A probe of the process sandbox, run confined exactly as a sandbox is (`npx cordon doctor`, tests):
 * it locks down the same way, then tries what must fail and what must still work, and prints one
 * JSON line. Argument: the Unix socket of the prober, outside, which answers "ping" with "pong".
 */
import ivm from 'isolated-vm';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { lockdown } from '../../lib/seccomp/lockdown.ts';

const outcome = (fn: () => unknown): string => {
  try {
    fn();
    return 'allowed';
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? (e as Error).message;
  }
};
const socketOutcome = (open: () => ReturnType<typeof connect>, expect?: string) =>
  new Promise<string>((resolve) => {
    const s = open();
    let got = '';
    s.on('data', (d) => (got += d));
    s.on('connect', () => (expect ? s.write('ping') : (s.destroy(), resolve('connected'))));
    s.on('end', () => resolve(got || 'connected'));
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });

lockdown();
const result: Record<string, unknown> = {};
result.readEtcPasswd = outcome(() => readFileSync('/etc/passwd'));
result.readOwnCode = outcome(() => readFileSync(import.meta.filename));
result.writeFile = outcome(() => writeFileSync('/tmp/escape', 'x'));
result.exec = String(spawnSync('/bin/sh', ['-c', 'true']).error?.message ?? 'ran');
result.tcpConnect = await socketOutcome(() => connect(80, '1.1.1.1'));
result.tcpLoopback = await socketOutcome(() => connect(22, '127.0.0.1'));
result.unixSocket = await socketOutcome(() => connect(process.argv[2]!), 'pong');
const isolate = new ivm.Isolate({ memoryLimit: 16 });
const context = await isolate.createContext();
result.isolate = await context.eval('6 * 7');
result.cpuLimit = await context.eval('for (;;) {}', { timeout: 50 }).then(
  () => 'no limit',
  (e: Error) => e.message,
);
result.wasm = await context.eval(`WebAssembly.validate(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]))`);
result.timer = await new Promise((r) => setTimeout(() => r('fired'), 10));
result.memoryLimit = await context.eval('const a = []; for (;;) a.push(new Array(1e5).fill(1))', { timeout: 5000 }).then(
  () => 'no limit',
  (e: Error) => e.message,
);
result.isolateAfter = await (await new ivm.Isolate({ memoryLimit: 16 }).createContext()).eval('"still works"');
process.stdout.write(JSON.stringify(result) + '\n');
process.exit(0);
