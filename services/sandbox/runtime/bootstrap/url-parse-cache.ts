/**
 * A small cache in front of whatwg-url's parser (bootstrap-bundle.ts wraps its `basicURLParse` with
 * this): a request's URL is parsed when its Request is built and again by nearly every worker's
 * `new URL(request.url)`, and the same few URLs come back request after request; the parse was ~30% of a
 * small request's time in the isolate.
 *
 * Only a parse of a whole string without a base URL, a URL record to fill or a state override is
 * cached: that is a pure function of the string. Each caller gets a copy of its own (a URL's setters
 * change its record in place), and the cached record is a copy no caller holds. The cache lives in the
 * isolate's heap, so it is bounded by entries and by the length of what it keeps; it holds only what
 * this isolate parsed. Its Map and array methods are taken here, before tenant code can patch them.
 */

/** whatwg-url's URL record (url-state-machine.js). */
export interface UrlRecord {
  scheme: string;
  username: string;
  password: string;
  /** A domain or opaque host, an IPv4 address as a number, an IPv6 address as 8 numbers, or none. */
  host: string | number | number[] | null;
  port: number | null;
  /** Segments, or an opaque path. */
  path: string[] | string;
  query: string | null;
  fragment: string | null;
}

export interface ParseOptions {
  baseURL?: UrlRecord | null;
  url?: UrlRecord;
  stateOverride?: string;
  encoding?: string;
}

type Parse = (input: string, options?: ParseOptions) => UrlRecord | null;

/** Most workers see a handful of URLs over and over; a long tail of one-off URLs only churns it. */
export const CACHE_ENTRIES = 128;
/** Longer inputs are parsed every time: the cache's memory stays ~entries × this at most. */
export const CACHE_MAX_INPUT = 2048;

const apply = Reflect.apply;
const isArray = Array.isArray;
const MapCtor = Map;
const mapGet = Map.prototype.get;
const mapSet = Map.prototype.set;
const mapDelete = Map.prototype.delete;
const mapSize = Object.getOwnPropertyDescriptor(Map.prototype, 'size')!.get!;
const mapKeys = Map.prototype.keys;
const keysNext = Object.getPrototypeOf(new Map().keys()).next as (this: Iterator<string>) => IteratorResult<string>;

function copyArray<T>(a: T[]): T[] {
  const out: T[] = [];
  for (let i = 0; i < a.length; i++) out[i] = a[i]!;
  return out;
}

/** A deep copy: the record's only objects are its path segments and an IPv6 host. */
export function copyRecord(r: UrlRecord): UrlRecord {
  return {
    scheme: r.scheme,
    username: r.username,
    password: r.password,
    host: isArray(r.host) ? copyArray(r.host) : r.host,
    port: r.port,
    path: isArray(r.path) ? copyArray(r.path) : r.path,
    query: r.query,
    fragment: r.fragment,
  };
}

let parses = 0;
/** How many times the parser itself has run in this isolate (test/request-path-cost.test.ts counts them per request). */
export const urlParses = (): number => parses;

/** `parse` with the cache in front; a failure (null) is cached as well, as it is as pure. */
export function withParseCache(parse: Parse): Parse {
  // Least recently used first: a hit moves its entry to the end.
  const cache: Map<string, UrlRecord | null> = new MapCtor();
  return function basicURLParse(input: string, options: ParseOptions = {}): UrlRecord | null {
    const pure =
      typeof input === 'string' && input.length <= CACHE_MAX_INPUT && !options.baseURL && !options.url && !options.stateOverride && !options.encoding;
    const hit = pure ? (apply(mapGet, cache, [input]) as UrlRecord | null | undefined) : undefined;
    if (hit !== undefined) {
      apply(mapDelete, cache, [input]);
      apply(mapSet, cache, [input, hit]);
      return hit === null ? null : copyRecord(hit);
    }
    parses++;
    const parsed = parse(input, options);
    if (!pure) return parsed;
    if ((apply(mapSize, cache, []) as number) >= CACHE_ENTRIES) apply(mapDelete, cache, [apply(keysNext, apply(mapKeys, cache, []), []).value]);
    apply(mapSet, cache, [input, parsed === null ? null : copyRecord(parsed)]);
    return parsed;
  };
}
