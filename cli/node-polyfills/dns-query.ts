/**
 * The queries behind `node:dns` and `node:dns/promises` as workerd has them (always, with nodejs_compat):
 * each is a DNS-over-HTTPS JSON request (`application/dns-json`) to `https://cloudflare-dns.com/dns-query`
 * made with the worker's own fetch(), so egress's rules, limits and audit apply to it as to any fetch of
 * the worker. An answer is only data: an address it names is reached, if ever, by a later fetch or connect
 * that egress checks again. Names, errors, argument checks and the unimplemented corners (`resolveAny`,
 * `lookupService`, `setServers`, `Resolver.cancel`) are workerd's, quirks included (`reverse` asks PTR of
 * the name as given; `resolve` without an rrtype is an invalid argument).
 */
import process from 'node:process';
import { isIP } from './net.ts';
import { describeReceived, nodeError } from './node-error.ts';
import * as c from './dns-codes.ts';

/** The error codes (node:dns/promises' default export has these; node:dns's also the three flags below). */
export const errorCodes = {
  NODATA: c.NODATA,
  FORMERR: c.FORMERR,
  SERVFAIL: c.SERVFAIL,
  NOTFOUND: c.NOTFOUND,
  NOTIMP: c.NOTIMP,
  REFUSED: c.REFUSED,
  BADQUERY: c.BADQUERY,
  BADNAME: c.BADNAME,
  BADFAMILY: c.BADFAMILY,
  BADRESP: c.BADRESP,
  CONNREFUSED: c.CONNREFUSED,
  TIMEOUT: c.TIMEOUT,
  EOF: c.EOF,
  FILE: c.FILE,
  NOMEM: c.NOMEM,
  DESTRUCTION: c.DESTRUCTION,
  BADSTR: c.BADSTR,
  BADFLAGS: c.BADFLAGS,
  NONAME: c.NONAME,
  BADHINTS: c.BADHINTS,
  NOTINITIALIZED: c.NOTINITIALIZED,
  LOADIPHLPAPI: c.LOADIPHLPAPI,
  ADDRGETNETWORKPARAMS: c.ADDRGETNETWORKPARAMS,
  CANCELLED: c.CANCELLED,
};
export const flags = { ADDRCONFIG: c.ADDRCONFIG, ALL: c.ALL, V4MAPPED: c.V4MAPPED };

const SERVER = 'https://cloudflare-dns.com/dns-query';
/** An answer larger than this is a bad response, not something to parse: a DNS message is at most 64 KiB, its JSON a few times that. */
const MAX_ANSWER_BYTES = 1024 * 1024;

/** Node's DNS error: `<syscall> <code> <hostname>`, no errno. */
export class DnsError extends Error {
  code: string;
  errno = undefined;
  hostname: string;
  syscall: string;
  constructor(hostname: string, code: string, syscall: string) {
    super(`${syscall} ${code} ${hostname}`);
    this.code = code;
    this.hostname = hostname;
    this.syscall = syscall;
  }
}

const notImplemented = (): never => {
  throw new Error('Not implemented');
};

function argType(name: string, expected: string, value: unknown): never {
  throw nodeError(
    TypeError,
    `The "${name}" ${name.includes('.') ? 'property' : 'argument'} must be ${expected}. Received ${describeReceived(value)}`,
    'ERR_INVALID_ARG_TYPE',
  );
}
function validateString(value: unknown, name: string): asserts value is string {
  if (typeof value !== 'string') argType(name, 'of type string', value);
}
function validateFunction(value: unknown, name: string): asserts value is (...args: unknown[]) => void {
  if (typeof value !== 'function') argType(name, 'of type function', value);
}
function validateBoolean(value: unknown, name: string): asserts value is boolean {
  if (typeof value !== 'boolean') argType(name, 'of type boolean', value);
}
function validateOneOf<T>(value: unknown, name: string, allowed: readonly T[]): asserts value is T {
  if (allowed.includes(value as T)) return;
  const list = allowed.map((v) => (typeof v === 'string' ? `'${v}'` : String(v))).join(', ');
  const shown = typeof value === 'string' ? `'${value}'` : String(value);
  throw nodeError(
    TypeError,
    `The ${name.includes('.') ? 'property' : 'argument'} '${name}' must be one of: ${list}. Received ${shown}`,
    'ERR_INVALID_ARG_VALUE',
  );
}

