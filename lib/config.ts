/**
 * Every setting of every service in one schema: from the environment (the launcher passes it on), over
 * an optional JSON config file named by CORDON_CONFIG (keys are the field names below, e.g.
 * {"httpPort": 80}). Each process resolves all of them at start, so a bad value anywhere stops it with
 * one line naming the setting, and all of them go into its drift hash (lib/drift.ts). Secrets, TLS
 * files and what the launcher hands one process (keyrings, its cordon) are not settings in this sense:
 * they differ per process by design and are read where they are used.
 *
 * Adding a setting: one field in its service's section below (a type, a default, a variable name, a
 * description), read from `ServiceContext.settings`; then paste the table `lib/config.test.ts` prints
 * into the README.
 */
import { readFileSync } from 'node:fs';
import { resolve, join } from 'node:path';
import { z } from 'zod';
import { OriginError, parseOrigin } from './origins.ts';
import { CORDON_NAME } from './rpc/keys.ts';

/** What the README's settings table shows of a setting; `expects` is also the error when a value is refused. */
export interface SettingMeta {
  env: string;
  description: string;
  expects: string;
  /** The default as the table shows it. */
  shownDefault: string;
}

/** What a setting's declaration says; `shownDefault` only when the default alone is not the whole story. */
type Declared = Omit<SettingMeta, 'expects' | 'shownDefault'> & { shownDefault?: string };

export const settingMeta = z.registry<SettingMeta>();

/** An environment value is text; a config file value may be a number, or an array for a list. */
const number = (v: unknown) => (typeof v === 'string' ? Number(v.trim()) : v);
const list = (v: unknown) => (typeof v === 'string' ? v.split(',') : v);

function whole(min: number, unit: string, max = Number.MAX_SAFE_INTEGER) {
  const expects = max === Number.MAX_SAFE_INTEGER ? `a whole number of ${unit}, at least ${min}` : `a whole number of ${unit} from ${min} to ${max}`;
  return { schema: z.preprocess(number, z.number().int().min(min).max(max)), expects };
}
const port = { schema: z.preprocess(number, z.number().int().min(0).max(65535)), expects: 'a port number (0-65535)' };
const text = (expects: string) => ({ schema: z.string().min(1), expects });

/** A setting with a default; prefault: the default goes through the schema as a value given as text would. */
function setting<T extends z.ZodType>(type: { schema: T; expects: string }, fallback: z.input<T>, meta: Declared) {
  return described(type.schema.prefault(fallback as never), { shownDefault: `\`${String(fallback)}\``, ...meta, expects: type.expects });
}

/** A setting whose absence means something of its own (the system's DNS servers, no NATS). */
function optional<T extends z.ZodType>(type: { schema: T; expects: string }, meta: Declared) {
  return described(type.schema.optional(), { shownDefault: '—', ...meta, expects: type.expects });
}

function described<S extends z.ZodType>(schema: S, meta: SettingMeta): S {
  settingMeta.add(schema as z.ZodType, meta);
  return schema;
}

const cordonNames = {
  schema: z.preprocess(
    list,
    z
      .array(z.string().trim())
      .transform((a) => a.filter(Boolean))
      .pipe(z.array(z.string().regex(CORDON_NAME)).min(1)),
  ),
  expects: 'cordon names (lower-case letters, digits, dashes), comma-separated, at least one',
};

const tenantOriginList = {
  schema: z.preprocess(
    list,
    z.array(z.string()).transform((entries, ctx) => {
      const out: { tenant: string | undefined; origin: string }[] = [];
      for (const entry of entries.map((s) => s.trim()).filter(Boolean)) {
        const m = /^([a-z0-9-]{1,64})=(.*)$/.exec(entry);
        try {
          out.push({ tenant: m?.[1], origin: parseOrigin(m ? m[2]! : entry) });
        } catch (e) {
          if (!(e instanceof OriginError)) throw e;
          ctx.addIssue({ code: 'custom', message: e.message });
        }
      }
      return out;
    }),
  ),
  expects: 'scheme://host:port or <tenant>=scheme://host:port entries, comma-separated',
};

