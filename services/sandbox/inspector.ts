/**
 * The V8 inspector of a debug sandbox (`cordon debug`): a process that runs one worker alone, with
 * its isolates made inspectable. DevTools speaks WebSocket on a Unix socket in the sandbox's socket
 * directory (the process has no network; the CLI carries it to a loopback port). Whoever connects
 * must present the one-time token the supervisor handed the operator; only its SHA-256 is here,
 * and once a session has been opened with it, the token opens nothing more.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import { rmSync } from 'node:fs';
import { WebSocketServer } from 'ws';
import type { Logger } from '../../lib/log.ts';
import type { WorkerRuntime } from './runtime/index.ts';

/** How long a DevTools connection waits for the worker's first isolate (a request creates it). */
const ATTACH_WAIT_MS = 60_000;

export async function serveInspector(socketPath: string, tokenSha256: string, runtime: WorkerRuntime, log: Logger): Promise<{ close(): void }> {
  const expected = Buffer.from(tokenSha256, 'hex');
  let used = false;
  const accepts = (url: string | undefined) => {
    const token = (url ?? '').replace(/^\//, '');
    const got = createHash('sha256').update(token).digest();
    return !used && expected.length === 32 && timingSafeEqual(got, expected);
  };
  const server = createServer((_req, res) => res.writeHead(404).end());
  const wss = new WebSocketServer({ noServer: true, maxPayload: 16 * 1024 * 1024 });
  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => {});
    if (!accepts(req.url)) return void socket.end('HTTP/1.1 401 Unauthorized\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    used = true;
    log.warn('a debugger attached to this sandbox');
    wss.handleUpgrade(req, socket, head, (ws) => {
      const started = Date.now();
      const attach = () => {
        const session = runtime.inspect();
        if (!session) {
          if (Date.now() - started > ATTACH_WAIT_MS) return ws.close(4404, 'the worker has no isolate yet: send it a request, then attach again');
          return void setTimeout(attach, 200);
        }
        const dispose = () => {
          try {
            session.dispose();
          } catch {
            // the isolate is gone already
          }
        };
        const send = (message: string) => (ws.readyState === ws.OPEN ? ws.send(message) : dispose());
        session.onResponse = (_id, message) => send(message);
        session.onNotification = send;
        ws.on('message', (data) => {
          try {
            session.dispatchProtocolMessage(String(data));
          } catch {
            ws.close(1011, 'the isolate went away');
          }
        });
        ws.on('close', dispose);
      };
      ws.on('error', () => ws.terminate());
      attach();
    });
  });
  rmSync(socketPath, { force: true });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(socketPath, () => resolve()));
  return { close: () => void server.close() };
}
