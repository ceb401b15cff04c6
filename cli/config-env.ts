/**
 * wrangler's environments (`[env.<name>]`, chosen by `--env <name>`), resolved as wrangler resolves them
 * (workers-sdk's config/validation.ts): the environment's own keys win; the top level's are inherited,
 * except bindings and `vars`/`define`, which an environment must declare itself; the worker is named
 * `<name>-<env>` unless the environment sets `name`. Cordon's own `cordon` section is inherited as a
 * whole unless the environment has one. Without `--env` the top level is deployed, as with wrangler.
 */
import { cliError } from './admin-client.ts';

/** The keys wrangler does not inherit into an environment: bindings, and what shapes the code per environment. */
export const NOT_INHERITED = new Set([
  'vars',
  'define',
  'durable_objects',
  'workflows',
  'kv_namespaces',
  'd1_databases',
  'queues',
  'services',
  'worker_loaders',
  'r2_buckets',
  'vectorize',
  'hyperdrive',
  'analytics_engine_datasets',
  'dispatch_namespaces',
  'mtls_certificates',
  'send_email',
  'tail_consumers',
  'streaming_tail_consumers',
  'unsafe',
  'browser',
  'ai',
  'images',
  'media',
  'pipelines',
  'secrets_store_secrets',
  'version_metadata',
  'ratelimits',
  'containers',
  'cloudchamber',
  'vpc_services',
]);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The configuration `--env <env>` deploys (the top level when `env` is undefined), and notes for the
 * user: the environments a plain deploy leaves aside, the top-level bindings an environment does not get.
 */
export function selectEnvironment(raw: unknown, env: string | undefined, file: string): { config: unknown; notes: string[] } {
  if (!isObject(raw)) return { config: raw, notes: [] };
  const { env: envs, ...top } = raw;
  const names = isObject(envs) ? Object.keys(envs) : [];
  if (env === undefined) {
    const notes = names.length ? [`env: ${file} defines the environment(s) ${names.join(', ')}; without --env the top level is deployed`] : [];
    return { config: top, notes };
  }
  if (!isObject(envs) || !Object.hasOwn(envs, env))
    throw cliError(
      `${file}: no environment ${JSON.stringify(env)} (an [env.${env}] section); ${names.length ? `it defines: ${names.join(', ')}` : 'it defines none'}`,
    );
  const own = envs[env];
  if (!isObject(own)) throw cliError(`${file}: env.${env} must be an object`);
  const config: Record<string, unknown> = {};
  const notes: string[] = [];
  for (const [key, value] of Object.entries(top)) {
    if (!NOT_INHERITED.has(key)) config[key] = value;
    else if (!Object.hasOwn(own, key))
      notes.push(
        `${key}: the top level's is not inherited by environments (as in wrangler); env.${env} has none — add it to env.${env} if this environment needs it`,
      );
  }
  // defineProperty, not assignment: a key named __proto__ is data here, never the object's prototype.
  for (const [key, value] of Object.entries(own)) Object.defineProperty(config, key, { value, enumerable: true, writable: true, configurable: true });
  if (!Object.hasOwn(own, 'name') && typeof top.name === 'string') config.name = `${top.name}-${env}`;
  return { config, notes };
}
