/**
 * The dashboard's browser code, bundled from `ui/` by esbuild when the supervisor starts (in memory,
 * nothing written): one script and one stylesheet, served from the admin port, no CDN.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { build } from 'esbuild';

const UI = join(import.meta.dirname, 'ui');

export interface UiBundle {
  js: string;
  css: string;
}

export async function bundleUi(): Promise<UiBundle> {
  const [out, css] = await Promise.all([
    build({
      entryPoints: [join(UI, 'main.ts')],
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: ['chrome120', 'firefox120'],
      minify: true,
      legalComments: 'none',
      write: false,
      logLevel: 'silent',
    }),
    readFile(join(UI, 'app.css'), 'utf8'),
  ]);
  return { js: out.outputFiles[0]!.text, css };
}
