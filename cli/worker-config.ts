/**
 * The worker configuration file: Cloudflare's `wrangler.toml` / `wrangler.json` / `wrangler.jsonc` read
 * unchanged (`name`, `main`, `compatibility_date`, `route`/`routes`, `vars`, `limits.cpu_ms`, `triggers.crons`,
 * `workflows`, `worker_loaders`, `durable_objects`, `migrations`, `services`, `kv_namespaces`, `d1_databases`, `queues`,
 * `assets` (docs/static-assets.md; without `main`, an assets-only worker), and what shapes the bundle: `rules`, `define`, `alias`, `minify`,
 * `jsx_factory`, `jsx_fragment`,
 * `tsconfig`, `no_bundle`, `find_additional_modules`, `base_dir`, `preserve_file_names`), plus Cordon's own settings under `cordon` (`tenant`, `cordon`, `storage`, `directories`,
 * `origins`, `allow_eval`, `limits`, `egress: { allow_hosts, deny_hosts, deny_cidrs }`, `rpc_callers`).
 * JSONC: comments and trailing commas are fine (jsonc-parser, Microsoft's); TOML: smol-toml (TOML 1.0).
 *
 * Every other top-level section is either one that only concerns Cloudflare's own platform (accepted,
 * nothing to do here), one Cordon does not honour (accepted with a note on stderr), or one Cordon does
 * not implement yet: those are refused, all of them named in one error, so a worker never deploys to
 * meet `undefined` where its config promised a binding.
 * This one reader serves every binding kind, so a new binding is one more field here.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parse, printParseErrorCode, type ParseError } from 'jsonc-parser';
import { parse as parseToml, TomlError } from 'smol-toml';
import { z } from 'zod';
import { VarValue } from '../schemas/worker.ts';
import { cliError } from './admin-client.ts';
import { gatingDate, unknownFlags } from './nodejs-compat.ts';
import { selectEnvironment } from './config-env.ts';
import { D1Databases, KvNamespaces, Queues, resourceBindings, type ResourceBinding } from './resource-bindings.ts';
import type { QueueConsumerDecl } from '../schemas/queues.ts';
import { HTML_HANDLING, NOT_FOUND_HANDLING, type AssetRouting } from '../schemas/assets.ts';

const Route = z.union([z.string(), z.object({ pattern: z.string(), zone_name: z.string().optional(), custom_domain: z.boolean().optional() })]);

/** wrangler's module rule types; Cordon has module types for all but Python's. */
const RULE_TYPES = ['ESModule', 'CommonJS', 'CompiledWasm', 'Text', 'Data', 'PythonModule', 'PythonRequirement'] as const;
export type RuleType = 'ESModule' | 'CommonJS' | 'CompiledWasm' | 'Text' | 'Data';
export interface ModuleRule {
  type: RuleType;
  globs: string[];
  fallthrough?: boolean;
}

/** One step of wrangler's `migrations`: Cordon applies the class declarations (docs/durable-objects.md). */
const MigrationStep = z
  .object({
    tag: z.string().optional(),
    new_sqlite_classes: z.array(z.string()).default([]),
    new_classes: z.array(z.string()).default([]),
    renamed_classes: z.array(z.unknown()).default([]),
    deleted_classes: z.array(z.string()).default([]),
    transferred_classes: z.array(z.unknown()).default([]),
  })
  .passthrough();

