/**
 * The request-path bench's floor for ingress: a bare node:http server answering hello as the
 * bench's worker does, in a process of its own (its CPU is read from /proc like the mesh's). It
 * prints its port on stdout.
 */
import { createServer } from 'node:http';

const HELLO = 'Hello, world!\n';
const server = createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(HELLO) });
  res.end(HELLO);
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`${typeof address === 'object' && address ? address.port : 0}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
