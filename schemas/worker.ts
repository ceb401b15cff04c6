/** Workers as the supervisor stores them and hands them to a sandbox. */
import { z } from 'zod';
import { plainObject, withAcceptor } from '../lib/rpc/validate.ts';
import { ClassName, WorkflowName, type WorkflowDecl } from './workflows.ts';
import { ServiceBindingFields } from './service-bindings.ts';
import { DurableObjectBinding } from './durable-objects.ts';
import type { QueueConsumerDecl } from './queues.ts';
import { RESOURCE_BINDING_TYPES, ResourceBindingFields } from './resources.ts';
import type { AssetManifest } from './assets.ts';

export const NAME = /^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$/;
export const WorkerName = z.string().regex(NAME, 'names are 1-64 lower-case letters, digits and inner dashes');
export const TenantName = WorkerName;
export const CordonName = WorkerName;

/** A worker's identity: `<tenant>/<name>`. */
export type WorkerId = string;
export const WorkerId = z.string().regex(new RegExp(`^${NAME.source.slice(1, -1)}/${NAME.source.slice(1, -1)}$`), 'a worker id is <tenant>/<worker>');

/** The key a sandbox is given to fetch one worker's code (base64url of 32 bytes). */
export const CodeKey = z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'malformed code key');

/** `cjs`: CommonJS, as a Dynamic Worker's code may hold (a deploy bundles to ES modules). */
export const ModuleType = z.enum(['esm', 'cjs', 'text', 'data', 'json', 'wasm']);

/**
 * Why `name` cannot be a module name, or undefined when it can. A module name is a relative path that
 * `cordon export` writes as a file on the operator's machine, so it is checked as one: ASCII letters,
 * digits and `_ . - /` only (no backslash, colon, space, `~` or control character — so no NTFS stream,
 * no 8.3 short name such as `git~1`, nothing HFS+ ignores), no empty, `.` or `..` segment (so nothing
 * absolute and nothing climbing out), and no segment git itself would take for `.git` in any case or
 * with trailing dots (which Windows drops): a checkout of the export would otherwise hold a nested
 * repository whose config (core.fsmonitor…) git runs.
 */
export function moduleNameProblem(name: string): string | undefined {
  if (name.length === 0 || name.length > 256) return 'must be 1-256 characters';
  if (!/^[A-Za-z0-9_.\-/]+$/.test(name)) return 'may use only letters, digits, _ . - and /';
  for (const segment of name.split('/')) {
    if (segment === '' || segment === '.' || segment === '..') return 'must be a relative path without empty, "." or ".." segments';
    if (/^\.git\.*$/i.test(segment)) return 'may not have a .git segment (git would read it as a repository)';
  }
  return undefined;
}

export const ModuleName = z.string().superRefine((name, ctx) => {
  const why = moduleNameProblem(name);
  if (why) ctx.addIssue({ code: 'custom', message: `module name ${JSON.stringify(name.slice(0, 300))} ${why}` });
});

/** At most this many modules in a deploy, of at most MAX_CODE_BYTES together (checked by the admin API; `cordon deploy` stops early). */
export const MAX_MODULES = 1000;
export const MAX_CODE_BYTES = 64 * 1024 * 1024;

/**
 * isolated-vm gives V8 no dynamic-import hook, so `import()` in an isolate fails. `cordon deploy` rewrites
 * each `import(x)` of a worker's JavaScript modules to `<DYNAMIC_IMPORT>("<module name>", x)`, a function
 * the runtime defines: it loads the module x names (relative to that module), as workerd's import() does.
 */
export const DYNAMIC_IMPORT = '__cordonImport';

export const WorkerModule = z.object({
  name: ModuleName,
  type: ModuleType,
  /** Text for esm/text/json; base64 for data/wasm. */
  content: z.string(),
});
export type WorkerModule = z.infer<typeof WorkerModule>;