interface Answer {
  name: string;
  type: number;
  TTL: number;
  data: string;
}
interface DohJson {
  Question: unknown[];
  Answer?: Answer[];
}

/** Reads at most MAX_ANSWER_BYTES of the body: a hostile or broken server cannot make the worker buffer more. */
async function readCapped(response: Response): Promise<string> {
  const reader = response.body?.getReader();
  if (!reader) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_ANSWER_BYTES) {
      await reader.cancel();
      throw new RangeError('DNS answer too large');
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.byteLength;
  }
  return new TextDecoder().decode(all);
}

/** Every answer entry a string `data`: anything else is a bad response (workerd would fail later, less clearly). */
function wellFormed(json: unknown): json is DohJson {
  if (json === null || typeof json !== 'object' || !Array.isArray((json as DohJson).Question)) return false;
  const answer = (json as DohJson).Answer;
  return answer === undefined || (Array.isArray(answer) && answer.every((a) => a !== null && typeof a === 'object' && typeof a.data === 'string'));
}

export async function sendDnsRequest(name: string, type: string): Promise<DohJson> {
  const server = new URL(SERVER);
  server.searchParams.set('name', name);
  server.searchParams.set('type', type);
  const syscall = `query${type.at(0)?.toUpperCase()}${type.slice(1)}`;
  let json: unknown;
  try {
    const response = await fetch(server, { headers: { Accept: 'application/dns-json' }, method: 'GET' });
    if (!response.ok) {
      await response.body?.cancel();
      throw new DnsError(name, c.BADRESP, syscall);
    }
    json = JSON.parse(await readCapped(response));
  } catch (e) {
    throw e instanceof DnsError ? e : new DnsError(name, c.BADQUERY, syscall);
  }
  if (json !== null && typeof json === 'object' && 'error' in json) throw new DnsError(name, c.BADRESP, syscall);
  if (!wellFormed(json) || json.Question.length === 0) throw new DnsError(name, c.BADRESP, syscall);
  if (json.Answer?.at(0)?.name === '') throw new DnsError(name, c.NOTFOUND, syscall);
  return json;
}

function validateAnswer(answer: Answer[] | undefined, name: string, query: string): asserts answer is Answer[] {
  if (answer == null) throw new DnsError(name, c.NOTFOUND, query);
}

const noDot = (s: string) => (s.endsWith('.') ? s.slice(0, -1) : s);

function normalizeMx(name: string, { data }: Answer) {
  const [priority, exchange] = data.split(' ');
  if (priority == null || exchange == null) throw new DnsError(name, c.BADRESP, 'queryMx');
  return { exchange: noDot(exchange), priority: Number.parseInt(priority, 10) };
}

/** CAA in RFC 3597's generic form (`\# <length> <hex bytes>`), as Cloudflare's DoH answers it: flags, tag length, tag, value. */
function normalizeCaa(name: string, { data }: Answer): Record<string, string | number> {
  const m = /^\\# (\d+)((?: [0-9a-fA-F]{2})*)$/.exec(data.trim());
  const bytes = m ? Uint8Array.from(m[2]!.trim().split(' ').filter(Boolean), (h) => Number.parseInt(h, 16)) : undefined;
  if (!bytes || bytes.length !== Number(m![1]) || bytes.length < 2 || bytes.length < 2 + bytes[1]!) throw new DnsError(name, c.BADRESP, 'queryCaa');
  const text = new TextDecoder();
  const tag = text.decode(bytes.subarray(2, 2 + bytes[1]!));
  return { critical: bytes[0]!, [tag]: text.decode(bytes.subarray(2 + bytes[1]!)) };
}

/** NAPTR as `order preference "flags" "service" "regexp" replacement`. */
function normalizeNaptr(name: string, { data }: Answer) {
  const m = /^(\d+) (\d+) "([^"]*)" "([^"]*)" "([^"]*)" (\S+)$/.exec(data.trim());
  if (!m) throw new DnsError(name, c.BADRESP, 'queryNaptr');
  return { flags: m[3]!, service: m[4]!, regexp: m[5]!, replacement: noDot(m[6]!), order: Number(m[1]), preference: Number(m[2]) };
}

function fields(data: string, names: readonly string[]): string[] {
  const parts = data.split(' ');
  names.forEach((n, i) => validateString(parts[i], n));
  return parts;
}

