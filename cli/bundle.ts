/**
 * Bundling a worker for deploy: esbuild follows the entry's relative imports, strips TypeScript,
 * and leaves `cloudflare:*` built-ins to the runtime. Errors come back as `file:line:column: message`.
 */
import { build, type Message } from 'esbuild';
import { relative } from 'node:path';
import { CliError } from './admin-client.ts';

export interface Bundle {
  mainModule: string;
  modules: { name: string; type: 'esm'; content: string }[];
}

function formatMessage(m: Message): string {
  const where = m.location ? `${relative(process.cwd(), m.location.file) || m.location.file}:${m.location.line}:${m.location.column + 1}: ` : '';
  const source = m.location?.lineText ? `\n    ${m.location.lineText}\n    ${' '.repeat(m.location.column)}^` : '';
  return `${where}error: ${m.text}${source}`;
}

export async function bundleWorker(entry: string): Promise<Bundle> {
  try {
    const result = await build({
      entryPoints: [entry],
      bundle: true,
      format: 'esm',
      platform: 'neutral',
      target: 'es2023',
      external: ['cloudflare:*'],
      write: false,
      logLevel: 'silent',
      outfile: 'worker.js',
    });
    const out = result.outputFiles.find((f) => f.path.endsWith('worker.js'));
    if (!out) throw new CliError('esbuild produced no output');
    return { mainModule: 'worker.js', modules: [{ name: 'worker.js', type: 'esm', content: out.text }] };
  } catch (e) {
    const errors = (e as { errors?: Message[] }).errors;
    if (errors?.length) throw new CliError(`could not bundle ${entry}:\n${errors.map(formatMessage).join('\n')}`);
    throw e;
  }
}