/**
 * A capability binding a worker declares at deploy: `env.<name>` in the isolate (a workflow binding names
 * its workflow). A `loader` binding is a Worker Loader (docs/dynamic-workers.md): served by the sandbox
 * itself, nothing of the supervisor's.
 */
const CoreBinding = z
  .object({
    type: z.enum(['storage', 'directory', 'workflow', 'service', 'loader', 'assets', ...RESOURCE_BINDING_TYPES]),
    name: z.string().regex(/^[A-Z_][A-Z0-9_]{0,63}$/, 'binding names are upper-case letters, digits and _ (e.g. STORE)'),
    workflow: WorkflowName.optional(),
    ...ServiceBindingFields,
    ...ResourceBindingFields,
  })
  .strict()
  .refine((b) => (b.type === 'workflow') === (b.workflow !== undefined), 'a workflow binding names its workflow, and only a workflow binding does')
  .refine((b) => (b.type === 'service') === (b.service !== undefined), 'a service binding names its service (a worker), and only a service binding does')
  .refine((b) => b.type === 'service' || (b.entrypoint === undefined && b.props === undefined), 'entrypoint and props belong to service bindings')
  .refine(
    (b) => (RESOURCE_BINDING_TYPES as readonly string[]).includes(b.type) === (b.resource !== undefined),
    'a kv, d1 or queue binding names its resource, and only those do',
  )
  .refine((b) => b.deliveryDelay === undefined || b.type === 'queue', 'only a queue binding has a delivery delay');
/** A binding of the kinds CoreBinding holds (a service binding is one). */
export type CoreBinding = z.infer<typeof CoreBinding>;
/** Every binding kind; each kind with a schema of its own is one more member here. */
export const Binding = z.union([CoreBinding, DurableObjectBinding]);
export type Binding = z.infer<typeof Binding>;

export const Limits = z.object({
  cpuMs: z.number().int().min(1).max(300_000).default(1000),
  wallMs: z.number().int().min(1).max(900_000).default(30_000),
  memoryMb: z.number().int().min(8).max(4096).default(128),
});
export type Limits = z.infer<typeof Limits>;

/** A var's value: any JSON value, as in Workers (wrangler passes non-string vars as JSON bindings). */
export type VarValue = string | number | boolean | null | VarValue[] | { [key: string]: VarValue };

/** Nesting deeper than this is refused before the value is walked (a var is configuration, not data). */
const MAX_VAR_DEPTH = 32;

function depthOf(v: unknown, limit: number): number {
  if (typeof v !== 'object' || v === null) return 0;
  if (limit <= 0) return 1;
  let max = 0;
  for (const child of Object.values(v)) max = Math.max(max, depthOf(child, limit - 1));
  return max + 1;
}

/** A var value as received from a deployer: JSON, nested at most MAX_VAR_DEPTH deep. */
export const VarValue: z.ZodType<VarValue> = z
  .unknown()
  .refine((v) => depthOf(v, MAX_VAR_DEPTH) <= MAX_VAR_DEPTH, `nested more than ${MAX_VAR_DEPTH} deep`)
  .pipe(z.json()) as z.ZodType<VarValue>;

