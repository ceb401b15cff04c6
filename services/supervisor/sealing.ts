/**
 * Encryption at rest for worker code: each worker has its own random AES-256-GCM key, stored only
 * wrapped (encrypted) under a key derived from the master key. A bundle is sealed with its worker's
 * key and bound (as GCM additional data) to the worker id and version, so a sealed bundle moved to
 * another worker or version does not open.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { CordonError } from '../../lib/errors.ts';

const IV = 12;
const TAG = 16;

export class SealError extends CordonError {
  constructor(message: string) {
    super(message);
    this.name = 'SealError';
  }
}

export function seal(key: Buffer, plaintext: Buffer, aad: string): Buffer {
  const iv = randomBytes(IV);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(aad));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]);
}

export function open(key: Buffer, sealed: Buffer, aad: string): Buffer {
  if (sealed.length < IV + TAG) throw new SealError('sealed data is truncated');
  const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, IV));
  decipher.setAAD(Buffer.from(aad));
  decipher.setAuthTag(sealed.subarray(IV, IV + TAG));
  try {
    return Buffer.concat([decipher.update(sealed.subarray(IV + TAG)), decipher.final()]);
  } catch {
    throw new SealError('sealed data failed authentication (tampered, or sealed with another key)');
  }
}

/** A fresh worker key, and its wrapped form for storage. */
export function newWorkerKey(wrapKey: Buffer, workerId: string): { key: Buffer; wrapped: Buffer } {
  const key = randomBytes(32);
  return { key, wrapped: seal(wrapKey, key, `cordon-worker-key:${workerId}`) };
}

export function unwrapWorkerKey(wrapKey: Buffer, wrapped: Buffer, workerId: string): Buffer {
  return open(wrapKey, wrapped, `cordon-worker-key:${workerId}`);
}
