/**
 * Installs TextEncoder/TextDecoder and DOMException before anything else is evaluated: whatwg-url needs
 * the first two at load, and web-streams-polyfill takes the global DOMException at load (else it makes its
 * own, and an AbortError from pipeTo() would not be `instanceof DOMException`).
 */
import { DOMException, TextDecoder, TextEncoder } from './encoding.ts';

// The bundler may rename the class; the polyfill recognises DOMException by its name.
Object.defineProperty(DOMException, 'name', { value: 'DOMException', configurable: true });
Object.assign(globalThis, { TextEncoder, TextDecoder, DOMException });
