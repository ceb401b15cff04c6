/**
 * The `node:https` client as workerd has it: node:http's client (http.ts) with `https:` by default.
 * TLS is fetch()'s (egress checks the certificate against the host asked for); `ca`, `cert`, `key`
 * and `rejectUnauthorized` are accepted and have no effect, as in workerd.
 */
import { Agent, ClientRequest, type IncomingMessage, type RequestOptions } from './http.ts';
import { createServer, Server } from 'unenv/node/https';

type Callback = (res: IncomingMessage) => void;

export function request(input: unknown, options?: RequestOptions | Callback, callback?: Callback): ClientRequest {
  return new ClientRequest('https:', input, options, callback);
}

export function get(input: unknown, options?: RequestOptions | Callback, callback?: Callback): ClientRequest {
  const req = request(input, options, callback);
  req.end();
  return req;
}

export const globalAgent = new Agent();
export { Agent, createServer, Server };

export default { Agent, Server, createServer, get, globalAgent, request };
