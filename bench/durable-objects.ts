/**
 * Durable Objects, in one run: RPC round trips a second on one object and spread over 1,000 objects,
 * on Cordon and on workerd with local-disk object storage (the same worker on both); how many idle
 * objects a GiB holds on Cordon (the growth of every process of the mesh per object held: its lease,
 * its instance, its storage capability; it has not opened its database); and the time to wake an
 * evicted object (its first call after idle eviction) beside a call to a live one. Each request makes
 * CALLS calls, one after another; calls/s = requests/s × CALLS. On Cordon a stub is a Workers RPC
 * session through the supervisor, so "spread" pays a session per object per request (an isolate
 * remembers a name's id). And WebSocket messages an object sends a second to one client (ws.send in a
 * loop of webSocketMessage), the path a chat room's broadcast takes.
 */
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { WsClient } from '../test/helpers/ws-client.ts';
import { startTestMesh, waitFor, type TestMesh } from '../test/helpers/mesh.ts';
import { durableObjectConfig, startWorkerd } from '../test/helpers/workerd.ts';

const SECONDS = Number(process.env.BENCH_SECONDS || 8);
const CALLS = 40;
const SPREAD = 1000;
/** Objects made for the memory figure, and objects woken for the wake-time figure. */
const HELD = 5000;
const WOKEN = 200;
const say = (s: string) => process.stdout.write(s + '\n');

/** Messages an object sends in one burst (one webSocketMessage), and bursts a run makes at least. */
const BURST = 2000;
const BURSTS = 10;

const WORKER = `import { DurableObject } from 'cloudflare:workers';
export class Counter extends DurableObject {
  n = 0;
  add(k) { this.n += k; return this.n; }
  async fetch() {
    const [client, server] = Object.values(new WebSocketPair());
    this.ctx.acceptWebSocket(server);
    return new Response(null, { status: 101, webSocket: client });
  }
  webSocketMessage(ws, message) {
    const n = Number(message);
    for (let i = 0; i < n; i++) ws.send('message ' + i);
  }
}
export default { async fetch(req, env) {
  const url = new URL(req.url);
  if (req.headers.get('upgrade') === 'websocket') return env.COUNTER.getByName('ws').fetch(req);
  const spread = Number(url.searchParams.get('spread') || 0);
  const calls = Number(url.searchParams.get('calls') || ${CALLS});
  // Where this request starts among the objects: given, or anywhere.
  const base = Number(url.searchParams.get('base') ?? Math.floor(Math.random() * 1e9));
  const prefix = url.searchParams.get('prefix') || 'o';
  const one = spread ? null : env.COUNTER.getByName('one');
  let n = 0;
  for (let i = 0; i < calls; i++) {
    const stub = one ?? env.COUNTER.getByName(prefix + ((base + i) % spread));
    if ((await stub.add(1)) > 0) n++;
  }
  return new Response(String(n));
} }`;

async function callsPerSecond(url: string, label: string): Promise<number> {
  say(`  ${label}: ${SECONDS} s of load …`);
  const r = await autocannon({ url, connections: 8, duration: SECONDS, pipelining: 1 });
  if (r.non2xx) say(`    (${r.non2xx} answers were not 2xx)`);
  return r.requests.average * CALLS;
}

/** Resident memory of every process of the mesh (supervisor, SQL processes, sandboxes, …), in bytes. */
function meshRss(mesh: TestMesh): number {
  let total = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (!readFileSync(`/proc/${entry}/environ`, 'utf8').includes(`CORDON_DATA_DIR=${mesh.dataDir}\0`)) continue;
      total += Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${entry}/status`, 'utf8'))?.[1] ?? 0) * 1024;
    } catch {
      // gone, or not ours to read
    }
  }
  return total;
}

async function deploy(mesh: TestMesh, dir: string): Promise<string> {
  const r = await mesh.cli(['deploy'], dir);
  if (r.code !== 0) throw new Error(r.stderr);
  const url = `${mesh.httpUrl}/do-bench`;
  await waitFor('the objects worker on the mesh', async () => (await fetch(`${url}?calls=1`)).status === 200 || undefined);
  return url;
}

/** `count` requests one after another; their times in ms, sorted. */
async function timed(count: number, url: (i: number) => string): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    const r = await fetch(url(i));
    const text = await r.text();
    if (r.status !== 200) throw new Error(`${url(i)}: ${r.status} ${text.slice(0, 300)}`);
    out.push(performance.now() - t);
  }
  return out.sort((a, b) => a - b);
}
const pct = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))]!;

/** WebSocket messages a second one object sends to one client (bursts of BURST, for SECONDS at least). */
async function webSocketSends(url: string): Promise<number> {
  const client = new WsClient(url.replace('http:', 'ws:'));
  await client.opened;
  let sent = 0;
  const t = performance.now();
  try {
    for (let b = 0; b < BURSTS || performance.now() - t < SECONDS * 1000; b++) {
      client.ws.send(String(BURST));
      for (let i = 0; i < BURST; i++) if ((await client.next(30_000)) !== `message ${i}`) throw new Error('a message came out of order');
      sent += BURST;
    }
    return sent / ((performance.now() - t) / 1000);
  } finally {
    client.ws.close();
  }
}

/** The WebSocket figure alone, on a mesh of its own (before/after comparisons of the send path). */
export async function objectWebSocketSends(): Promise<void> {
  const dir = writeProject();
  const mesh = await startTestMesh();
  try {
    const url = await deploy(mesh, dir);
    say(`  Cordon, one object's ws.send   ${(await webSocketSends(url)).toFixed(0).padStart(8)} messages/s to one client (bursts of ${BURST})`);
  } finally {
    await mesh.stop();
  }
}

