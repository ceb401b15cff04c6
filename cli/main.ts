/** The `cordon` command line. */
import { parseArgs } from 'node:util';
import { createHash } from 'node:crypto';
import { adminClient, cliError } from './admin-client.ts';
import { CordonError } from '../lib/errors.ts';
import { bundleWorker } from './bundle.ts';
import { runStart } from './launcher.ts';
import { RUN_USAGE, runService } from './run.ts';
import { runDedicatedAgent } from './dedicated-agent.ts';
import { keysCommand } from './keys.ts';
import { runDoctor } from './doctor.ts';
import { runDebug } from './debug.ts';
import { writeExport, type ExportedVersion } from './export.ts';
import { CONFIG_NAMES, findWorkerConfig, readWorkerConfig } from './worker-config.ts';
import { workflowsCommand, WORKFLOWS_USAGE } from './workflows.ts';
import { objectsCommand, OBJECTS_USAGE } from './objects.ts';
import { d1Command, D1_USAGE } from './d1.ts';
import type { VarValue } from '../schemas/worker.ts';
import type { AssetFile, AssetManifest } from '../schemas/assets.ts';
import { gatherAssets, uploadAssets } from './assets.ts';

/**
 * The module of an assets-only worker (no `main`): never run, since the assets answer every request. It
 * names the assets' hashes, so the "code" quarantine recognises is this worker's assets, not a stub
 * every assets-only worker of every tenant would share.
 */
function assetsOnlyBundle(files: AssetFile[]) {
  const digest = createHash('sha256')
    .update(files.map((f) => `${f.path}\0${f.hash}`).join('\n'))
    .digest('hex');
  return {
    mainModule: 'assets-only.js',
    modules: [{ name: 'assets-only.js', type: 'esm' as const, content: `// static assets ${digest}\nexport default {};\n` }],
    notes: [] as string[],
  };
}

const USAGE = `usage: cordon <command> [options]

  start [--nats <url>] [--insecure-no-process-sandbox]
                                  run the whole mesh on this machine (Unix sockets, or NATS); sandboxes
                                  run confined (bubblewrap + seccomp) unless the flag says otherwise
  run <supervisor|egress|ingress|sandbox> [--cordon <name>] [--insecure-no-process-sandbox]
                                  run exactly one service in the foreground (a container, a systemd unit):
                                  its keys from CORDON_MESH_KEYRING_FILE, logs as JSON lines on stderr;
                                  exits non-zero on a wrong setting or keyring, waits for NATS and peers
  run dedicated [--insecure-no-process-sandbox]
                                  in a cluster, where the mesh secret is: a sandbox process for each quarantine
                                  and debug cordon the supervisor has, with a keyring for that cordon alone
  keys issue --role <role> [--cordon <name>] [--out <file>]
                                  the keyring of one role (a sandbox's: of one cordon) from this host's mesh
                                  secret, written 0600, for \`cordon run\` on another host
  keys cluster --out <dir> [--cordons <a,b>] [--owner <uid>]
                                  a mesh secret in <dir> (made if absent) and every role's keyring beside it
                                  (supervisor, egress, ingress, sandbox-<cordon>), for compose.yaml's secrets
  deploy [<entry.js|ts>] [--config wrangler.jsonc] [--env <name>] [--no-bundle] --name <worker> [--tenant <t>] [--cordon <c>] [--route <pattern>]...
                                  [--var KEY=VALUE]... [--storage <BINDING>]... [--directory <BINDING>]...
                                  [--origin <scheme://host:port>]... [--allow-eval]
                                  [--allow-host <h>]... [--deny-host <h>]... [--deny-cidr <cidr>]...
                                  [--cpu-ms <n>] [--wall-ms <n>] [--memory-mb <n>] [--cron "<five fields>"]...
                                  [--service BINDING=[tenant/]worker[:entrypoint]]... [--allow-rpc-from <tenant>]...
                                  [--loaded-cordon <c>] (where its worker_loaders' Workers run: a cordon less trusted than its own)
                                  bundle the entry and its imports (and upload the config's static assets)
                                  and deploy it; prints the version
  trigger <[tenant/]worker> [--cron <expr>]
                                  run the worker's scheduled() handler once now
  workers                         list deployed workers
  versions <[tenant/]worker>      a worker's versions, newest first
  rollback <[tenant/]worker> <version>
                                  make an earlier version current
  delete <[tenant/]worker>        delete a worker (its storage stays on disk)
  export <tenant> <dir>           the tenant's deploy history as a readable git repository
  logs <tenant/worker|worker> [--follow]
                                  a worker's console output
  tokens create --scope <s>... [--tenant <t>]
                                  a new admin API token (scopes: read, deploy, workflows, admin)
  tokens list | tokens revoke <id>
  hosts list                      host patterns and the tenant each is assigned to
  hosts assign <host-pattern> --tenant <t>
                                  give a host (api.example.com, *.example.com, *) to a tenant: only its
                                  routes serve it, and its tenant-bound tokens may route there (see docs/routing.md)
  hosts release <host-pattern>    the host is no tenant's again
  debug <[tenant/]worker> [--port <n>]
                                  run the worker alone in a sandbox of its own with the V8 inspector on
                                  127.0.0.1:<n> (9229) behind a one-time token; Ctrl-C ends it
  quarantine list | quarantine release <[tenant/]worker>
                                  workers moved into a sandbox process of their own (crashes, limit hits, refusals)
  quarantine tenant <tenant> [--reason <text>] | quarantine release-tenant <tenant>
                                  hold every worker of a tenant, and its later deploys, in one quarantine process
  cordons <tenant> [--allow <cordon>]...
                                  the cordons a tenant may deploy to (the least trusted one unless granted more);
                                  --allow replaces the list (an admin token not bound to a tenant)
${WORKFLOWS_USAGE}
${OBJECTS_USAGE}
${D1_USAGE}
  doctor [--insecure-no-process-sandbox]
                                  each protection layer of the sandbox processes, whether it is active, and
                                  a live escape probe; exits 1 when one is missing (unless the flag is given)
  drift                           whether each service runs with the settings and routes the mesh means it to;
                                  exits 1 when one does not
  audit tail [--limit <n>]        the last audit entries
  audit verify                    check the audit log's hash chain; exits 1 naming the first bad entry

Environment: CORDON_DATA_DIR (./.cordon), CORDON_ADMIN_URL, CORDON_TOKEN, CORDON_HTTP_PORT (8080),
CORDON_ADMIN_PORT (8081), CORDON_NATS_URL, CORDON_MESH_KEYRING_FILE (see README, Settings).`;

