/** examples/notes deployed for the tenants `acme` and `evil` (the same code, each its own data), as the storage tests use it. */
import assert from 'node:assert/strict';
import { waitFor, type TestMesh } from './mesh.ts';

/** A call on one tenant's notes: `op=add|list|kv-put|…` (examples/notes/index.ts). */
export type NotesOp = (tenant: string, query: string, init?: RequestInit) => Promise<Response>;

/** Deploys the notes example for both tenants with the given binding flags and waits until both serve. */
export async function deployNotesTwice(mesh: TestMesh, bindings: string[]): Promise<NotesOp> {
  const op: NotesOp = (tenant, query, init) => fetch(`${mesh.httpUrl}/${tenant}/notes?${query}`, init);
  for (const tenant of ['acme', 'evil']) {
    const r = await mesh.cli(['deploy', 'examples/notes/index.ts', '--name', 'notes', '--tenant', tenant, '--route', `*/${tenant}/notes*`, ...bindings]);
    assert.equal(r.code, 0, r.stderr);
  }
  await waitFor(
    'both tenants to serve',
    async () => ((await op('acme', 'op=list')).status === 200 && (await op('evil', 'op=list')).status === 200) || undefined,
  );
  return op;
}
