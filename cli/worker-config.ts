/**
 * The worker configuration file: Cloudflare's `wrangler.jsonc` / `wrangler.json` read unchanged
 * (`name`, `main`, `compatibility_date`, `route`/`routes`, `vars`, `limits.cpu_ms`, `triggers.crons`, `workflows`), plus Cordon's own
 * settings under `cordon` (`tenant`, `cordon`, `storage`, `directories`, `origins`, `allow_eval`,
 * `limits`, `egress: { allow_hosts, deny_hosts, deny_cidrs }`). JSONC: comments and trailing commas are fine (jsonc-parser, Microsoft's).
 * This one reader serves every binding kind, so a new binding is one more field here.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parse, printParseErrorCode, type ParseError } from 'jsonc-parser';
import { z } from 'zod';
import { CliError } from './admin-client.ts';

const Route = z.union([z.string(), z.object({ pattern: z.string(), zone_name: z.string().optional(), custom_domain: z.boolean().optional() })]);

const Config = z
  .object({
    name: z.string(),
    main: z.string(),
    compatibility_date: z.string().optional(),
    route: Route.optional(),
    routes: z.array(Route).default([]),
    vars: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).default({}),
    limits: z.object({ cpu_ms: z.number().int().positive().optional() }).default({}),
    workflows: z.array(z.object({ name: z.string(), binding: z.string(), class_name: z.string() })).default([]),
    triggers: z.object({ crons: z.array(z.string()).default([]) }).default({ crons: [] }),
    cordon: z
      .object({
        tenant: z.string().optional(),
        cordon: z.string().optional(),
        storage: z.array(z.string()).default([]),
        directories: z.array(z.string()).default([]),
        origins: z.array(z.string()).default([]),
        allow_eval: z.boolean().default(false),
        egress: z.object({ allow_hosts: z.array(z.string()).default([]), deny_hosts: z.array(z.string()).default([]), deny_cidrs: z.array(z.string()).default([]) }).optional(),
        limits: z.object({ cpu_ms: z.number().int().positive().optional(), wall_ms: z.number().int().positive().optional(), memory_mb: z.number().int().positive().optional() }).default({}),
      })
      .default({ storage: [], directories: [], origins: [], allow_eval: false, limits: {} }),
  })
  .passthrough();

export interface WorkerConfig {
  name: string;
  main: string;
  tenant?: string;
  cordon?: string;
  routes: string[];
  vars: Record<string, string>;
  storage: string[];
  directories: string[];
  origins: string[];
  allowEval: boolean;
  egress?: { allowHosts: string[]; denyHosts: string[]; denyCidrs: string[] };
  /** Cron triggers (`triggers.crons`). */
  crons: string[];
  /** Workflows the worker hosts, each bound in env under `binding`. */
  workflows: { name: string; binding: string; className: string }[];
  cpuMs?: number;
  wallMs?: number;
  memoryMb?: number;
}

/** Where an offset falls in the text, as line:column (1-based). */
function position(text: string, offset: number): string {
  const before = text.slice(0, offset).split('\n');
  return `${before.length}:${before.at(-1)!.length + 1}`;
}

/** The config files `deploy` looks for in a directory when given neither an entry nor --config, in this order. */
export const CONFIG_NAMES = ['cordon.jsonc', 'cordon.json', 'wrangler.jsonc', 'wrangler.json'];

export function findWorkerConfig(dir: string): string | undefined {
  return CONFIG_NAMES.map((n) => join(dir, n)).find((f) => existsSync(f));
}

export function readWorkerConfig(file: string): WorkerConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new CliError(`cannot read ${file}: ${(e as Error).message}`);
  }
  const errors: ParseError[] = [];
  const raw = parse(text, errors, { allowTrailingComma: true, disallowComments: false });
  if (errors.length) throw new CliError(`${file}:${position(text, errors[0]!.offset)}: ${printParseErrorCode(errors[0]!.error)}`);
  const r = Config.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new CliError(`${file}: ${issue.path.join('.') || '(top level)'}: ${issue.message}`);
  }
  const c = r.data;
  const bound = new Set([...c.cordon.storage, ...c.cordon.directories]);
  for (const w of c.workflows) if (bound.has(w.binding)) throw new CliError(`${file}: workflows: binding ${w.binding} is also a storage or directory binding`);
  const routes = [...(c.route ? [c.route] : []), ...c.routes].map((x) => (typeof x === 'string' ? x : x.pattern));
  return {
    name: c.name,
    main: resolve(dirname(file), c.main),
    tenant: c.cordon.tenant,
    cordon: c.cordon.cordon,
    routes,
    vars: Object.fromEntries(Object.entries(c.vars).map(([k, v]) => [k, String(v)])),
    storage: c.cordon.storage,
    directories: c.cordon.directories,
    origins: c.cordon.origins,
    allowEval: c.cordon.allow_eval,
    egress: c.cordon.egress && { allowHosts: c.cordon.egress.allow_hosts, denyHosts: c.cordon.egress.deny_hosts, denyCidrs: c.cordon.egress.deny_cidrs },
    cpuMs: c.cordon.limits.cpu_ms ?? c.limits.cpu_ms,
    crons: c.triggers.crons,
    workflows: c.workflows.map((w) => ({ name: w.name, binding: w.binding, className: w.class_name })),
    wallMs: c.cordon.limits.wall_ms,
    memoryMb: c.cordon.limits.memory_mb,
  };
}