/** What a sandbox receives in exchange for a code key: the code and nothing that names other workers. */
export interface WorkerBundle {
  workerId: WorkerId;
  version: string;
  mainModule: string;
  modules: WorkerModule[];
  limits: Limits;
  vars: Record<string, VarValue>;
  bindings: Binding[];
  /** Origins (`scheme://host:port`) the worker may fetch even when they are not public. */
  origins?: string[];
  /** eval, new Function and WebAssembly compilation from runtime bytes (off unless opted in at deploy). */
  allowEval?: boolean;
  /** Per-worker egress lists, on top of the public-only default. */
  egress?: EgressLists;
  /** Workflows this worker hosts (`export class <className> extends WorkflowEntrypoint`). */
  workflows?: WorkflowDecl[];
  /** Cron triggers (five fields, UTC): the supervisor runs scheduled() on each tick. */
  crons?: string[];
  /** A Dynamic Worker only: the names in its `env` that are entrypoint stubs of its parent (the rest of its env is `vars`). */
  stubs?: string[];
  /** Classes declared as Durable Objects (wrangler's `migrations[].new_sqlite_classes`, SQLite-backed). */
  objectClasses?: string[];
  /** Queues of the tenant whose batches this worker's queue() handler consumes. */
  queueConsumers?: QueueConsumerDecl[];
  /** Other tenants whose workers may call this one over a service binding (its owner's grant). */
  rpcCallers?: string[];
  /**
   * The cordon its `worker_loaders` Workers run in, stricter than its own (docs/dynamic-workers.md). As
   * deployed: the deployer's choice; as the supervisor serves it to a sandbox: the one in effect now,
   * absent when they run in the worker's own process.
   */
  loadedCordon?: string;
  /** Its static assets: the routing settings and the manifest of paths and hashes (schemas/assets.ts). */
  assets?: AssetManifest;
}

/** A stored version's settings as the admin API shows them (GET /v1/workers/<tenant>/<name>/versions): what changed between versions, no code or var values. */
export interface VersionSettings {
  mainModule: string;
  modules: { name: string; bytes: number; sha256: string }[];
  limits: Limits;
  vars: string[];
  bindings: Binding[];
  origins: string[];
  allowEval: boolean;
  egress: EgressLists | null;
  workflows: WorkflowDecl[];
  crons: string[];
  objectClasses: string[];
  queueConsumers: QueueConsumerDecl[];
  /** Its static assets, counted (the manifest itself is not shown). */
  assets: { files: number; bytes: number; routing: AssetManifest['routing'] } | null;
}

/** The Durable Object classes of a deploy (wrangler's migrations, applied: see docs/durable-objects.md). */
export const ObjectClasses = z
  .array(ClassName)
  .max(64)
  .default([])
  .refine((cs) => new Set(cs).size === cs.length, 'Durable Object classes are declared once each');

export const EgressLists = z.object({
  allowHosts: z
    .array(z.string().regex(/^(\*\.)?[a-z0-9.-]{1,253}$/, 'a host name, or *.domain'))
    .max(100)
    .default([]),
  denyHosts: z
    .array(z.string().regex(/^(\*\.)?[a-z0-9.-]{1,253}$/, 'a host name, or *.domain'))
    .max(100)
    .default([]),
  denyCidrs: z
    .array(z.string().regex(/^[0-9a-f.:]+\/\d{1,3}$/i, 'a CIDR such as 10.0.0.0/8'))
    .max(100)
    .default([]),
});
export type EgressLists = z.infer<typeof EgressLists>;

/** Which worker version a request is for, as ingress tells the sandbox. The code key is the authority. */
const VERSION = /^[0-9a-f]{64}$/;
const CODE_KEY = /^[A-Za-z0-9_-]{43}$/;

const Target = z.object({
  workerId: z.string().max(130),
  version: z.string().regex(VERSION),
  codeKey: z.string().regex(CODE_KEY, 'malformed code key'),
});
export const WorkerTarget = withAcceptor(Target, acceptTarget);

/** WorkerTarget's acceptor (lib/rpc/validate.ts withAcceptor): the target as zod would give it back, or undefined. */
function acceptTarget(v: unknown): z.output<typeof Target> | undefined {
  if (!plainObject(v)) return undefined;
  const { workerId, version, codeKey } = v;
  if (typeof workerId !== 'string' || workerId.length > 130) return undefined;
  if (typeof version !== 'string' || !VERSION.test(version) || typeof codeKey !== 'string' || !CODE_KEY.test(codeKey)) return undefined;
  return { workerId, version, codeKey };
}
export type WorkerTarget = z.infer<typeof WorkerTarget>;
