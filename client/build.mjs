// Builds what `import 'cordon/client'` loads: client/index.ts as plain ES2022 JavaScript (its packages
// left as imports), so that Node ≥ 20 and browsers run it without TypeScript. The NATS transport
// (client/nats.ts, Node only) is a chunk of its own, loaded only for nats:// URLs. Run by `npm pack`/`publish`.
import { build } from 'esbuild';

await build({
  entryPoints: [new URL('./index.ts', import.meta.url).pathname],
  outdir: new URL('./dist/', import.meta.url).pathname,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'neutral',
  target: 'es2022',
  packages: 'external',
  external: ['node:*'],
  logLevel: 'warning',
});