function normalizeSoa({ data }: Answer) {
  const [nsname, hostmaster, ...n] = fields(data, ['nsname', 'hostmaster', 'serial', 'refresh', 'retry', 'expire', 'minttl']);
  const [serial, refresh, retry, expire, minttl] = n.map((v) => Number.parseInt(v, 10));
  return { nsname: nsname!, hostmaster: hostmaster!, serial, refresh, retry, expire, minttl };
}

function normalizeSrv({ data }: Answer) {
  const [priority, weight, port, name] = fields(data, ['priority', 'weight', 'port', 'name']);
  return { priority: Number.parseInt(priority!, 10), weight: Number.parseInt(weight!, 10), port: Number.parseInt(port!, 10), name: name! };
}

// Quoted strings, a quote inside one standing alone (workerd's SPLIT_REGEX).
const SPLIT_REGEX = /"([^"]|"(?!"))*"/g;
function normalizeTxt({ data }: Answer): string[] {
  if (!(data.startsWith('"') && data.endsWith('"'))) return [data];
  return data.match(SPLIT_REGEX)?.map((s) => (s.startsWith('"') && s.endsWith('"') ? s.slice(1, -1) : s)) ?? [];
}

/** One record type: the name checked synchronously (as workerd does), the answer mapped. */
function query<T>(type: string, map: (name: string, a: Answer) => T) {
  return (name: unknown): Promise<T[]> => {
    validateString(name, 'name');
    const syscall = `query${type[0]}${type.slice(1).toLowerCase()}`;
    return sendDnsRequest(name, type).then((json) => {
      validateAnswer(json.Answer, name, syscall);
      return json.Answer.map((a) => map(name, a));
    });
  };
}

const addresses = (type: 'A' | 'AAAA') => (name: unknown, options?: { ttl?: boolean }) => {
  const ttl = !!options?.ttl;
  return query(type, (_, a) => (ttl ? { ttl: a.TTL, address: a.data } : a.data))(name);
};

export const resolve4 = addresses('A');
export const resolve6 = addresses('AAAA');
export const resolveCname = query('CNAME', (_, a) => noDot(a.data));
export const resolveCaa = query('CAA', normalizeCaa);
export const resolveMx = query('MX', normalizeMx);
export const resolveNaptr = query('NAPTR', normalizeNaptr);
export const resolveNs = query('NS', (_, a) => noDot(a.data));
export const resolvePtr = query('PTR', (_, a) => noDot(a.data));
export const resolveSrv = query('SRV', (_, a) => normalizeSrv(a));
export const resolveTxt = query('TXT', (_, a) => normalizeTxt(a));
export const reverse = resolvePtr;

export function resolveSoa(name: unknown) {
  validateString(name, 'name');
  return sendDnsRequest(name, 'SOA').then((json) => {
    validateAnswer(json.Answer, name, 'querySoa');
    const first = json.Answer.at(0);
    if (!first) throw new DnsError(name, c.NOTFOUND, 'querySoa');
    return normalizeSoa(first);
  });
}

export const resolveAny = async (): Promise<never> => notImplemented();
export const lookupService = async (): Promise<never> => notImplemented();

const RESOLVERS: Record<string, (name: string) => Promise<unknown>> = {
  A: resolve4,
  AAAA: resolve6,
  ANY: resolveAny,
  CAA: resolveCaa,
  CNAME: resolveCname,
  MX: resolveMx,
  NAPTR: resolveNaptr,
  NS: resolveNs,
  PTR: resolvePtr,
  SOA: resolveSoa,
  SRV: resolveSrv,
  TXT: resolveTxt,
};

export function resolve(name: unknown, rrtype?: unknown): Promise<unknown> {
  validateString(name, 'name');
  const r = typeof rrtype === 'string' && Object.hasOwn(RESOLVERS, rrtype) ? RESOLVERS[rrtype]! : undefined;
  if (!r) {
    const shown = typeof rrtype === 'string' ? `'${rrtype}'` : String(rrtype);
    throw nodeError(TypeError, `The argument 'rrtype' is invalid. Received ${shown}`, 'ERR_INVALID_ARG_VALUE');
  }
  return r(name);
}

export const getServers = (): string[] => ['1.1.1.1', '2606:4700:4700::1111', '1.0.0.1', '2606:4700:4700::1001'];
export const setServers = (): never => notImplemented();

