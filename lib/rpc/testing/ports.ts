/** Loopback ports for tests' listeners, reserved so that no two tests running at once get the same one. */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { processAlive } from '../../process-alive.ts';

/**
 * A free TCP port on loopback, picked below Linux's ephemeral range (32768 and up): a port the
 * kernel handed out for port 0 could be handed to another test's listener or outgoing connection
 * before our service binds it (seen: an ingress failing with EADDRINUSE for a whole minute).
 *
 * A port is free only between the probe and the moment a child process binds it, so each one handed
 * out is also reserved, for as long as this process lives: in this process (two picks for one mesh
 * must differ) and across the test runner's concurrent files, by a file named for the port holding
 * our PID (a mesh in another file could otherwise start on it and answer our mesh's requests).
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (!reserve(port)) continue;
    const free = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (free) return port;
  }
}

/** CORDON_TEST_PORTS_DIR: for ports.test.ts, which fills a directory of its own. */
const RESERVED = process.env.CORDON_TEST_PORTS_DIR || join(tmpdir(), 'cordon-test-ports');
const reserved = new Set<number>();
let releaseOnExit = false;

function reserve(port: number): boolean {
  if (reserved.has(port)) return false;
  const file = join(RESERVED, String(port));
  if (!releaseOnExit) {
    mkdirSync(RESERVED, { recursive: true });
    process.once('exit', () => {
      for (const p of reserved) rmSync(join(RESERVED, String(p)), { force: true });
    });
    releaseOnExit = true;
  }
  try {
    writeFileSync(file, String(process.pid), { flag: 'wx' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    // Left by a process that died without its exit handler (kill -9): free it for a later pick.
    // An empty or vanished file is one being written or released: leave it.
    let owner = 0;
    try {
      owner = Number(readFileSync(file, 'utf8')) || 0;
    } catch {}
    if (owner && !processAlive(owner)) rmSync(file, { force: true });
    return false;
  }
  reserved.add(port);
  return true;
}
