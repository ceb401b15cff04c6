/**
 * Settings shared by every service and the CLI: from the environment (the launcher passes them on),
 * over an optional JSON config file named by CORDON_CONFIG (keys as below, e.g. {"httpPort": 80}).
 */
import { readFileSync } from 'node:fs';
import { resolve, join } from 'node:path';
import { OriginError, parseOrigin } from './origins.ts';

export interface MeshConfig {
  dataDir: string;
  httpPort: number;
  httpsPort: number;
  adminPort: number;
  /** NATS server URL when the mesh runs over NATS instead of Unix sockets. */
  natsUrl: string | undefined;
}

function port(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`${name} must be a port number (0-65535), got ${JSON.stringify(raw)}`);
  return n;
}

const FILE_KEYS: Record<string, string> = {
  dataDir: 'CORDON_DATA_DIR',
  httpPort: 'CORDON_HTTP_PORT',
  httpsPort: 'CORDON_HTTPS_PORT',
  adminPort: 'CORDON_ADMIN_PORT',
  natsUrl: 'CORDON_NATS_URL',
  cordons: 'CORDON_CORDONS',
  maxIsolates: 'CORDON_MAX_ISOLATES',
  sandboxMemoryMb: 'CORDON_SANDBOX_MEMORY_MB',
  sandboxMemoryMaxMb: 'CORDON_SANDBOX_MEMORY_MAX_MB',
  isolateIdleSeconds: 'CORDON_ISOLATE_IDLE_SECONDS',
  sqlProcesses: 'CORDON_SQL_PROCESSES',
  adminMaxBodyMb: 'CORDON_ADMIN_MAX_BODY_MB',
  tenantOrigins: 'CORDON_TENANT_ORIGINS',
};

/** The config file's settings as environment variables; the real environment wins over them. */
function withConfigFile(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const file = env.CORDON_CONFIG;
  if (!file) return env;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`cannot read the config file CORDON_CONFIG=${file}: ${(e as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error(`config file ${file} must hold a JSON object`);
  const merged: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(parsed)) {
    const name = FILE_KEYS[key];
    if (!name) throw new Error(`config file ${file}: unknown setting ${JSON.stringify(key)}; known: ${Object.keys(FILE_KEYS).join(', ')}`);
    merged[name] = Array.isArray(value) ? value.join(',') : String(value);
  }
  return { ...merged, ...env };
}

export function loadConfig(rawEnv: NodeJS.ProcessEnv = process.env): MeshConfig {
  const env = withConfigFile(rawEnv);
  return {
    dataDir: resolve(env.CORDON_DATA_DIR || '.cordon'),
    httpPort: port(env, 'CORDON_HTTP_PORT', 8080),
    httpsPort: port(env, 'CORDON_HTTPS_PORT', 8443),
    adminPort: port(env, 'CORDON_ADMIN_PORT', 8081),
    natsUrl: env.CORDON_NATS_URL || undefined,
  };
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
export function cordonList(rawEnv: NodeJS.ProcessEnv = process.env): string[] {
  const env = withConfigFile(rawEnv);
  return (env.CORDON_CORDONS || 'standard,untrusted').split(',').map((s) => s.trim()).filter(Boolean);
}

function positive(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive whole number, got ${JSON.stringify(raw)}`);
  return n;
}

/** How much a sandbox process keeps warm: isolates at most, their heaps together, and for how long idle. */
export function sandboxSettings(rawEnv: NodeJS.ProcessEnv = process.env): { maxIsolates: number; memoryBudgetMb: number; idleMs: number } {
  const env = withConfigFile(rawEnv);
  return {
    maxIsolates: positive(env, 'CORDON_MAX_ISOLATES', 1000),
    memoryBudgetMb: positive(env, 'CORDON_SANDBOX_MEMORY_MB', 2048),
    idleMs: positive(env, 'CORDON_ISOLATE_IDLE_SECONDS', 300) * 1000,
  };
}

/** How many processes the supervisor runs tenant SQL in, at most (one tenant may use all but one). */
export function sqlProcesses(rawEnv: NodeJS.ProcessEnv = process.env): number {
  return positive(withConfigFile(rawEnv), 'CORDON_SQL_PROCESSES', 4);
}

/** The largest admin API request body, in bytes; past it, 413 before anything is parsed. */
export function adminMaxBodyBytes(rawEnv: NodeJS.ProcessEnv = process.env): number {
  return positive(withConfigFile(rawEnv), 'CORDON_ADMIN_MAX_BODY_MB', 72) * 1024 * 1024;
}

/**
 * Origins that are not public (egress would refuse them) which the operator lets tenant-bound tokens
 * declare: `scheme://host:port` for every tenant, `<tenant>=scheme://host:port` for one.
 */
export function tenantOrigins(rawEnv: NodeJS.ProcessEnv = process.env): { tenant: string | undefined; origin: string }[] {
  const env = withConfigFile(rawEnv);
  return (env.CORDON_TENANT_ORIGINS || '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((entry) => {
      const m = /^([a-z0-9-]{1,64})=(.*)$/.exec(entry);
      try {
        return { tenant: m?.[1], origin: parseOrigin(m ? m[2]! : entry) };
      } catch (e) {
        if (e instanceof OriginError) throw new Error(`CORDON_TENANT_ORIGINS: ${e.message} (entries are scheme://host:port or <tenant>=scheme://host:port)`);
        throw e;
      }
    });
}

/**
 * The kernel's hard memory ceiling for each sandbox process (MB): by default the isolates' budget plus
 * 1 GiB, for Node itself and for isolates that are mid-request while the budget is full (only idle
 * isolates are evicted).
 */
export function sandboxCeilingMb(rawEnv: NodeJS.ProcessEnv = process.env): number {
  const env = withConfigFile(rawEnv);
  return positive(env, 'CORDON_SANDBOX_MEMORY_MAX_MB', sandboxSettings(rawEnv).memoryBudgetMb + 1024);
}