const workersDomainName = {
  schema: z
    .string()
    .trim()
    .regex(/^(?=.{1,200}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/)
    .transform((v) => (v === 'none' ? '' : v)),
  expects: 'a lower-case host name such as workers.localhost, or none for no default routes',
};

const jaegerUi = {
  schema: z
    .string()
    .trim()
    .refine((v) => /^https?:\/\/[^/?#]+(\/[^?#]*)?$/.test(v) && URL.canParse(v), 'not an http(s) URL')
    .transform((v) => v.replace(/\/+$/, '')),
  expects: 'the http(s) URL of the Jaeger UI, such as http://127.0.0.1:16686',
};

const hostPorts = {
  schema: z.preprocess(
    list,
    z
      .array(z.string().trim())
      .transform((a) => a.filter(Boolean))
      .pipe(z.array(z.string().regex(/^(?:\[[0-9a-f:.]+\]|[^\s:[\]]+)(?::\d{1,5})?$/i))),
  ),
  expects: 'DNS servers as host or host:port ([v6]:port), comma-separated',
};

/** The settings, a section per service (`mesh` is read by all of them). */
export const Settings = z.strictObject({
  mesh: z.strictObject({
    dataDir: setting(
      {
        schema: z
          .string()
          .min(1)
          .transform((p) => resolve(p)),
        expects: 'a directory path',
      },
      '.cordon',
      { env: 'CORDON_DATA_DIR', description: 'data: code store, mesh secret, admin token, sockets', shownDefault: '`./.cordon`' },
    ),
    natsUrl: optional(text('NATS server URLs (nats://host:port or tls://host:port), comma-separated'), {
      env: 'CORDON_NATS_URL',
      description:
        'use NATS instead of Unix sockets (`npx cordon start --nats nats://host:4222` sets it); for a NATS cluster, several of its nodes as seeds; `tls://` seeds (all or none) for TLS. Credentials never go here (see *A cluster*)',
    }),
    natsTlsCa: optional(text('a file path'), {
      env: 'CORDON_NATS_TLS_CA',
      shownDefault: "the system's CAs",
      description: "with `tls://` seeds: the CA certificate file (PEM) the NATS servers' certificates must chain to",
    }),
    natsTlsCert: optional(text('a file path'), {
      env: 'CORDON_NATS_TLS_CERT',
      description: "with `tls://` seeds: this process's client certificate file (PEM), for servers that verify clients; with `CORDON_NATS_TLS_KEY`",
    }),
    natsTlsKey: optional(text('a file path'), {
      env: 'CORDON_NATS_TLS_KEY',
      description: 'the private key file (PEM) of `CORDON_NATS_TLS_CERT`',
    }),
    natsWaitSeconds: setting(whole(1, 'seconds'), 30, {
      env: 'CORDON_NATS_WAIT_SECONDS',
      description: 'how long a process retries (with back-off) its first NATS connection while no seed answers, before it exits with one line',
    }),
    cordons: setting(cordonNames, 'standard,untrusted', {
      env: 'CORDON_CORDONS',
      description:
        'the cordons (sandbox processes) to run, **most trusted first**: the last is the least trusted, the only one a tenant may deploy to until an admin grants it more (`cordon cordons`)',
    }),
    logLevel: setting({ schema: z.enum(['debug', 'info', 'warn', 'error']), expects: 'one of debug, info, warn, error' }, 'info', {
      env: 'CORDON_LOG_LEVEL',
      description: 'the least severe log lines written; logs are JSON lines on stderr',
    }),
    driftMs: setting(whole(100, 'milliseconds'), 30_000, {
      env: 'CORDON_DRIFT_MS',
      description: 'how often every service reports the settings and routes it runs with (see *Drift*)',
    }),
  }),
  ingress: z.strictObject({
    httpPort: setting(port, 8080, { env: 'CORDON_HTTP_PORT', description: 'the port ingress serves HTTP on' }),
    httpsPort: setting(port, 8443, { env: 'CORDON_HTTPS_PORT', description: 'the port ingress serves HTTPS on' }),
    httpHost: setting(text('an address to listen on'), '0.0.0.0', { env: 'CORDON_HTTP_HOST', description: 'the address ingress listens on (HTTP and HTTPS)' }),
    headersTimeoutMs: setting(whole(1, 'milliseconds'), 10_000, {
      env: 'CORDON_HEADERS_TIMEOUT_MS',
      description: 'how long a client may take to send its headers (slow clients are cut off)',
    }),
    requestTimeoutMs: setting(whole(1, 'milliseconds'), 60_000, {
      env: 'CORDON_REQUEST_TIMEOUT_MS',
      description: 'how long a client may take to send its whole request',
    }),
    maxRequestMb: setting(whole(1, 'megabytes'), 100, {
      env: 'CORDON_MAX_REQUEST_MB',
      description: 'a request body that streams (over 64 KiB or of unknown length) may be this long; past it, 413',
    }),
    colo: optional(text('a short name for this site, such as an airport code'), {
      env: 'CORDON_COLO',
      description: "`request.cf.colo` of every request this ingress serves (Cloudflare's data-center code); unset: no `colo`",
    }),
    maxWebsockets: setting(whole(1, 'sockets'), 10_000, {
      env: 'CORDON_MAX_WEBSOCKETS',
      description: 'open WebSockets an ingress holds at most; beyond, upgrades get 503',
    }),
  }),
  egress: z.strictObject({
    egressDns: optional(hostPorts, { env: 'CORDON_EGRESS_DNS', description: 'DNS servers egress resolves with (`host:port,…`)', shownDefault: "the system's" }),
    egressTimeoutMs: setting(whole(1, 'milliseconds'), 30_000, {
      env: 'CORDON_EGRESS_TIMEOUT_MS',
      description: 'how long an origin may stay silent (no answer, no bytes of a streaming body), and a socket idle both ways',
    }),
    egressRate: setting(whole(1, 'requests per second'), 100, {
      env: 'CORDON_EGRESS_RATE',
      description: 'requests per second per worker (bursts of twice that)',
    }),
    egressMaxResponseMb: setting(whole(1, 'megabytes'), 1024, {
      env: 'CORDON_EGRESS_MAX_RESPONSE_MB',
      description: 'the longest response body one `fetch()` may receive (bodies stream through egress as they arrive)',
    }),
    egressSocketsPerWorker: setting(whole(1, 'sockets'), 64, {
      env: 'CORDON_EGRESS_SOCKETS_PER_WORKER',
      description: '`connect()` sockets (cloudflare:sockets) one worker may have open at once, over all its requests',
    }),
    egressCacheMb: setting(whole(1, 'megabytes'), 64, { env: 'CORDON_EGRESS_CACHE_MB', description: 'the egress HTTP cache in memory, all tenants together' }),
    cacheTenantDiskMb: setting(whole(1, 'megabytes'), 256, {
      env: 'CORDON_CACHE_TENANT_DISK_MB',
      description: "each tenant's share of the egress cache on disk (`$CORDON_DATA_DIR/egress/`)",
    }),
  }),
  sandbox: z.strictObject({
    maxIsolates: setting(whole(1, 'isolates'), 1000, { env: 'CORDON_MAX_ISOLATES', description: 'per sandbox process: warm isolates kept at most' }),
    sandboxMemoryMb: setting(whole(1, 'megabytes'), 2048, {
      env: 'CORDON_SANDBOX_MEMORY_MB',
      description: "per sandbox process: its isolates' heaps together (least recently used idle ones are disposed beyond it)",
    }),
    sandboxMemoryMaxMb: optional(whole(1, 'megabytes'), {
      env: 'CORDON_SANDBOX_MEMORY_MAX_MB',
      shownDefault: '`CORDON_SANDBOX_MEMORY_MB` + 1024',
      description:
        "the kernel's hard memory ceiling for each sandbox process (its cgroup's `memory.max`, or `memory.limit_in_bytes` on cgroup v1); over it the kernel kills that process and the launcher restarts it (see [docs/limits.md](docs/limits.md))",
    }),
    isolateIdleSeconds: setting(whole(1, 'seconds'), 300, {
      env: 'CORDON_ISOLATE_IDLE_SECONDS',
      description: 'per sandbox process: how long a warm isolate may sit idle',
    }),
    objectIdleSeconds: setting(whole(1, 'seconds'), 70, {
      env: 'CORDON_OBJECT_IDLE_SECONDS',
      description: 'how long a Durable Object may sit idle before its instance is evicted (its storage stays; the next call makes a new one)',
    }),
    dynamicWorkersPerWorker: setting(whole(1, 'isolates', 1000), 32, {
      env: 'CORDON_DYNAMIC_WORKERS_PER_WORKER',
      description:
        'per sandbox process: Dynamic Workers (`worker_loaders`) one worker may hold loaded at once; beyond it its least recently used idle one is unloaded (see [docs/dynamic-workers.md](docs/dynamic-workers.md))',
    }),
    dynamicWorkerLoadsPerSecond: setting(whole(1, 'loads a second'), 500, {
      env: 'CORDON_DYNAMIC_WORKER_LOADS_PER_SECOND',
      description:
        "per sandbox process: Dynamic Workers one worker may load a second (a burst of as many at once); making an isolate costs this process's time, not the worker's CPU limit, so it is bounded here",
    }),
    dynamicWorkerIdleSeconds: setting(whole(1, 'seconds'), 60, {
      env: 'CORDON_DYNAMIC_WORKER_IDLE_SECONDS',
      description: 'per sandbox process: how long a loaded Dynamic Worker may sit idle before it is unloaded (its `get(id)` code is then asked for again)',
    }),
    dynamicWorkerKeptCodeKb: setting(whole(1, 'kilobytes'), 65_536, {
      env: 'CORDON_DYNAMIC_WORKER_KEPT_CODE_KB',
      description:
        "per sandbox process and worker: code of unloaded Dynamic Workers kept in memory (never on disk) while facets of theirs hold hibernatable WebSockets, so that an event starts them again; a facet's `acceptWebSocket` past it throws (see [docs/durable-objects.md](docs/durable-objects.md))",
    }),
  }),
  supervisor: z.strictObject({
    adminPort: setting(port, 8081, { env: 'CORDON_ADMIN_PORT', description: 'the admin API, the web dashboard and `/healthz`' }),
    adminHost: setting(text('an address to listen on'), '127.0.0.1', { env: 'CORDON_ADMIN_HOST', description: 'the address the admin API listens on' }),
    adminMaxBodyMb: setting(whole(1, 'megabytes'), 72, {
      env: 'CORDON_ADMIN_MAX_BODY_MB',
      description: "the largest admin API request body (a deploy's JSON); counted as it arrives and refused with 413 past it, before anything is parsed",
    }),
    sqlProcesses: setting(whole(1, 'processes'), 4, {
      env: 'CORDON_SQL_PROCESSES',
      description: 'processes the supervisor runs tenant SQL in, at most; one tenant may hold all but one of them at a time (see Worker bindings)',
    }),
    objectLeaseMs: setting(whole(300, 'milliseconds'), 10_000, {
      env: 'CORDON_OBJECT_LEASE_MS',
      description:
        'how long a sandbox process keeps its Durable Objects without answering the lease check; past it they move to another process of the cordon, and the old holder can no longer write (see [docs/durable-objects.md](docs/durable-objects.md))',
    }),
    objectQuotaMb: setting(whole(1, 'megabytes'), 1024, {
      env: 'CORDON_OBJECT_QUOTA_MB',
      description:
        "what one Durable Object's database may hold on disk; a write past it is refused and nothing of it is stored (see [docs/durable-objects.md](docs/durable-objects.md))",
    }),
    objectWebSockets: setting(whole(1, 'sockets'), 32_768, {
      env: 'CORDON_OBJECT_WEBSOCKETS',
      description:
        'WebSockets one Durable Object may hold open at once (Cloudflare: 32,768); beyond, its `acceptWebSocket()` throws (see [docs/durable-objects.md](docs/durable-objects.md))',
    }),
    tenantObjectWebSockets: setting(whole(1, 'sockets'), 100_000, {
      env: 'CORDON_TENANT_OBJECT_WEBSOCKETS',
      description: "WebSockets all of one tenant's Durable Objects may hold open at once; beyond, `acceptWebSocket()` throws",
    }),
    assetsQuotaMb: setting(whole(1, 'megabytes'), 1024, {
      env: 'CORDON_ASSETS_QUOTA_MB',
      description:
        "what one worker's static assets may hold on disk, every stored version's files together (Cloudflare: 20,000 files of at most 25 MiB per version; see [docs/static-assets.md](docs/static-assets.md))",
    }),
    resourceQuotaMb: setting(whole(1, 'megabytes'), 1024, {
      env: 'CORDON_RESOURCE_QUOTA_MB',
      description: 'what one KV namespace, D1 database or queue backlog may hold on disk (see docs/kv-d1-queues.md)',
    }),
    resourcesPerTenant: setting(whole(1, 'resources'), 100, {
      env: 'CORDON_RESOURCES_PER_TENANT',
      description: 'KV namespaces, D1 databases and queues one tenant may have, of each kind; a deploy naming more is refused',
    }),
    dynamicWorkerCordon: optional(
      { schema: z.string().regex(CORDON_NAME), expects: 'a cordon name of CORDON_CORDONS' },
      {
        env: 'CORDON_DYNAMIC_WORKER_CORDON',
        shownDefault: "the loading worker's own process",
        description:
          "the cordon Workers loaded by a `worker_loaders` binding run in when their parent chose none (`--loaded-cordon`), if it is less trusted than the parent's own cordon (see [docs/dynamic-workers.md](docs/dynamic-workers.md))",
      },
    ),
    workersDomain: setting(workersDomainName, 'workers.localhost', {
      env: 'CORDON_WORKERS_DOMAIN',
      description:
        'every worker also answers at `<worker>.<tenant>.<domain>` on every path, as on workers.dev (`.localhost` names reach this machine with no DNS; see [docs/routing.md](docs/routing.md)); `none` turns it off',
    }),
    tenantOrigins: setting(tenantOriginList, '', {
      env: 'CORDON_TENANT_ORIGINS',
      shownDefault: '—',
      description:
        'non-public origins tenants may declare (`--origin`) without the operator: `scheme://host:port` for every tenant, `<tenant>=scheme://host:port` for one; comma-separated',
    }),
    jaegerUrl: optional(jaegerUi, {
      env: 'CORDON_JAEGER_URL',
      description:
        'where the dashboard links a workflow instance and a logged line to its trace (`<url>/trace/<trace id>`); set it when the services export traces to that Jaeger (see Tracing)',
    }),
  }),
});

export type Settings = z.output<typeof Settings>;
type Section = keyof Settings;

/** Every setting as [section, config file key, its schema] in the schema's order. */
export function settingFields(): [Section, string, z.ZodType][] {
  return Object.entries(Settings.shape).flatMap(([section, obj]) =>
    Object.entries(obj.shape).map(([key, schema]) => [section as Section, key, schema as z.ZodType] as [Section, string, z.ZodType]),
  );
}

export const metaOf = (schema: z.ZodType): SettingMeta => settingMeta.get(schema)!;

function readConfigFile(file: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`cannot read the config file CORDON_CONFIG=${file}: ${(e as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error(`config file ${file} must hold a JSON object`);
  return parsed as Record<string, unknown>;
}

/**
 * All settings as this process resolves them: the environment wins over the config file, an empty
 * variable counts as unset. Throws one line naming the first bad setting and what it expects.
 */
export function loadSettings(env: NodeJS.ProcessEnv = process.env): Settings {
  const fields = settingFields();
  const file = env.CORDON_CONFIG ? readConfigFile(env.CORDON_CONFIG) : {};
  const known = new Set(fields.map(([, key]) => key));
  for (const key of Object.keys(file)) {
    if (!known.has(key)) throw new Error(`config file ${env.CORDON_CONFIG}: unknown setting ${JSON.stringify(key)}; known: ${[...known].join(', ')}`);
  }
  const input: Record<string, Record<string, unknown>> = {};
  const given: Record<string, string> = {};
  for (const [section, key, schema] of fields) {
    const name = metaOf(schema).env;
    const fromEnv = env[name];
    const useEnv = fromEnv !== undefined && fromEnv !== '';
    (input[section] ??= {})[key] = useEnv ? fromEnv : file[key];
    given[`${section}.${key}`] = useEnv ? `${name}` : `${JSON.stringify(key)} (${name}) in the config file ${env.CORDON_CONFIG}`;
  }
  const result = Settings.safeParse(input);
  if (result.success) {
    const loaded = result.data.supervisor.dynamicWorkerCordon;
    if (loaded !== undefined && !result.data.mesh.cordons.includes(loaded))
      throw new Error(
        `${given['supervisor.dynamicWorkerCordon']} must name one of CORDON_CORDONS (${result.data.mesh.cordons.join(', ')}); got ${JSON.stringify(loaded)}`,
      );
    return result.data;
  }
  const issue = result.error.issues[0]!;
  const [section, key] = issue.path as [Section, string];
  const schema = Settings.shape[section].shape[key as never] as z.ZodType;
  const meta = metaOf(schema);
  const detail = issue.code === 'custom' ? ` (${issue.message})` : '';
  const value = input[section]![key];
  throw new Error(`${given[`${section}.${key}`]} must be ${meta.expects}; got ${JSON.stringify(value)}${detail}`);
}

export interface MeshConfig {
  dataDir: string;
  httpPort: number;
  httpsPort: number;
  adminPort: number;
  /** NATS server URL when the mesh runs over NATS instead of Unix sockets. */
  natsUrl: string | undefined;
  /** How long a process waits for a first NATS connection (a cluster still coming up) before it gives up. */
  natsWaitSeconds: number;
  /** TLS to NATS (`tls://` seeds): the files, and the seeds' host names a server certificate must name. */
  natsTls: NatsTls | undefined;
}

export interface NatsTls {
  ca?: string;
  cert?: string;
  key?: string;
  names: string[];
}

/** Where every process finds the others and its data. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): MeshConfig {
  return meshConfig(loadSettings(env));
}

export function meshConfig(s: Settings): MeshConfig {
  return {
    dataDir: s.mesh.dataDir,
    httpPort: s.ingress.httpPort,
    httpsPort: s.ingress.httpsPort,
    adminPort: s.supervisor.adminPort,
    natsUrl: s.mesh.natsUrl,
    natsWaitSeconds: s.mesh.natsWaitSeconds,
    natsTls: natsTls(s),
  };
}

/** TLS to NATS when the seeds are `tls://`; the CA, certificate and key make sense only then. */
function natsTls(s: Settings): NatsTls | undefined {
  const { natsUrl, natsTlsCa: ca, natsTlsCert: cert, natsTlsKey: key } = s.mesh;
  const seeds = natsUrl ? natsSeeds(natsUrl) : [];
  const tls = seeds.some((d) => d.tls);
  if (!tls) {
    if (ca || cert || key) throw new Error('CORDON_NATS_TLS_CA, _CERT and _KEY take effect with tls:// seeds only: write CORDON_NATS_URL as tls://host:port,…');
    return undefined;
  }
  if (seeds.some((d) => !d.tls)) throw new Error('CORDON_NATS_URL mixes tls:// and nats:// seeds: a cluster is reached with TLS or without it');
  if (Boolean(cert) !== Boolean(key)) throw new Error('set both CORDON_NATS_TLS_CERT and CORDON_NATS_TLS_KEY (a client certificate and its key), or neither');
  return { ca, cert, key, names: [...new Set(seeds.map((d) => d.host))] };
}

export interface NatsSeed {
  host: string;
  port: number;
  tls: boolean;
}

/**
 * `nats://host:port[,tls://host:port…]` (or bare host:port): the seeds of one NATS cluster, to try in
 * turn. Credentials in the URL are refused: it is printed and logged (they go in CORDON_NATS_USER/_PASS).
 */
export function natsSeeds(url: string): NatsSeed[] {
  return url
    .split(',')
    .filter((s) => s.trim())
    .map((s) => {
      let u: URL;
      try {
        u = new URL(s.includes('://') ? s.trim() : `nats://${s.trim()}`);
      } catch {
        throw new Error(`CORDON_NATS_URL: ${JSON.stringify(s.trim())} is not a NATS address (nats://host:port, comma-separated for a cluster's seeds)`);
      }
      if (u.username || u.password)
        throw new Error('CORDON_NATS_URL must not carry credentials (the URL is logged): set CORDON_NATS_USER and CORDON_NATS_PASS instead');
      if (u.protocol !== 'nats:' && u.protocol !== 'tls:') throw new Error(`CORDON_NATS_URL: ${JSON.stringify(s.trim())} is not a nats:// or tls:// address`);
      return { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || 4222), tls: u.protocol === 'tls:' };
    });
}

/** Where a cordon's sandbox records which workers it is running (read after a crash to attribute it). */
export function flightRecorderPath(dataDir: string, cordon: string): string {
  return join(dataDir, 'run', `sandbox-${cordon}.inflight`);
}

export function socketPath(dataDir: string, endpoint: string): string {
  return join(dataDir, 'sockets', `${endpoint}.sock`);
}

/**
 * The cordons (trust levels) `npm start` runs a sandbox process for, most trusted first: the last is
 * the least trusted, the only one a tenant may deploy to until an admin grants it more.
 */
export function cordonList(env: NodeJS.ProcessEnv = process.env): string[] {
  return loadSettings(env).mesh.cordons;
}

/** How much a sandbox process keeps warm, from its settings: isolates at most, their heaps together, and for how long idle; its Dynamic Workers; its Durable Objects' idle time. */
export function sandboxSettings(settings: Settings): {
  maxIsolates: number;
  memoryBudgetMb: number;
  idleMs: number;
  objectIdleMs: number;
  dynamic: { perWorker: number; idleMs: number; loadsPerSecond: number; keptCodeBytes: number };
} {
  const s = settings.sandbox;
  return {
    maxIsolates: s.maxIsolates,
    memoryBudgetMb: s.sandboxMemoryMb,
    idleMs: s.isolateIdleSeconds * 1000,
    objectIdleMs: s.objectIdleSeconds * 1000,
    dynamic: {
      perWorker: s.dynamicWorkersPerWorker,
      idleMs: s.dynamicWorkerIdleSeconds * 1000,
      loadsPerSecond: s.dynamicWorkerLoadsPerSecond,
      keptCodeBytes: s.dynamicWorkerKeptCodeKb * 1024,
    },
  };
}

/** The largest admin API request body, in bytes; past it, 413 before anything is parsed. */
export function adminMaxBodyBytes(env: NodeJS.ProcessEnv = process.env): number {
  return loadSettings(env).supervisor.adminMaxBodyMb * 1024 * 1024;
}

/**
 * The kernel's hard memory ceiling for each sandbox process (MB): by default the isolates' budget plus
 * 1 GiB, for Node itself and for isolates that are mid-request while the budget is full (only idle
 * isolates are evicted).
 */
export function sandboxCeilingMb(env: NodeJS.ProcessEnv = process.env): number {
  const s = loadSettings(env).sandbox;
  return s.sandboxMemoryMaxMb ?? s.sandboxMemoryMb + 1024;
}
