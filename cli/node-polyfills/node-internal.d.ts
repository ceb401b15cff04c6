// The isolate's own module for node:crypto (services/sandbox/runtime/modules.ts): crypto.subtle's methods, run synchronously.
declare module 'node-internal:crypto' {
  import type { webcrypto } from 'node:crypto';
  type Data = ArrayBuffer | ArrayBufferView;
  type Algorithm = string | Record<string, unknown>;
  export const subtle: {
    importKey(format: string, keyData: Data | webcrypto.JsonWebKey, algorithm: Algorithm, extractable: boolean, usages: string[]): webcrypto.CryptoKey;
    exportKey(format: string, key: webcrypto.CryptoKey): ArrayBuffer | webcrypto.JsonWebKey;
    generateKey(algorithm: Algorithm, extractable: boolean, usages: string[]): webcrypto.CryptoKey | webcrypto.CryptoKeyPair;
    sign(algorithm: Algorithm, key: webcrypto.CryptoKey, data: Data): ArrayBuffer;
    verify(algorithm: Algorithm, key: webcrypto.CryptoKey, signature: Data, data: Data): boolean;
    encrypt(algorithm: Algorithm, key: webcrypto.CryptoKey, data: Data): ArrayBuffer;
    decrypt(algorithm: Algorithm, key: webcrypto.CryptoKey, data: Data): ArrayBuffer;
    deriveBits(algorithm: Algorithm, key: webcrypto.CryptoKey, length: number | null): ArrayBuffer;
    timingSafeEqual(a: Data, b: Data): boolean;
    /** node:crypto's calls beyond WebCrypto, answered by the host's node:crypto (host-node-crypto.ts). */
    node(
      call: import('../../services/sandbox/runtime/bootstrap/node-crypto-wire.ts').NodeCryptoCall,
    ): import('../../services/sandbox/runtime/bootstrap/node-crypto-wire.ts').NodeCryptoResult;
  };
}

// The isolate's own module for node:zlib's Brotli (services/sandbox/runtime/modules.ts): the codec's WebAssembly, compiled on first call.
declare module 'node-internal:zlib' {
  export function brotliModule(): WebAssembly.Module;
}

// brotli-wasm's web build, made synchronous at bundle time (cli/nodejs-compat.ts): initSync instantiates it.
declare module 'cordon:brotli-wasm' {
  export * from 'brotli-wasm';
  export function initSync(module: WebAssembly.Module): void;
}

// The isolate's own module for node:fs (services/sandbox/runtime/modules.ts): the worker's modules for /bundle, and the epoch scoping /tmp.
declare module 'node-internal:fs' {
  export const modules: [name: string, type: string, content: string][];
  export function requestEpoch(): number;
}
