/** The CLI's client for the admin API: CORDON_ADMIN_URL and CORDON_TOKEN, else the local defaults. */
import { readFileSync } from 'node:fs';
import { loadConfig, type MeshConfig } from '../lib/config.ts';
import { adminTokenPath } from '../lib/admin-token.ts';
import { CordonError } from '../lib/errors.ts';

/**
 * A mistake the CLI reports in one line (and exits 1): a usage error, a bad file or setting (400), or
 * the admin API's refusal (its status).
 */
export const cliError = (message: string, status = 400) => new CordonError(message, { status });

export interface AdminClient {
  /** `body` as JSON, or bytes as they are (application/octet-stream). */
  request(method: string, path: string, body?: unknown): Promise<unknown>;
  stream(path: string): Promise<Response>;
}

export function adminClient(env: NodeJS.ProcessEnv = process.env): AdminClient {
  let config: MeshConfig;
  try {
    config = loadConfig(env);
  } catch (e) {
    throw cliError((e as Error).message); // a bad setting: one line, as for any other mistake
  }
  const base = (env.CORDON_ADMIN_URL || `http://127.0.0.1:${config.adminPort}`).replace(/\/$/, '');
  const token = () => {
    if (env.CORDON_TOKEN) return env.CORDON_TOKEN;
    const file = adminTokenPath(config.dataDir);
    try {
      return readFileSync(file, 'utf8').trim();
    } catch {
      throw cliError(`no admin token: set CORDON_TOKEN, or run from the directory whose ${file} exists (created by npm start)`);
    }
  };
  const call = async (method: string, path: string, body?: unknown): Promise<Response> => {
    try {
      const raw = body instanceof Uint8Array;
      return await fetch(base + path, {
        method,
        headers: {
          authorization: `Bearer ${token()}`,
          ...(body === undefined ? {} : { 'content-type': raw ? 'application/octet-stream' : 'application/json' }),
        },
        body: body === undefined ? undefined : raw ? body : JSON.stringify(body),
      });
    } catch (e) {
      if (e instanceof CordonError) throw e;
      throw cliError(`cannot reach the admin API at ${base} (${(e as Error).cause ?? (e as Error).message}); is the mesh running (npm start)?`, 503);
    }
  };
  return {
    async request(method, path, body) {
      const res = await call(method, path, body);
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        // not JSON
      }
      if (!res.ok) {
        const msg = typeof parsed === 'object' && parsed && 'error' in parsed ? String((parsed as { error: unknown }).error) : text;
        throw cliError(`admin API: ${res.status} ${msg}`, res.status);
      }
      return parsed;
    },
    async stream(path) {
      const res = await call('GET', path);
      if (!res.ok) throw cliError(`admin API: ${res.status} ${await res.text()}`, res.status);
      return res;
    },
  };
}
