/**
 * Framework apps, requests per second: the Hono and itty-router README apps (test/fixtures/projects) and
 * examples/hello as the baseline, each through the whole mesh (deployed with the CLI, on its default
 * route) vs the same bundle on workerd, and through our runtime alone (in-process, no HTTP or RPC), all
 * in one run: whether framework apps lose more than hello, and whether the isolate or the path does.
 */
import { cpSync, existsSync, mkdirSync, mkdtempSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { bundleWorker } from '../cli/bundle.ts';
import { runtimeAlone } from './runtime-alone.ts';
import { fetchHost, ROOT, startTestMesh, waitFor } from '../test/helpers/mesh.ts';
import { startWorkerd } from '../test/helpers/workerd.ts';

const SECONDS = Number(process.env.BENCH_SECONDS || 8);
const say = (s: string) => process.stdout.write(s + '\n');
const require = createRequire(import.meta.url);
const packageDir = (name: string) => (require.resolve.paths(name) ?? []).map((p) => join(p, name)).find((d) => existsSync(join(d, 'package.json')));

const APPS = [
  { name: 'hello', entry: 'examples/hello/index.ts', path: '/' },
  { name: 'hono-readme', entry: 'test/fixtures/projects/hono-readme', dep: 'hono', path: '/' },
  { name: 'itty-readme', entry: 'test/fixtures/projects/itty-readme', dep: 'itty-router', path: '/hello/bench' },
] as const;
type App = (typeof APPS)[number];

interface Rate {
  rps: number;
  p99: number;
}
async function load(url: string, host: string | undefined, label: string): Promise<Rate> {
  say(`  ${label}: ${SECONDS} s of load …`);
  const r = await autocannon({ url, connections: 32, duration: SECONDS, pipelining: 1, ...(host ? { headers: { host } } : {}) });
  if (r.non2xx) say(`    (${r.non2xx} answers were not 2xx)`);
  return { rps: r.requests.average, p99: r.latency.p99 };
}

/** The app's bundle as `deploy` makes it, and the arguments that deploy it (a fixture is copied, its package installed beside it). */
async function projectOf(app: App): Promise<{ deploy: string[]; cwd: string; code: string }> {
  if (!('dep' in app)) {
    const b = await bundleWorker(join(ROOT, app.entry), { compatibilityDate: '2025-06-01' });
    return { deploy: ['deploy', app.entry, '--name', app.name], cwd: ROOT, code: b.modules[0]!.content };
  }
  const dir = mkdtempSync(join(tmpdir(), 'cordon-bench-app-'));
  cpSync(join(ROOT, app.entry), dir, { recursive: true });
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(packageDir(app.dep)!, join(dir, 'node_modules', app.dep));
  const b = await bundleWorker(join(dir, 'src/index.js'), { compatibilityDate: '2025-06-01' });
  return { deploy: ['deploy'], cwd: dir, code: b.modules[0]!.content };
}

export async function frameworksBench(): Promise<void> {
  say('9. framework apps (Hono, itty-router), requests per second');
  const missing = APPS.flatMap((a) => ('dep' in a && !packageDir(a.dep) ? [a.dep] : []));
  if (missing.length) {
    say(`  skipped: ${missing.join(', ')} not installed (npm install)`);
    return;
  }
  const projects = await Promise.all(APPS.map(projectOf));
  const workerd = await startWorkerd({
    files: Object.fromEntries(APPS.map((a, i) => [`${a.name}.js`, projects[i]!.code])),
    ports: APPS.length,
    config: (ports) => `const config :Workerd.Config = (
  services = [ ${APPS.map((a) => `(name = "${a.name}", worker = ( modules = [ (name = "w.js", esModule = embed "${a.name}.js") ], compatibilityDate = "2025-06-01" ))`).join(', ')} ],
  sockets = [ ${APPS.map((a, i) => `(name = "${a.name}", address = "127.0.0.1:${ports[i]}", http = (), service = "${a.name}")`).join(', ')} ],
);`,
  });
  const ports = workerd.ports;
  const mesh = await startTestMesh();
  try {
    for (const [i, app] of APPS.entries()) {
      const r = await mesh.cli(projects[i]!.deploy, projects[i]!.cwd);
      if (r.code !== 0) throw new Error(`deploy ${app.name}: ${r.stderr}`);
      const host = `${app.name}.default.workers.localhost`;
      await waitFor(`${app.name} on workerd`, async () => (await fetch(`http://127.0.0.1:${ports[i]}${app.path}`)).status === 200 || undefined);
      await waitFor(`${app.name} on the mesh`, async () => (await fetchHost(mesh, host, app.path)).status === 200 || undefined);
      const peer = await load(`http://127.0.0.1:${ports[i]}${app.path}`, undefined, `${app.name} on workerd`);
      const ours = await load(`${mesh.httpUrl}${app.path}`, host, `${app.name} on the cordon mesh`);
      const inProcess = await runtimeAlone(app.name, projects[i]!.code, app.path);
      say(`  ${`${app.name} workerd`.padEnd(26)} ${peer.rps.toFixed(0).padStart(8)} req/s   p99 ${String(peer.p99).padStart(4)} ms`);
      say(
        `  ${`${app.name} cordon mesh`.padEnd(26)} ${ours.rps.toFixed(0).padStart(8)} req/s   p99 ${String(ours.p99).padStart(4)} ms   ${(ours.rps / peer.rps).toFixed(2)}x workerd`,
      );
      say(
        `  ${`${app.name} runtime alone`.padEnd(26)} ${inProcess.toFixed(0).padStart(8)} req/s   (in-process: ${(inProcess / peer.rps).toFixed(2)}x workerd)`,
      );
    }
  } finally {
    workerd.stop();
    await mesh.stop();
  }
}

// `node bench/frameworks.ts` runs this section alone.
if (import.meta.main) await frameworksBench();