function writeProject(): string {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-bench-do-'));
  writeFileSync(join(dir, 'index.js'), WORKER);
  writeFileSync(
    join(dir, 'wrangler.jsonc'),
    JSON.stringify({
      name: 'do-bench',
      main: 'index.js',
      compatibility_date: '2026-01-01',
      routes: ['*/do-bench*'],
      migrations: [{ tag: 'v1', new_sqlite_classes: ['Counter'] }],
      durable_objects: { bindings: [{ name: 'COUNTER', class_name: 'Counter' }] },
    }),
  );
  return dir;
}

export async function durableObjectsBench(): Promise<void> {
  say(
    `9. Durable Objects: RPC round trips per second (${CALLS} calls a request), WebSocket messages an object sends per second, idle objects per GiB, waking an evicted object`,
  );
  const dir = writeProject();
  const workerd = await startWorkerd({
    files: { 'index.js': WORKER },
    experimental: true,
    config: (ports, wdir) => durableObjectConfig(ports, wdir, { className: 'Counter', binding: 'COUNTER', uniqueKey: 'cordon-bench-counter' }),
  });
  const wport = workerd.ports[0];
  // Objects stay while idle here (the memory figure counts them); the wake figure has a mesh of its own.
  let mesh = await startTestMesh({ CORDON_OBJECT_IDLE_SECONDS: '3600' });
  try {
    const url = await deploy(mesh, dir);
    await waitFor('workerd', async () => (await fetch(`http://127.0.0.1:${wport}/?calls=1`)).status === 200 || undefined);
    // Every object of the spread exists before the clock runs, on both (so neither pays for creating them).
    say(`  making the ${SPREAD} objects on both …`);
    for (const base of [`${url}?spread=${SPREAD}`, `http://127.0.0.1:${wport}/?spread=${SPREAD}`])
      await timed(SPREAD / CALLS, (i) => `${base}&base=${i * CALLS}`);
    const one = await callsPerSecond(url, 'Cordon, one object');
    const spread = await callsPerSecond(`${url}?spread=${SPREAD}`, `Cordon, over ${SPREAD} objects`);
    const wdOne = await callsPerSecond(`http://127.0.0.1:${wport}/`, 'workerd (local disk), one object');
    const wdSpread = await callsPerSecond(`http://127.0.0.1:${wport}/?spread=${SPREAD}`, `workerd (local disk), over ${SPREAD} objects`);
    say(`  Cordon, one object           ${one.toFixed(0).padStart(8)} calls/s   ${(one / wdOne).toFixed(2)}x workerd`);
    say(`  Cordon, over ${SPREAD} objects   ${spread.toFixed(0).padStart(8)} calls/s   ${(spread / wdSpread).toFixed(2)}x workerd`);
    say(`  workerd, one object          ${wdOne.toFixed(0).padStart(8)} calls/s`);
    say(`  workerd, over ${SPREAD} objects  ${wdSpread.toFixed(0).padStart(8)} calls/s`);
    const wsOurs = await webSocketSends(url);
    const wsTheirs = await webSocketSends(`http://127.0.0.1:${wport}/`);
    say(
      `  Cordon, one object's ws.send   ${wsOurs.toFixed(0).padStart(8)} messages/s   ${(wsOurs / wsTheirs).toFixed(2)}x workerd (bursts of ${BURST} to one client)`,
    );
    say(`  workerd, one object's ws.send  ${wsTheirs.toFixed(0).padStart(8)} messages/s`);

    // Idle objects: HELD new objects (names no load above used), then what the whole mesh grew by. Many,
    // so that what they hold stands out of the processes' garbage-collection swings.
    say(`  idle objects: making ${HELD} …`);
    await new Promise((r) => setTimeout(r, 3000));
    const before = meshRss(mesh);
    const batches = HELD / CALLS;
    for (let b = 0; b < batches; b += 8)
      await Promise.all(
        Array.from({ length: Math.min(8, batches - b) }, (_, k) => timed(1, () => `${url}?spread=${HELD}&prefix=held-&base=${(b + k) * CALLS}`)),
      );
    await new Promise((r) => setTimeout(r, 3000));
    const perObject = Math.max(1, (meshRss(mesh) - before) / HELD);
    say(`  Cordon idle object   ${(perObject / 1024).toFixed(1)} KiB across the mesh   ${Math.floor(1024 ** 3 / perObject)} per GiB`);
  } finally {
    workerd.stop();
    await mesh.stop();
  }

  // Waking: objects evicted after 1 s idle; each one's first call, then a call to it live.
  mesh = await startTestMesh({ CORDON_OBJECT_IDLE_SECONDS: '1' });
  try {
    const url = await deploy(mesh, dir);
    const one = (i: number) => `${url}?spread=${WOKEN}&calls=1&prefix=wake-&base=${i}`;
    await timed(WOKEN, one);
    await new Promise((r) => setTimeout(r, 4000)); // past the idle time and the sweep after it
    const wake = await timed(WOKEN, one);
    const live = await timed(WOKEN, one);
    say(
      `  wake an evicted object   p50 ${pct(wake, 50).toFixed(1)} ms   p99 ${pct(wake, 99).toFixed(1)} ms   (a live one: p50 ${pct(live, 50).toFixed(1)} ms, one request with one call)`,
    );
  } finally {
    await mesh.stop();
  }
}
