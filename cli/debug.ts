/**
 * `cordon debug <worker>`: the worker moves into a sandbox process of its own with the V8 inspector
 * on (the shared sandboxes never have it); this command carries the inspector's Unix socket to a
 * loopback port and prints the DevTools address with the one-time token. Ctrl-C ends the session
 * and the worker goes back to its cordon.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../lib/config.ts';
import { relayInside } from '../lib/relay.ts';
import { adminClient, cliError } from './admin-client.ts';

export async function runDebug(workerPath: string, worker: string, port: number): Promise<number> {
  const admin = adminClient();
  const { cordon, token, socket } = (await admin.request('POST', `${workerPath}/debug`)) as { cordon: string; token: string; socket: string };
  let ended = false;
  const end = async () => {
    if (ended) return;
    ended = true;
    await admin.request('DELETE', `${workerPath}/debug`).catch(() => {});
    process.stderr.write(`debug session ended; ${worker} is back in its cordon\n`);
  };
  try {
    const path = join(loadConfig().dataDir, socket);
    const deadline = Date.now() + 30_000;
    process.stderr.write(`starting a sandbox of its own for ${worker} (cordon ${cordon})…\n`);
    while (!existsSync(path)) {
      if (Date.now() > deadline) throw cliError(`the debug sandbox did not start within 30 s (no ${path}); see the mesh's log`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const listening = await relayInside(path, port).catch((e: Error) => {
      throw cliError(`cannot listen on 127.0.0.1:${port} (${e.message}); pick another with --port`);
    });
    const address = `127.0.0.1:${listening}/${token}`;
    process.stdout.write(
      `inspector: ws://${address}\n` +
        `DevTools:  devtools://devtools/bundled/js_app.html?experiments=true&v8only=true&ws=${address}\n` +
        `The token opens one session. Requests to ${worker} now run in this sandbox (send one to create its isolate);\n` +
        `Ctrl-C ends the session.\n`,
    );
  } catch (e) {
    await end();
    throw e;
  }
  const alive = setInterval(() => {}, 1 << 30); // the relay's server does not hold the process open
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  clearInterval(alive);
  await end();
  return 0;
}
