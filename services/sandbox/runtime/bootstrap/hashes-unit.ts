/** The hashes of crypto.DigestStream (digest-stream.ts), a lazy unit (units.ts): loaded by an isolate's first DigestStream. */
export { md5, sha1 } from '@noble/hashes/legacy';
export { sha256, sha384, sha512 } from '@noble/hashes/sha2';
