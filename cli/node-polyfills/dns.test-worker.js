import dns from 'node:dns'; import * as ns from 'node:dns'; import dp from 'node:dns/promises'; import * as nsp from 'node:dns/promises';
const t = (f) => { try { const r = f(); return ['ok', r === undefined ? 'undefined' : typeof r === 'object' && r && typeof r.then === 'function' ? 'promise' : r] } catch (e) { return ['throws', e.name, e.code, e.message] } };
const settle = async (p) => { try { const v = await p; return ['ok', v] } catch (e) { return ['rejects', e.name, e.code, e.message, e.hostname, e.syscall, e.errno] } };
const cb = (f) => new Promise((res) => { try { f((err, ...v) => res(err ? ['err', err.code, err.message, err.hostname, err.syscall] : ['ok', ...v])) } catch (e) { res(['throws', e.name, e.code, e.message]) } });
export default { async fetch() {
  const out = {
    exports: Object.keys(ns).sort(), defaultKeys: Object.keys(dns).sort(), promisesExports: Object.keys(nsp).sort(), promisesDefault: Object.keys(dp).sort(),
    servers: dns.getServers(), order: dns.getDefaultResultOrder(),
    setServers: t(() => dns.setServers(['8.8.8.8'])),
    setOrder: [t(() => dns.setDefaultResultOrder('bogus')), t(() => dns.setDefaultResultOrder(1))],
    sync: {
      resolve4: t(() => dns.resolve4(1, () => {})), resolveNoCb: t(() => dns.resolve4('a.example')), resolveBadType: t(() => dns.resolve('a.example', 'BOGUS', () => {})),
      resolveNoType: t(() => dns.resolve('a.example', () => {})),
      pResolve4: t(() => dp.resolve4(42)), pResolveBad: t(() => dp.resolve('x', 'NOPE')), pResolveNum: t(() => dp.resolve('x', 5)),
      lookupNum: t(() => dns.lookup(5, () => {})), lookupNoCb: t(() => dns.lookup('a.example')), lookupFam: t(() => dns.lookup('a.example', 5, () => {})),
      lookupStr: t(() => dns.lookup('a.example', 'x', () => {})), lookupStrNoCb: t(() => dns.lookup('a.example', 'x')),
      lookupHints: t(() => dns.lookup('a.example', { hints: 1 }, () => {})), lookupHintsBad: t(() => dns.lookup('a.example', { hints: 'x' }, () => {})),
      lookupFamBad: t(() => dns.lookup('a.example', { family: 5 }, () => {})), lookupAll: t(() => dns.lookup('a.example', { all: 1 }, () => {})),
      lookupOrder: t(() => dns.lookup('a.example', { order: 'x' }, () => {})), lookupVerbatim: t(() => dns.lookup('a.example', { verbatim: 'x' }, () => {})),
    },
    literal: [await cb((c) => dns.lookup('127.0.0.1', c)), await cb((c) => dns.lookup('::1', { all: true }, c)), await cb((c) => dns.lookup('', c)), await cb((c) => dns.lookup('', { all: true, family: 6 }, c)), await cb((c) => dns.lookup(undefined, 6, c))],
    pLiteral: [await settle(dp.lookup('10.0.0.1')), await settle(dp.lookup('fe80::1', { all: true }))],
    unimpl: [await settle(dp.resolveAny('x')), await settle(dp.lookupService('1.1.1.1', 22)), await cb((c) => dns.resolve('x', 'ANY', c))],
    network: [await settle(dp.resolve4('a.example')), await settle(dp.resolveTxt('a.example')), await cb((c) => dns.resolveMx('a.example', c)), await cb((c) => dns.lookup('a.example', c)), await settle(dp.lookup('a.example', 4))],
    resolver: [t(() => new dns.Resolver().cancel()), t(() => new dp.Resolver().setLocalAddress()), t(() => new dp.Resolver().getServers())],
  };
  return Response.json(out);
} };
