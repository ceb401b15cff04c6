/** Installs TextEncoder/TextDecoder before anything else is evaluated: whatwg-url needs them at load. */
import { TextDecoder, TextEncoder } from './encoding.ts';

Object.assign(globalThis, { TextEncoder, TextDecoder });
