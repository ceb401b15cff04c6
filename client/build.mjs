// Builds what `import 'cordon/client'` loads: client/index.ts as plain ES2022 JavaScript (capnweb left
// as an import), so that Node ≥ 20 and browsers run it without TypeScript. Run by `npm pack`/`publish`.
import { build } from 'esbuild';

await build({
  entryPoints: [new URL('./index.ts', import.meta.url).pathname],
  outfile: new URL('./dist/index.js', import.meta.url).pathname,
  bundle: true,
  format: 'esm',
  platform: 'neutral',
  target: 'es2022',
  external: ['capnweb'],
  logLevel: 'warning',
});
