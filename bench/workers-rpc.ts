/**
 * Workers RPC between two workers, in one run: calls per second of `env.API.add()` on Cordon (the
 * caller and callee in different cordons, so across the mesh) beside `env.API.fetch()` between the
 * same two, and beside two workerd workers bound by a service binding doing the same calls.
 * Each request makes CALLS calls, one after another; calls/s = requests/s × CALLS.
 */
import { join } from 'node:path';
import autocannon from 'autocannon';
import { startTestMesh, waitFor } from '../test/helpers/mesh.ts';
import { serviceBindingConfig, startWorkerd } from '../test/helpers/workerd.ts';

const SECONDS = Number(process.env.BENCH_SECONDS || 8);
const CALLS = 40;
const say = (s: string) => process.stdout.write(s + '\n');

const API = `import { WorkerEntrypoint } from 'cloudflare:workers';
export default class extends WorkerEntrypoint {
  add(a, b) { return a + b; }
  fetch() { return new Response('ok'); }
}`;
const FRONT = `export default { async fetch(req, env) {
  const fetching = new URL(req.url).searchParams.has('fetch');
  let n = 0;
  for (let i = 0; i < ${CALLS}; i++) {
    if (fetching) { const r = await env.API.fetch('http://api/'); await r.text(); n++; }
    else n += (await env.API.add(i, 1)) - i;
  }
  return new Response(String(n));
} }`;

async function callsPerSecond(url: string, label: string): Promise<number> {
  say(`  ${label}: ${SECONDS} s of load …`);
  const r = await autocannon({ url, connections: 8, duration: SECONDS, pipelining: 1 });
  if (r.non2xx) say(`    (${r.non2xx} answers were not 2xx)`);
  return r.requests.average * CALLS;
}

export async function workersRpcBench(): Promise<void> {
  say(`6. Workers RPC: calls per second between two workers (${CALLS} calls a request, one after another)`);
  const workerd = await startWorkerd({ files: { 'api.js': API, 'front.js': FRONT }, config: serviceBindingConfig });
  const dir = workerd.dir;
  const mesh = await startTestMesh();
  try {
    for (const args of [
      ['deploy', join(dir, 'api.js'), '--name', 'api', '--cordon', 'untrusted'],
      ['deploy', join(dir, 'front.js'), '--name', 'front', '--route', '*/front*', '--service', 'API=api'],
    ]) {
      const r = await mesh.cli(args);
      if (r.code !== 0) throw new Error(r.stderr);
    }
    await waitFor('front on the mesh', async () => (await fetch(`${mesh.httpUrl}/front`)).status === 200 || undefined);
    await waitFor('workerd', async () => (await fetch(`${workerd.url()}/`)).status === 200 || undefined);
    const rpc = await callsPerSecond(`${mesh.httpUrl}/front`, 'Cordon, env.API.add()');
    const viaFetch = await callsPerSecond(`${mesh.httpUrl}/front?fetch`, 'Cordon, env.API.fetch()');
    const wd = await callsPerSecond(`${workerd.url()}/`, 'workerd, env.API.add()');
    say(`  Cordon RPC   ${rpc.toFixed(0).padStart(8)} calls/s   ${(rpc / wd).toFixed(2)}x workerd`);
    say(`  Cordon fetch ${viaFetch.toFixed(0).padStart(8)} calls/s   ${(viaFetch / wd).toFixed(2)}x workerd's RPC`);
    say(`  workerd RPC  ${wd.toFixed(0).padStart(8)} calls/s`);
  } finally {
    workerd.stop();
    await mesh.stop();
  }
}
