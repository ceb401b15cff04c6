/**
 * Counts the values isolated-vm copies with ExternalCopy (a buffer moved with transferOut is not a
 * copy) in modules imported after this one: a resolve hook gives them a wrapper of isolated-vm
 * (isolated-vm-counted.ts), since the addon's own exports are read-only. Import the code under test
 * dynamically, after this module.
 */
import { register } from 'node:module';

const wrapper = new URL('./isolated-vm-counted.ts', import.meta.url).href;
const hooks = `export async function resolve(specifier, context, next) {
  if (specifier === 'isolated-vm' && context.parentURL !== ${JSON.stringify(wrapper)}) return { url: ${JSON.stringify(wrapper)}, shortCircuit: true };
  return next(specifier, context);
}`;
register(`data:text/javascript,${encodeURIComponent(hooks)}`);

export {
  disposals,
  disposedLooksDone,
  externalCopies,
  externalMoves,
  isolatesMade,
  isolatesMadeSync,
  lastIsolate,
  postedCallbacks,
  scriptsCompiled,
  serialisedBuffers,
  syncCompilesDone,
  urlParses,
} from './isolated-vm-counted.ts';
