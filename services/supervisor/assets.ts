/**
 * The `$assets` capability a sandbox gets with a version that has static assets: the bytes of the
 * files that version's manifest lists, a part at a time, and nothing else — not another version's
 * files, not another worker's (docs/static-assets.md). The sandbox serves the assets itself.
 */
import { RpcTarget } from 'capnweb';
import { z } from 'zod';
import { check } from '../../lib/rpc/validate.ts';
import { AssetHash, partCount, type AssetFile, type AssetPartsApi } from '../../schemas/assets.ts';
import type { WorkerBundle } from '../../schemas/worker.ts';
import type { AssetStore } from './asset-store.ts';

export class AssetPartsCap extends RpcTarget implements AssetPartsApi {
  readonly #store: AssetStore;
  readonly #workerId: string;
  readonly #files: Map<string, AssetFile>;

  constructor(store: AssetStore, bundle: WorkerBundle) {
    super();
    this.#store = store;
    this.#workerId = bundle.workerId;
    this.#files = new Map((bundle.assets?.files ?? []).map((f) => [f.hash, f]));
  }

  async part(hash: unknown, index: unknown): Promise<Uint8Array> {
    const h = check(AssetHash, hash, 'asset hash');
    const i = check(z.number().int().min(0), index, 'part index');
    const file = this.#files.get(h);
    if (!file || i >= partCount(file.size)) throw new RangeError('no such part of an asset of this worker version');
    return this.#store.part(this.#workerId, h, i);
  }
}