function workerPath(ref: string | undefined): string {
  if (!ref) throw cliError('name a worker: <tenant>/<worker>, or <worker> for the default tenant');
  const [tenant, name] = ref.includes('/') ? ref.split('/', 2) : ['default', ref];
  return `/v1/workers/${encodeURIComponent(tenant!)}/${encodeURIComponent(name!)}`;
}

/** `--service BINDING=[tenant/]worker[:entrypoint]`, as a `services` entry of the config file. */
function serviceFlag(text: string): { binding: string; service: string; entrypoint?: string; props?: Record<string, unknown> } {
  const m = /^([^=]+)=([^:]+)(?::(.+))?$/.exec(text);
  if (!m) throw cliError(`--service takes BINDING=worker or BINDING=worker:Entrypoint (tenant/worker for another tenant's), got ${JSON.stringify(text)}`);
  return { binding: m[1]!, service: m[2]!, ...(m[3] ? { entrypoint: m[3] } : {}) };
}

function positiveInt(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw cliError(`${flag} takes a positive whole number, got ${JSON.stringify(value)}`);
  return n;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'start': {
      const { values } = parseArgs({ args: rest, options: { nats: { type: 'string' }, 'insecure-no-process-sandbox': { type: 'boolean' } } });
      await runStart({ natsUrl: values.nats, insecureNoProcessSandbox: values['insecure-no-process-sandbox'] });
      return -1; // keep running
    }
    case 'run': {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: { cordon: { type: 'string' }, 'insecure-no-process-sandbox': { type: 'boolean' } },
      });
      if (positionals.length > 1) throw cliError(RUN_USAGE);
      if (positionals[0] === 'dedicated') {
        if (values.cordon !== undefined) throw cliError('--cordon is for a sandbox only; the agent runs every dedicated cordon');
        return runDedicatedAgent({ insecureNoProcessSandbox: values['insecure-no-process-sandbox'] });
      }
      return runService({ role: positionals[0], cordon: values.cordon, insecureNoProcessSandbox: values['insecure-no-process-sandbox'] });
    }
    case 'keys':
      return keysCommand(rest);
    case 'doctor': {
      const { values } = parseArgs({ args: rest, options: { 'insecure-no-process-sandbox': { type: 'boolean' } } });
      return runDoctor({ insecure: Boolean(values['insecure-no-process-sandbox']) });
    }
    case 'deploy': {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: {
          config: { type: 'string', short: 'c' },
          env: { type: 'string', short: 'e' },
          'no-bundle': { type: 'boolean' },
          name: { type: 'string' },
          tenant: { type: 'string' },
          cordon: { type: 'string' },
          route: { type: 'string', multiple: true },
          var: { type: 'string', multiple: true },
          storage: { type: 'string', multiple: true },
          directory: { type: 'string', multiple: true },
          origin: { type: 'string', multiple: true },
          'allow-eval': { type: 'boolean' },
          'allow-host': { type: 'string', multiple: true },
          'deny-host': { type: 'string', multiple: true },
          'deny-cidr': { type: 'string', multiple: true },
          'cpu-ms': { type: 'string' },
          'wall-ms': { type: 'string' },
          'memory-mb': { type: 'string' },
          cron: { type: 'string', multiple: true },
          service: { type: 'string', multiple: true },
          'allow-rpc-from': { type: 'string', multiple: true },
          'loaded-cordon': { type: 'string' },
        },
      });
      // A config file gives the defaults; flags add to or override it.
      // As wrangler: with neither an entry nor --config, the config file in this directory.
      const configPath = values.config ?? (positionals.length ? undefined : findWorkerConfig(process.cwd()));
      if (values.env !== undefined && !configPath)
        throw cliError('--env selects an environment of a config file: give --config <file>, or run deploy where wrangler.jsonc/.json/.toml is');
      const file = configPath ? readWorkerConfig(configPath, values.env) : undefined;
      for (const note of file?.notes ?? []) process.stderr.write(`cordon: note: ${note}\n`);
      if (positionals.length > 1) throw cliError('deploy takes one entry file: cordon deploy <entry.js|entry.ts> --name <worker>');
      const entry = positionals[0] ?? file?.main;
      if (!entry && !file?.assets)
        throw cliError(`deploy needs an entry file, --config <file> with "main" (or "assets"), or one of ${CONFIG_NAMES.join(', ')} in this directory`);
      const name = values.name ?? file?.name;
      if (!name) throw cliError('deploy needs --name <worker> (or "name" in the config file)');
      const vars: Record<string, VarValue> = { ...file?.vars };
      for (const kv of values.var ?? []) {
        const eq = kv.indexOf('=');
        if (eq <= 0) throw cliError(`--var takes KEY=VALUE, got ${JSON.stringify(kv)}`);
        vars[kv.slice(0, eq)] = kv.slice(eq + 1);
      }
      const tenant = values.tenant ?? file?.tenant;
      // Checked before anything is bundled or uploaded: a refused file fails the deploy at once.
      const gathered = file?.assets && gatherAssets(file.assets.directory);
      // An assets-only worker has no code: the assets answer every request (its module never runs).
      const bundle = entry
        ? await bundleWorker(entry, { ...file?.build, noBundle: values['no-bundle'] || file?.build.noBundle })
        : assetsOnlyBundle(gathered!.files);
      let assets: AssetManifest | undefined;
      if (file?.assets && gathered) {
        const sent = await uploadAssets(adminClient(), tenant, name, gathered);
        process.stderr.write(`cordon: ${gathered.files.length} asset file(s), ${sent} uploaded\n`);
        const { files, redirects, headers } = gathered;
        assets = { routing: { ...file.assets.routing, hasWorker: entry !== undefined }, files, redirects, headers };
      }
      for (const note of bundle.notes) process.stderr.write(`cordon: note: ${note}\n`);
      const limits: Record<string, number> = {
        cpuMs: positiveInt(values['cpu-ms'], '--cpu-ms') ?? file?.cpuMs ?? 1000,
        wallMs: positiveInt(values['wall-ms'], '--wall-ms') ?? file?.wallMs ?? 30_000,
        memoryMb: positiveInt(values['memory-mb'], '--memory-mb') ?? file?.memoryMb ?? 128,
      };
      const storage = [...(file?.storage ?? []), ...(values.storage ?? [])];
      const directories = [...(file?.directories ?? []), ...(values.directory ?? [])];
      const result = (await adminClient().request('POST', '/v1/workers', {
        name,
        tenant,
        cordon: values.cordon ?? file?.cordon,
        loadedCordon: values['loaded-cordon'] ?? file?.loadedCordon,
        routes: [...(file?.routes ?? []), ...(values.route ?? [])],
        vars,
        bindings: [
          ...storage.map((n) => ({ type: 'storage', name: n })),
          ...directories.map((n) => ({ type: 'directory', name: n })),
          ...(file?.workflows ?? []).map((w) => ({ type: 'workflow', name: w.binding, workflow: w.name })),
          ...(file?.loaders ?? []).map((n) => ({ type: 'loader', name: n })),
          ...(file?.objects ?? []).map((o) => ({ type: 'durable_object', name: o.binding, className: o.className })),
          ...(file?.resourceBindings ?? []),
          ...(file?.assets?.binding ? [{ type: 'assets', name: file.assets.binding }] : []),
          ...[...(file?.services ?? []), ...(values.service ?? []).map(serviceFlag)].map((b) => ({
            type: 'service',
            name: b.binding,
            service: b.service,
            entrypoint: b.entrypoint,
            props: b.props,
          })),
        ],
        objectClasses: file?.objectClasses ?? [],
        queueConsumers: file?.queueConsumers ?? [],
        rpcCallers: [...(file?.rpcCallers ?? []), ...(values['allow-rpc-from'] ?? [])],
        workflows: (file?.workflows ?? []).map((w) => ({ name: w.name, className: w.className })),
        crons: [...(file?.crons ?? []), ...(values.cron ?? [])],
        workersDev: file?.workersDev ?? true,
        limits,
        origins: [...(file?.origins ?? []), ...(values.origin ?? [])],
        allowEval: values['allow-eval'] === true || file?.allowEval === true,
        egress: {
          allowHosts: [...(file?.egress?.allowHosts ?? []), ...(values['allow-host'] ?? [])],
          denyHosts: [...(file?.egress?.denyHosts ?? []), ...(values['deny-host'] ?? [])],
          denyCidrs: [...(file?.egress?.denyCidrs ?? []), ...(values['deny-cidr'] ?? [])],
        },
        mainModule: bundle.mainModule,
        modules: bundle.modules,
        assets,
      })) as { worker: string; version: string; routes: string[]; defaultRoute: string | null };
      process.stdout.write(`deployed ${result.worker} version ${result.version}${result.routes.length ? ` on ${result.routes.join(', ')}` : ''}\n`);
      if (result.defaultRoute) process.stdout.write(`also on ${result.defaultRoute} (its default route)\n`);
      return 0;
    }
    case 'workers': {
      const { workers } = (await adminClient().request('GET', '/v1/workers')) as {
        workers: { id: string; version: string; cordon: string; routes: string[] }[];
      };
      for (const w of workers) process.stdout.write(`${w.id}\t${w.version.slice(0, 12)}\t${w.cordon}\t${w.routes.join(' ')}\n`);
      return 0;
    }
    case 'versions': {
      const { versions } = (await adminClient().request('GET', `${workerPath(rest[0])}/versions`)) as {
        versions: { version: string; createdAt: string; current: boolean }[];
      };
      for (const v of versions) process.stdout.write(`${v.version}\t${v.createdAt}${v.current ? '\tcurrent' : ''}\n`);
      return 0;
    }
    case 'rollback': {
      if (!rest[1]) throw cliError('usage: cordon rollback <[tenant/]worker> <version>');
      const r = (await adminClient().request('POST', `${workerPath(rest[0])}/rollback`, { version: rest[1] })) as { worker: string; version: string };
      process.stdout.write(`${r.worker} is at version ${r.version}\n`);
      return 0;
    }
    case 'delete': {
      const r = (await adminClient().request('DELETE', workerPath(rest[0]))) as { deleted: string };
      process.stdout.write(`deleted ${r.deleted}\n`);
      return 0;
    }
    case 'export': {
      const [tenant, dir] = rest;
      if (!tenant || !dir) throw cliError('usage: cordon export <tenant> <dir>');
      const { versions } = (await adminClient().request('GET', `/v1/tenants/${encodeURIComponent(tenant)}/export`)) as { versions: ExportedVersion[] };
      const { versions: n, refused } = await writeExport(dir, tenant, versions);
      process.stdout.write(`exported ${n} version${n === 1 ? '' : 's'} of ${tenant} to ${dir}\n`);
      for (const r of refused)
        process.stderr.write(
          `cordon: not written: module ${JSON.stringify(r.module)} of ${tenant}/${r.worker} version ${r.version.slice(0, 12)}: it ${r.reason} (recorded in its cordon.json)\n`,
        );
      return 0;
    }
    case 'logs': {
      const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { follow: { type: 'boolean', short: 'f' } } });
      const res = await adminClient().stream(`${workerPath(positionals[0])}/logs${values.follow ? '?follow=1' : ''}`);
      const decoder = new TextDecoder();
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) process.stdout.write(decoder.decode(chunk, { stream: true }));
      return 0;
    }
    case 'tokens': {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: { scope: { type: 'string', multiple: true }, tenant: { type: 'string' } },
      });
      const client = adminClient();
      if (positionals[0] === 'create') {
        if (!values.scope?.length) throw cliError('tokens create needs at least one --scope (read, deploy, workflows, admin)');
        const scopes = values.scope.flatMap((s) => s.split(','));
        const r = (await client.request('POST', '/v1/tokens', { scopes, tenant: values.tenant })) as { token: string; tokenId: string };
        process.stdout.write(`${r.token}\n`);
        process.stderr.write(`created token ${r.tokenId} (${scopes.join(',')}${values.tenant ? `, tenant ${values.tenant}` : ''}); it is shown only once\n`);
        return 0;
      }
      if (positionals[0] === 'list') {
        const { tokens } = (await client.request('GET', '/v1/tokens')) as {
          tokens: { tokenId: string; scopes: string[]; tenant?: string; createdAt: string; revoked: boolean }[];
        };
        for (const t of tokens)
          process.stdout.write(`${t.tokenId}\t${t.scopes.join(',')}\t${t.tenant ?? '*'}\t${t.createdAt}${t.revoked ? '\trevoked' : ''}\n`);
        return 0;
      }
      if (positionals[0] === 'revoke' && positionals[1]) {
        await client.request('DELETE', `/v1/tokens/${encodeURIComponent(positionals[1])}`);
        process.stdout.write(`revoked ${positionals[1]}\n`);
        return 0;
      }
      throw cliError('usage: cordon tokens create --scope <s> [--tenant <t>] | tokens list | tokens revoke <id>');
    }
    case 'hosts': {
      const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { tenant: { type: 'string' } } });
      const [action, pattern] = positionals;
      const client = adminClient();
      if (action === 'list') {
        const { hosts } = (await client.request('GET', '/v1/hosts')) as { hosts: { host: string; tenant: string }[] };
        for (const h of hosts) process.stdout.write(`${h.host}\t${h.tenant}\n`);
        return 0;
      }
      if (action === 'assign' && pattern && values.tenant) {
        const r = (await client.request('PUT', `/v1/hosts/${encodeURIComponent(pattern)}`, { tenant: values.tenant })) as {
          host: string;
          tenant: string;
          previous?: string;
          unserved: string[];
        };
        process.stdout.write(`${r.host} is assigned to ${r.tenant}${r.previous ? ` (was ${r.previous})` : ''}\n`);
        for (const u of r.unserved) process.stderr.write(`no longer served (inside a host of another tenant): ${u}\n`);
        return 0;
      }
      if (action === 'release' && pattern) {
        const r = (await client.request('DELETE', `/v1/hosts/${encodeURIComponent(pattern)}`)) as { released: string; tenant: string };
        process.stdout.write(`${r.released} released (was ${r.tenant})\n`);
        return 0;
      }
      throw cliError('usage: cordon hosts list | hosts assign <host-pattern> --tenant <t> | hosts release <host-pattern>');
    }
    case 'workflows':
      return workflowsCommand(rest);
    case 'objects':
      return objectsCommand(rest, workerPath);
    case 'd1':
      return d1Command(rest);
    case 'trigger': {
      const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { cron: { type: 'string' } } });
      await adminClient().request('POST', `${workerPath(positionals[0])}/scheduled`, values.cron ? { cron: values.cron } : {});
      process.stdout.write(`scheduled() of ${positionals[0]} ran\n`);
      return 0;
    }
    case 'drift': {
      const { services } = (await adminClient().request('GET', '/v1/drift')) as {
        services: Record<string, { config: string; routes?: string; reportedAt: string }>;
      };
      let drifting = false;
      for (const [peer, st] of Object.entries(services).sort()) {
        drifting ||= st.config === 'drift' || st.routes === 'drift';
        process.stdout.write(`${peer}\tconfig ${st.config}${st.routes ? `\troutes ${st.routes}` : ''}\treported ${st.reportedAt}\n`);
      }
      return drifting ? 1 : 0;
    }
    case 'debug': {
      const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { port: { type: 'string' } } });
      return runDebug(workerPath(positionals[0]), positionals[0]!, positiveInt(values.port, '--port') ?? 9229);
    }
    case 'quarantine': {
      if (rest[0] === 'list') {
        const { quarantined, tenants } = (await adminClient().request('GET', '/v1/quarantine')) as {
          quarantined: { worker: string; cordon: string; previousCordon: string; since: string; reason: string }[];
          tenants?: { tenant: string; cordon: string; since: string; reason: string }[];
        };
        for (const t of tenants ?? []) process.stdout.write(`tenant ${t.tenant}\t${t.cordon}\t${t.since}\t${t.reason}\n`);
        for (const q of quarantined) process.stdout.write(`${q.worker}\t${q.cordon}\t(was ${q.previousCordon})\t${q.since}\t${q.reason}\n`);
        return 0;
      }
      if (rest[0] === 'tenant' && rest[1]) {
        const { values } = parseArgs({ args: rest.slice(2), options: { reason: { type: 'string' } } });
        const r = (await adminClient().request(
          'POST',
          `/v1/tenants/${encodeURIComponent(rest[1])}/quarantine`,
          values.reason ? { reason: values.reason } : {},
        )) as { cordon: string };
        process.stdout.write(`tenant ${rest[1]} quarantined in ${r.cordon}\n`);
        return 0;
      }
      if (rest[0] === 'release-tenant' && rest[1]) {
        await adminClient().request('DELETE', `/v1/tenants/${encodeURIComponent(rest[1])}/quarantine`);
        process.stdout.write(`released tenant ${rest[1]}\n`);
        return 0;
      }
      if (rest[0] === 'release' && rest[1]) {
        const path = workerPath(rest[1]).replace('/v1/workers/', '/v1/quarantine/');
        await adminClient().request('POST', `${path}/release`);
        process.stdout.write(`released ${rest[1]}\n`);
        return 0;
      }
      throw cliError(
        'usage: cordon quarantine list | quarantine release <[tenant/]worker> | quarantine tenant <tenant> [--reason <text>] | quarantine release-tenant <tenant>',
      );
    }
    case 'cordons': {
      const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { allow: { type: 'string', multiple: true } } });
      if (positionals.length !== 1) throw cliError('usage: cordon cordons <tenant> [--allow <cordon>]...');
      const path = `/v1/tenants/${encodeURIComponent(positionals[0]!)}/cordons`;
      const client = adminClient();
      const r = (
        values.allow?.length ? await client.request('PUT', path, { cordons: values.allow.flatMap((c) => c.split(',')) }) : await client.request('GET', path)
      ) as { tenant: string; cordons: string[]; granted: boolean };
      process.stdout.write(`${r.tenant}\t${r.cordons.join(',')}${r.granted ? '' : '\t(default: the least trusted cordon)'}\n`);
      return 0;
    }
    case 'audit': {
      const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { limit: { type: 'string' } } });
      if (positionals[0] === 'verify') {
        const r = (await adminClient().request('GET', '/v1/audit/verify')) as { ok: boolean; entries: number; badSeq?: number; line?: number; reason?: string };
        if (r.ok) {
          process.stdout.write(`audit log intact: ${r.entries} entries\n`);
          return 0;
        }
        process.stderr.write(`audit log damaged at entry ${r.badSeq} (line ${r.line}): ${r.reason}\n`);
        return 1;
      }
      if (positionals[0] === 'tail') {
        const limit = positiveInt(values.limit, '--limit') ?? 20;
        const { entries } = (await adminClient().request('GET', `/v1/audit?limit=${limit}`)) as { entries: Record<string, unknown>[] };
        for (const e of entries)
          process.stdout.write(
            `${e.seq}\t${e.time}\t${e.actor}\t${e.action}\t${e.target ?? '-'}\t${e.outcome}${e.detail ? '\t' + JSON.stringify(e.detail) : ''}\n`,
          );
        return 0;
      }
      throw cliError('usage: cordon audit tail [--limit <n>] | cordon audit verify');
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE + '\n');
      return command === undefined ? 2 : 0;
    default:
      throw cliError(`unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
  }
}

try {
  const code = await main(process.argv.slice(2));
  if (code >= 0) process.exitCode = code;
} catch (e) {
  if (e instanceof CordonError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
    process.stderr.write(`cordon: ${(e as Error).message}\n`);
    process.exitCode = 1;
  } else throw e;
}
