/**
 * Where a Durable Object's facets are stored (docs/durable-objects.md, "Facets"): each facet's own
 * SQLite file beside its object's, `<id>.<h1>[.<h2>[.<h3>]].sqlite` (workerd's `localDisk` layout,
 * `<key>.<facet>.sqlite`), one `<h>` per level of the facet tree, each a hash of that level's name.
 * A name is never part of a path as given: `../x`, `/`, NUL or 256 characters all make 24 hex digits,
 * so a facet's file cannot leave its object's directory nor be another object's. The suffix of a
 * facet's own facets starts with its own, so a subtree is found (and deleted) by its prefix.
 */
import { createHash } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CordonError } from '../../../lib/errors.ts';
import { FacetName, MAX_FACET_TREE_DEPTH } from '../../../schemas/durable-objects.ts';

const LEVEL = /^\.[0-9a-f]{24}$/;

/** The file suffix of facet `name` under the facet (or root, '') with suffix `parent`; refused past workerd's depth. */
export function facetSuffix(parent: string, name: unknown): string {
  const parsed = FacetName.safeParse(name);
  if (!parsed.success) throw new CordonError(`invalid facet name: ${parsed.error.issues[0]!.message}`, { status: 400, refusal: true });
  const depth = parent.length / 25 + 1; // levels below the root
  // Honest code can reach the depth (the isolate does not count levels): a limit, not a refusal. A bad name cannot
  // come from honest code (the isolate checks it first): a refusal, audited.
  if (depth + 1 > MAX_FACET_TREE_DEPTH)
    throw new CordonError(`facets may nest at most ${MAX_FACET_TREE_DEPTH} deep, the root object included (workerd's limit)`, { status: 400 });
  return `${parent}.${createHash('sha256').update(parsed.data).digest('hex').slice(0, 24)}`;
}

/** The suffixes of the facet databases of object `id` in `dir` under `under` ('': all of them), `under` itself included. */
export function facetSuffixes(dir: string, id: string, under: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const file of names) {
    if (!file.startsWith(`${id}${under}`) || !file.endsWith('.sqlite')) continue;
    const suffix = file.slice(id.length, -'.sqlite'.length);
    if (suffix === '' || !(suffix.length % 25 === 0 && suffix.match(/.{25}/g)!.every((l) => LEVEL.test(l)))) continue;
    out.push(suffix);
  }
  return out;
}

/** Bytes on disk of object `id`'s files in `dir` (its database and its facets', with their WAL), but `except`'s. */
export function objectBytes(dir: string, id: string, except: string): number {
  let total = 0;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return 0;
  }
  for (const file of names) {
    if (!file.startsWith(`${id}.`) || file.startsWith(`${except}.sqlite`)) continue;
    try {
      total += statSync(join(dir, file)).size;
    } catch {
      // gone meanwhile
    }
  }
  return total;
}