/** wrangler's `assets` section (Workers Static Assets). */
const Assets = z
  .object({
    directory: z.string(),
    binding: z
      .string()
      .regex(/^[A-Z_][A-Z0-9_]{0,63}$/, 'binding names are upper-case letters, digits and _ (e.g. ASSETS)')
      .optional(),
    html_handling: z.enum(HTML_HANDLING).default('auto-trailing-slash'),
    not_found_handling: z.enum(NOT_FOUND_HANDLING).default('none'),
    run_worker_first: z
      .union([z.boolean(), z.array(z.string().regex(/^!?\//, 'a pattern is a path from / (with ! in front to exclude it)')).max(100)])
      .default(false),
  })
  .strict();

/** Workers' assets_navigation_prefers_asset_serving, on by default from this compatibility date. */
const NAVIGATION_PREFERS_ASSETS_DATE = '2025-04-01';

const Config = z
  .object({
    name: z.string(),
    main: z.string().optional(),
    assets: Assets.optional(),
    compatibility_date: z.string().optional(),
    compatibility_flags: z.array(z.string()).default([]),
    workers_dev: z.boolean().default(true),
    route: Route.optional(),
    routes: z.array(Route).default([]),
    vars: z.record(z.string(), VarValue).default({}),
    limits: z.object({ cpu_ms: z.number().int().positive().optional() }).default({}),
    workflows: z.array(z.object({ name: z.string(), binding: z.string(), class_name: z.string() })).default([]),
    worker_loaders: z.array(z.object({ binding: z.string() }).strict()).default([]),
    durable_objects: z
      .object({ bindings: z.array(z.object({ name: z.string(), class_name: z.string(), script_name: z.string().optional() }).passthrough()).default([]) })
      .default({ bindings: [] }),
    migrations: z.array(MigrationStep).default([]),
    kv_namespaces: KvNamespaces,
    d1_databases: D1Databases,
    queues: Queues,
    services: z
      .array(z.object({ binding: z.string(), service: z.string(), entrypoint: z.string().optional(), props: z.record(z.string(), z.unknown()).optional() }))
      .default([]),
    triggers: z.object({ crons: z.array(z.string()).default([]) }).default({ crons: [] }),
    rules: z.array(z.object({ type: z.enum(RULE_TYPES), globs: z.array(z.string()).min(1), fallthrough: z.boolean().optional() })).default([]),
    define: z.record(z.string(), z.string()).default({}),
    alias: z.record(z.string(), z.string()).default({}),
    minify: z.boolean().default(false),
    jsx_factory: z.string().optional(),
    jsx_fragment: z.string().optional(),
    tsconfig: z.string().optional(),
    no_bundle: z.boolean().default(false),
    find_additional_modules: z.boolean().default(false),
    base_dir: z.string().optional(),
    preserve_file_names: z.boolean().default(false),
    cordon: z
      .object({
        tenant: z.string().optional(),
        cordon: z.string().optional(),
        storage: z.array(z.string()).default([]),
        directories: z.array(z.string()).default([]),
        origins: z.array(z.string()).default([]),
        allow_eval: z.boolean().default(false),
        /** Other tenants whose workers may bind to this one (`services`): its owner's grant. */
        rpc_callers: z.array(z.string()).default([]),
        /** The stricter cordon its `worker_loaders` Workers run in (docs/dynamic-workers.md). */
        loaded_cordon: z.string().optional(),
        egress: z
          .object({ allow_hosts: z.array(z.string()).default([]), deny_hosts: z.array(z.string()).default([]), deny_cidrs: z.array(z.string()).default([]) })
          .optional(),
        limits: z
          .object({
            cpu_ms: z.number().int().positive().optional(),
            wall_ms: z.number().int().positive().optional(),
            memory_mb: z.number().int().positive().optional(),
          })
          .default({}),
      })
      .default({ storage: [], directories: [], origins: [], allow_eval: false, rpc_callers: [], limits: {} }),
  })
  .passthrough();

/** Sections read above. */
const HONOURED = new Set(Object.keys(Config.shape));

/** Sections about Cloudflare's own platform (its account, dashboard, dev server, telemetry): nothing to do on Cordon. */
const PLATFORM_ONLY = new Set([
  '$schema',
  'account_id',
  'preview_urls',
  'observability',
  'logpush',
  'upload_source_maps',
  'send_metrics',
  'keep_vars',
  'dev',
  'usage_model',
  'first_party_worker',
  'compliance_region',
]);

/** Sections with an effect on Cloudflare that Cordon does not give: deployed, with a note saying so. */
const IGNORED: Record<string, string> = {
  placement: 'Cordon runs the worker where the mesh runs it (no Smart Placement)',
  tail_consumers: 'Tail Workers are not run; read the worker log with `cordon logs`',
};

const NOT_YET = 'not implemented in Cordon yet';
/** Sections Cordon does not implement: refused at deploy, each with what to do instead. */
const REFUSED: Record<string, string> = {
  r2_buckets: `R2 is ${NOT_YET}; a directory binding (cordon.directories) stores files`,
  site: `Workers Sites are ${NOT_YET}`,
  legacy_assets: `legacy assets (Workers Sites' successor before Static Assets) are ${NOT_YET}; use the assets section`,
  vectorize: `Vectorize is ${NOT_YET}`,
  ai: `Workers AI is ${NOT_YET}`,
  hyperdrive: `Hyperdrive is ${NOT_YET} (nor are TCP sockets)`,
  analytics_engine_datasets: `Analytics Engine is ${NOT_YET}`,
  browser: `Browser Rendering is ${NOT_YET}`,
  dispatch_namespaces: `Workers for Platforms dispatch is ${NOT_YET}`,
  mtls_certificates: `mTLS certificate bindings are ${NOT_YET}`,
  send_email: `Email bindings are ${NOT_YET}`,
  secrets_store_secrets: `Secrets Store bindings are ${NOT_YET}; pass values with vars`,
  images: `the Images binding is ${NOT_YET}`,
  media: `the Media binding is ${NOT_YET}`,
  version_metadata: `the version metadata binding is ${NOT_YET}`,
  pipelines: `Pipelines are ${NOT_YET}`,
  ratelimits: `rate-limit bindings are ${NOT_YET}`,
  unsafe: `unsafe bindings are ${NOT_YET}`,
  containers: `Containers are ${NOT_YET}`,
  vpc_services: `VPC service bindings are ${NOT_YET}`,
  logfwdr: `logfwdr bindings are ${NOT_YET}`,
  streaming_tail_consumers: `Tail Workers are ${NOT_YET}`,
  wasm_modules: `service-worker wasm_modules are ${NOT_YET}; import the .wasm file from the worker instead`,
  text_blobs: `service-worker text_blobs are ${NOT_YET}; import the file from the worker instead (a Text module)`,
  data_blobs: `service-worker data_blobs are ${NOT_YET}; import the file from the worker instead (a Data module)`,
  node_compat: `Node.js polyfills (node_compat) are ${NOT_YET}`,
  build: `custom builds are not run by Cordon; run your build, then deploy with "main" naming its output`,
};

/** Whether a section says something: `false`, `[]` and `{}` ask for nothing and are accepted whatever the section. */
function present(v: unknown): boolean {
  if (v === undefined || v === null || v === false) return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v).length > 0;
  return true;
}

export interface WorkerConfig {
  name: string;
  /** The entry module; absent for an assets-only worker. */
  main?: string;
  /** Static assets (`assets`): the directory, its binding, and how requests meet them. */
  assets?: { directory: string; binding?: string; routing: AssetRouting };
  tenant?: string;
  cordon?: string;
  /** The stricter cordon its loaded Workers run in (`cordon.loaded_cordon`). */
  loadedCordon?: string;
  routes: string[];
  vars: Record<string, VarValue>;
  storage: string[];
  directories: string[];
  origins: string[];
  allowEval: boolean;
  egress?: { allowHosts: string[]; denyHosts: string[]; denyCidrs: string[] };
  /** Cron triggers (`triggers.crons`). */
  crons: string[];
  /** `workers_dev: false`: no default route. */
  workersDev: boolean;
  /** Workflows the worker hosts, each bound in env under `binding`. */
  workflows: { name: string; binding: string; className: string }[];
  /** Worker Loader bindings (`worker_loaders`): Dynamic Workers, docs/dynamic-workers.md. */
  loaders: string[];
  /** Durable Object bindings (`durable_objects.bindings`), each to a class of this worker. */
  objects: { binding: string; className: string }[];
  /** The Durable Object classes the migrations declare (all SQLite-backed). */
  objectClasses: string[];
  /** KV namespaces, D1 databases and queue producers (`kv_namespaces`, `d1_databases`, `queues.producers`). */
  resourceBindings: ResourceBinding[];
  /** Queues whose batches this worker consumes (`queues.consumers`). */
  queueConsumers: Partial<QueueConsumerDecl>[];
  /** Service bindings (`services`): env.<binding> is that worker's entrypoint. */
  services: { binding: string; service: string; entrypoint?: string; props?: Record<string, unknown> }[];
  /** Tenants granted to bind to this worker (`cordon.rpc_callers`). */
  rpcCallers: string[];
  cpuMs?: number;
  wallMs?: number;
  memoryMb?: number;
  /** How the bundle is built, as wrangler builds it. */
  build: BuildSettings;
  /** Sections accepted without effect on Cordon, one line each, for the user to read. */
  notes: string[];
}

export interface BuildSettings {
  /** The directory `alias` and `tsconfig` are relative to (the config file's). */
  root?: string;
  rules?: ModuleRule[];
  define?: Record<string, string>;
  alias?: Record<string, string>;
  minify?: boolean;
  jsxFactory?: string;
  jsxFragment?: string;
  tsconfig?: string;
  /** `no_bundle`: `main` and the files the rules match under `baseDir` are uploaded as they are. */
  noBundle?: boolean;
  /** `find_additional_modules`: the files under `baseDir` the rules match are modules of their own, not bundled. */
  findAdditionalModules?: boolean;
  /** `base_dir` (absolute): where additional modules are found and named from; `main`'s directory by default. */
  baseDir?: string;
  /** `preserve_file_names`: a module a rule matched is named by its import path, not by a hash of its content. */
  preserveFileNames?: boolean;
  /** The config file itself, never an additional module. */
  configFile?: string;
  /** Which Node.js modules and globals the bundle gets (nodejs-compat.ts). */
  compatibilityDate?: string;
  compatibilityFlags?: string[];
}

/** Where an offset falls in the text, as line:column (1-based). */
function position(text: string, offset: number): string {
  const before = text.slice(0, offset).split('\n');
  return `${before.length}:${before.at(-1)!.length + 1}`;
}

/** The config files `deploy` looks for in a directory when given neither an entry nor --config: Cordon's, then wrangler's in wrangler's order. */
export const CONFIG_NAMES = ['cordon.jsonc', 'cordon.json', 'wrangler.json', 'wrangler.jsonc', 'wrangler.toml'];

export function findWorkerConfig(dir: string): string | undefined {
  return CONFIG_NAMES.map((n) => join(dir, n)).find((f) => existsSync(f));
}

function parseText(file: string, text: string): unknown {
  if (file.endsWith('.toml')) {
    try {
      return parseToml(text);
    } catch (e) {
      if (e instanceof TomlError) throw cliError(`${file}:${e.line}:${e.column}: ${e.message.split('\n')[0]}`);
      throw e;
    }
  }
  const errors: ParseError[] = [];
  const raw = parse(text, errors, { allowTrailingComma: true, disallowComments: false });
  if (errors.length) throw cliError(`${file}:${position(text, errors[0]!.offset)}: ${printParseErrorCode(errors[0]!.error)}`);
  return raw;
}

/**
 * The Durable Object classes wrangler's migrations leave declared, in order. `new_classes` (Cloudflare's
 * key-value backend) are SQLite-backed here like `new_sqlite_classes`: every object has the SQL and KV
 * APIs. Renaming, deleting and transferring classes move or drop stored objects, which Cordon does not
 * do yet: those steps are refused (added to `refused`).
 */
function migratedClasses(steps: z.infer<typeof MigrationStep>[], refused: string[]): string[] {
  const classes: string[] = [];
  for (const step of steps) {
    for (const cls of [...step.new_sqlite_classes, ...step.new_classes]) if (!classes.includes(cls)) classes.push(cls);
    for (const [key, list] of [
      ['renamed_classes', step.renamed_classes],
      ['deleted_classes', step.deleted_classes],
      ['transferred_classes', step.transferred_classes],
    ] as const)
      if (list.length)
        refused.push(
          `  migrations: ${key} ${NOT_YET} (objects would have to move or be dropped); remove the step, and delete objects with \`cordon objects delete\``,
        );
  }
  return classes;
}

/** The worker `file` configures; with `env`, its `[env.<env>]` environment as wrangler resolves it (config-env.ts). */
export function readWorkerConfig(file: string, env?: string): WorkerConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw cliError(`cannot read ${file}: ${(e as Error).message}`);
  }
  const selected = selectEnvironment(parseText(file, text), env, file);
  const r = Config.safeParse(selected.config);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw cliError(`${file}: ${issue.path.join('.') || '(top level)'}: ${issue.message}`);
  }
  const c = r.data;
  const refused: string[] = [];
  const notes: string[] = [...selected.notes];
  for (const [section, value] of Object.entries(c)) {
    if (HONOURED.has(section) || PLATFORM_ONLY.has(section) || !present(value)) continue;
    if (Object.hasOwn(IGNORED, section)) notes.push(`${section} ignored: ${IGNORED[section]}`);
    else
      refused.push(`  ${section}: ${Object.hasOwn(REFUSED, section) ? REFUSED[section] : 'a section Cordon does not know; remove it (or check its spelling)'}`);
  }
  for (const rule of c.rules) {
    if (rule.type.startsWith('Python')) refused.push(`  rules: ${rule.type} modules are ${NOT_YET}`);
  }
  const flags = unknownFlags(c.compatibility_flags);
  if (flags) refused.push(`  compatibility_flags: ${flags}`);
  if (c.main === undefined && !c.assets) refused.push('  main: the entry module is missing (only an assets-only worker, with an assets section, has none)');
  if (c.main === undefined && c.assets?.binding)
    refused.push(`  assets: binding ${c.assets.binding} without a worker to use it; add main, or remove the binding`);
  if (c.main === undefined && c.assets?.run_worker_first !== undefined && c.assets.run_worker_first !== false)
    refused.push('  assets: run_worker_first without a worker to run; add main, or remove run_worker_first');
  const objectClasses = migratedClasses(c.migrations, refused);
  for (const b of c.durable_objects.bindings) {
    if (b.script_name !== undefined && b.script_name !== c.name)
      refused.push(
        `  durable_objects: ${b.name} binds class ${b.class_name} of worker ${b.script_name}: objects of another worker are ${NOT_YET}; bind a class this worker exports`,
      );
    else if (!objectClasses.includes(b.class_name))
      refused.push(
        `  durable_objects: cannot create binding ${b.name} for class ${b.class_name}: it is not declared as a Durable Object class; add it to a migration's new_sqlite_classes`,
      );
  }
  if (refused.length) throw cliError(`${file}: Cordon cannot deploy this worker as configured:\n${refused.join('\n')}`);
  let resources: ReturnType<typeof resourceBindings>;
  try {
    resources = resourceBindings(c.kv_namespaces, c.d1_databases, c.queues);
  } catch (e) {
    throw cliError(`${file}: ${(e as Error).message}`);
  }
  const bound = new Set([...c.cordon.storage, ...c.cordon.directories]);
  for (const w of c.workflows) if (bound.has(w.binding)) throw cliError(`${file}: workflows: binding ${w.binding} is also a storage or directory binding`);
  for (const l of c.worker_loaders)
    if (bound.has(l.binding) || c.workflows.some((w) => w.binding === l.binding))
      throw cliError(`${file}: worker_loaders: binding ${l.binding} is also another binding`);
  for (const b of c.durable_objects.bindings)
    if (bound.has(b.name) || c.workflows.some((w) => w.binding === b.name) || c.worker_loaders.some((l) => l.binding === b.name))
      throw cliError(`${file}: durable_objects: binding ${b.name} is also a storage, directory, workflow or loader binding`);
  const routes = [...(c.route ? [c.route] : []), ...c.routes].map((x) => (typeof x === 'string' ? x : x.pattern));
  const root = dirname(resolve(file));
  const navigationPrefersAssets = c.compatibility_flags.includes('assets_navigation_prefers_asset_serving')
    ? true
    : !c.compatibility_flags.includes('assets_navigation_has_no_effect') && gatingDate(c.compatibility_date) >= NAVIGATION_PREFERS_ASSETS_DATE;
  return {
    name: c.name,
    main: c.main === undefined ? undefined : resolve(root, c.main),
    assets: c.assets && {
      directory: resolve(root, c.assets.directory),
      binding: c.assets.binding,
      routing: {
        htmlHandling: c.assets.html_handling,
        notFoundHandling: c.assets.not_found_handling,
        runWorkerFirst: c.assets.run_worker_first,
        navigationPrefersAssets,
        hasWorker: c.main !== undefined,
      },
    },
    tenant: c.cordon.tenant,
    cordon: c.cordon.cordon,
    loadedCordon: c.cordon.loaded_cordon,
    routes,
    vars: c.vars,
    storage: c.cordon.storage,
    directories: c.cordon.directories,
    origins: c.cordon.origins,
    allowEval: c.cordon.allow_eval,
    egress: c.cordon.egress && { allowHosts: c.cordon.egress.allow_hosts, denyHosts: c.cordon.egress.deny_hosts, denyCidrs: c.cordon.egress.deny_cidrs },
    cpuMs: c.cordon.limits.cpu_ms ?? c.limits.cpu_ms,
    crons: c.triggers.crons,
    workersDev: c.workers_dev,
    workflows: c.workflows.map((w) => ({ name: w.name, binding: w.binding, className: w.class_name })),
    loaders: c.worker_loaders.map((l) => l.binding),
    objects: c.durable_objects.bindings.map((b) => ({ binding: b.name, className: b.class_name })),
    objectClasses,
    resourceBindings: resources.bindings,
    queueConsumers: resources.queueConsumers,
    services: c.services,
    rpcCallers: c.cordon.rpc_callers,
    wallMs: c.cordon.limits.wall_ms,
    memoryMb: c.cordon.limits.memory_mb,
    build: {
      root,
      rules: c.rules.filter((x): x is ModuleRule => !x.type.startsWith('Python')),
      define: c.define,
      alias: c.alias,
      minify: c.minify,
      jsxFactory: c.jsx_factory,
      jsxFragment: c.jsx_fragment,
      tsconfig: c.tsconfig && resolve(root, c.tsconfig),
      noBundle: c.no_bundle,
      findAdditionalModules: c.find_additional_modules,
      baseDir: c.base_dir === undefined ? undefined : resolve(root, c.base_dir),
      preserveFileNames: c.preserve_file_names,
      configFile: resolve(file),
      compatibilityDate: c.compatibility_date,
      compatibilityFlags: c.compatibility_flags,
    },
    notes: [...notes, ...resources.notes],
  };
}
