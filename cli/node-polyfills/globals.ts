/**
 * The globals Workers defines under nodejs_compat (v2). esbuild injects these where the bundle names them;
 * they are also set on globalThis, as in Workers, for code that looks them up there.
 */
import { Buffer } from 'node:buffer';
import process from 'node:process';
import { clearImmediate, setImmediate } from 'node:timers';

Object.assign(globalThis, { Buffer, process, global: globalThis, setImmediate, clearImmediate });

export { Buffer, clearImmediate, process, setImmediate };
