/** Settings shared by every service and the CLI, from the environment (the launcher passes them on). */
import { resolve, join } from 'node:path';

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

export function loadConfig(env: NodeJS.ProcessEnv = process.env): MeshConfig {
  return {
    dataDir: resolve(env.CORDON_DATA_DIR || '.cordon'),
    httpPort: port(env, 'CORDON_HTTP_PORT', 8080),
    httpsPort: port(env, 'CORDON_HTTPS_PORT', 8443),
    adminPort: port(env, 'CORDON_ADMIN_PORT', 8081),
    natsUrl: env.CORDON_NATS_URL || undefined,
  };
}

export function socketPath(dataDir: string, endpoint: string): string {
  return join(dataDir, 'sockets', `${endpoint}.sock`);
}

/** The cordons (trust levels) `npm start` runs a sandbox process for. */
export function cordonList(env: NodeJS.ProcessEnv = process.env): string[] {
  return (env.CORDON_CORDONS || 'standard,untrusted').split(',').map((s) => s.trim()).filter(Boolean);
}
