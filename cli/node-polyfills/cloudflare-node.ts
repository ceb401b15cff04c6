/**
 * `cloudflare:node` as workerd has it: `httpServerHandler` turns a node:http server (or the port one listens
 * on) into the worker's fetch handler, `handleAsNodeRequest` hands one request to it (http-server.ts).
 */
import { listeningOn } from './http-server.ts';

interface Listening {
  listen(...args: unknown[]): unknown;
  address(): { port?: number | null } | string | null;
}
type Descriptor = number | { port?: number | null } | Listening;

const invalid = (message: string) => Object.assign(new Error(message), { code: 'ERR_INVALID_ARG_VALUE' });

function validPort(port: unknown): number {
  if (typeof port !== 'number' || !Number.isFinite(port) || port < 0 || port > 65535) throw new Error('Failed to determine port for server');
  return port;
}

/** A number, `{ port }`, or a server, which is started with listen() if it has no port yet (as workerd does). */
function portOf(desc: Descriptor): number {
  if (desc === null || desc === undefined) throw new Error('Server descriptor cannot be null or undefined');
  if (typeof desc === 'number') return validPort(desc);
  if ((desc as { port?: unknown }).port == null && typeof (desc as Listening).listen === 'function') {
    const server = desc as Listening;
    const port = () => {
      const a = server.address();
      return a !== null && typeof a === 'object' ? a.port : undefined;
    };
    if (typeof port() !== 'number') server.listen();
    return validPort(port());
  }
  return validPort((desc as { port?: unknown }).port);
}

export async function handleAsNodeRequest(desc: number | { port?: number | null }, request: Request): Promise<Response> {
  const port = portOf(desc);
  const handler = listeningOn(port);
  if (!handler)
    throw invalid(
      `Http server with port ${port} not found. This is likely a bug with your code. You should check if server.listen() was called with the same port (${port})`,
    );
  return await handler(request);
}

export function httpServerHandler(desc: Descriptor): { fetch(request: Request): Promise<Response> } {
  const port = portOf(desc);
  return { fetch: (request) => handleAsNodeRequest(port, request) };
}

export default { handleAsNodeRequest, httpServerHandler };
