/**
 * The `node:https` client as workerd has it: node:http's client (http.ts) with `https:` by default.
 * TLS is fetch()'s (egress checks the certificate against the host asked for); `ca`, `cert`, `key`
 * and `rejectUnauthorized` are accepted and have no effect, as in workerd. Its servers are node:http's
 * (http-server.ts: same gate, same ports, requests from httpServerHandler): TLS ends before the worker,
 * so a certificate or ticket key given to one has nothing to do, and the TLS-only methods throw as workerd's.
 */
import { Agent, ClientRequest, type IncomingMessage, type RequestOptions } from './http.ts';
import { Server as HttpServer } from './http-server.ts';
import { nodeError } from './node-error.ts';

type Callback = (res: IncomingMessage) => void;

export function request(input: unknown, options?: RequestOptions | Callback, callback?: Callback): ClientRequest {
  return new ClientRequest('https:', input, options, callback);
}

export function get(input: unknown, options?: RequestOptions | Callback, callback?: Callback): ClientRequest {
  const req = request(input, options, callback);
  req.end();
  return req;
}

const tlsOnly = (what: string): never => {
  throw nodeError(Error, `The ${what} method is not implemented`, 'ERR_METHOD_NOT_IMPLEMENTED');
};

export class Server extends HttpServer {
  addContext(): never {
    return tlsOnly('addContext');
  }
  getTicketKeys(): never {
    return tlsOnly('getTicketKeys');
  }
  setSecureContext(): never {
    return tlsOnly('setSecureContext');
  }
  setTicketKeys(): never {
    return tlsOnly('setTicketKeys');
  }
}

export function createServer(...args: ConstructorParameters<typeof HttpServer>): Server {
  return new Server(...args);
}

export const globalAgent = new Agent();
export { Agent };

export default { Agent, Server, createServer, get, globalAgent, request };
