/** The bootstrap, bundled once per process (esbuild) into one script compiled into every context. */
import { buildSync } from 'esbuild';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

export function bootstrapSource(): string {
  if (cached) return cached;
  const result = buildSync({
    entryPoints: [fileURLToPath(new URL('./bootstrap/index.ts', import.meta.url))],
    bundle: true,
    format: 'iife',
    platform: 'neutral',
    mainFields: ['module', 'main'],
    target: 'es2023',
    write: false,
    legalComments: 'none',
    minifyWhitespace: true,
    logLevel: 'silent',
    // Strict mode for all of it: no sloppy-mode frame hands its function to a tenant's
    // Error.prepareStackTrace (CallSite.getFunction()).
    banner: { js: '"use strict";' },
  });
  cached = result.outputFiles[0]!.text;
  return cached;
}