type Order = 'verbatim' | 'ipv4first' | 'ipv6first';
const ORDERS: readonly Order[] = ['verbatim', 'ipv4first', 'ipv6first'];
let defaultOrder: Order = 'verbatim';
export const getDefaultResultOrder = (): Order => defaultOrder;
export function setDefaultResultOrder(value: unknown): void {
  validateOneOf(value, 'dnsOrder', ORDERS);
  defaultOrder = value;
}

type LookupAddress = { address: string; family: number };
type LookupCallback = (err: Error | null, address?: string | LookupAddress[] | null, family?: number) => void;
interface LookupOptions {
  family?: unknown;
  hints?: unknown;
  all?: unknown;
  verbatim?: unknown;
  order?: unknown;
}

const noAnswer = () => ({ Answer: [] as Answer[] });

/** The callback form (node:dns's `lookup`; dns/promises wraps it). Arguments are checked as workerd checks them. */
export function lookup(hostname: unknown, options?: unknown, ...rest: unknown[]): void {
  let callback = rest[0];
  let family = 0;
  let all = false;
  let order = defaultOrder;
  if (hostname) validateString(hostname, 'hostname');
  if (typeof options === 'function') {
    callback = options;
  } else if (typeof options === 'number') {
    validateFunction(callback, 'callback');
    validateOneOf(options, 'family', [0, 4, 6]);
    family = options;
  } else if (options !== undefined && typeof options !== 'object') {
    validateFunction(rest.length === 0 ? options : callback, 'callback');
    argType('options', 'of type object or integer', options);
  } else {
    validateFunction(callback, 'callback');
    const o = (options ?? {}) as LookupOptions;
    if (o.hints != null) {
      if (typeof o.hints !== 'number') argType('options.hints', 'of type number', o.hints);
      throw nodeError(Error, 'The options.hints option is not implemented', 'ERR_OPTION_NOT_IMPLEMENTED');
    }
    if (o.family != null) {
      if (o.family === 'IPv4') family = 4;
      else if (o.family === 'IPv6') family = 6;
      else {
        validateOneOf(o.family, 'options.family', [0, 4, 6]);
        family = o.family;
      }
    }
    if (o.all != null) {
      validateBoolean(o.all, 'options.all');
      all = o.all;
    }
    if (o.verbatim != null) {
      validateBoolean(o.verbatim, 'options.verbatim');
      order = o.verbatim ? 'verbatim' : 'ipv4first';
    }
    if (o.order != null) {
      validateOneOf(o.order, 'options.order', ORDERS);
      order = o.order;
    }
  }
  const cb = callback as LookupCallback;
  if (!hostname) {
    if (all) process.nextTick(() => cb(null, []));
    else process.nextTick(() => cb(null, null, family === 6 ? 6 : 4));
    return;
  }
  const name = hostname as string;
  const literal = isIP(name);
  if (literal) {
    if (all) process.nextTick(() => cb(null, [{ address: name, family: literal }]));
    else process.nextTick(() => cb(null, name, literal));
    return;
  }
  const fail = (error: unknown) => process.nextTick(() => cb(error as Error));
  if (family === 0) {
    // Both families; a failed query counts as no answer, as in workerd.
    Promise.all([sendDnsRequest(name, 'A').catch(noAnswer), sendDnsRequest(name, 'AAAA').catch(noAnswer)])
      .then(([a, aaaa]) => {
        const v4 = (a.Answer ?? []).map((x) => ({ address: x.data, family: 4 }));
        const v6 = (aaaa.Answer ?? []).map((x) => ({ address: x.data, family: 6 }));
        if (v4.length === 0 && v6.length === 0) return cb(new DnsError(name, c.NOTFOUND, 'queryA'));
        const ordered = order === 'ipv6first' ? [...v6, ...v4] : [...v4, ...v6];
        if (all) cb(null, ordered);
        else cb(null, ordered[0]!.address, ordered[0]!.family);
      })
      .catch(fail);
    return;
  }
  const type = family === 4 ? 'A' : 'AAAA';
  sendDnsRequest(name, type)
    .then((json) => {
      validateAnswer(json.Answer, name, `query${type}`);
      if (all)
        cb(
          null,
          json.Answer.map((x) => ({ address: x.data, family })),
        );
      else cb(null, json.Answer.at(0)?.data, family);
    })
    .catch(fail);
}
