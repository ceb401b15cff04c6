/** A loopback origin for CPU-accounting tests: `/slow` answers after `slowMs`, anything else at once. */
import { createServer, type Server } from 'node:http';

export async function startSlowOrigin(slowMs: number): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    if (req.url === '/slow') setTimeout(() => res.end('done'), slowMs);
    else res.end('fast');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}` };
}
