/** `node:dns/promises` as workerd has it: the queries of dns-query.ts, `lookup` resolving `{ address, family }` (or the list with `all`). */
import * as q from './dns-query.ts';

export {
  reverse,
  resolveTxt,
  resolveCaa,
  resolveMx,
  resolveCname,
  resolveNs,
  resolvePtr,
  resolveSrv,
  resolveSoa,
  resolveNaptr,
  resolve4,
  resolve6,
  getServers,
  setServers,
  getDefaultResultOrder,
  setDefaultResultOrder,
  lookupService,
  resolve,
  resolveAny,
} from './dns-query.ts';
export * from './dns-codes.ts';

export function lookup(hostname: unknown, options?: unknown): Promise<unknown> {
  return new Promise((resolve, reject) => {
    q.lookup(hostname, options, (error: Error | null, address?: unknown, family?: number) => {
      if (error) reject(error);
      else resolve(Array.isArray(address) ? address : { address, family });
    });
  });
}

/** workerd's Resolver: the module's functions, with no servers of its own to set. */
export class Resolver {
  cancel(): never {
    throw new Error('Not implemented');
  }
  setLocalAddress(): never {
    throw new Error('Not implemented');
  }
  getServers(...args: Parameters<typeof q.getServers>): ReturnType<typeof q.getServers> {
    return q.getServers(...args);
  }
  resolve(...args: Parameters<typeof q.resolve>): ReturnType<typeof q.resolve> {
    return q.resolve(...args);
  }
  resolve4(...args: Parameters<typeof q.resolve4>): ReturnType<typeof q.resolve4> {
    return q.resolve4(...args);
  }
  resolve6(...args: Parameters<typeof q.resolve6>): ReturnType<typeof q.resolve6> {
    return q.resolve6(...args);
  }
  resolveAny(...args: Parameters<typeof q.resolveAny>): ReturnType<typeof q.resolveAny> {
    return q.resolveAny(...args);
  }
  resolveCaa(...args: Parameters<typeof q.resolveCaa>): ReturnType<typeof q.resolveCaa> {
    return q.resolveCaa(...args);
  }
  resolveCname(...args: Parameters<typeof q.resolveCname>): ReturnType<typeof q.resolveCname> {
    return q.resolveCname(...args);
  }
  resolveMx(...args: Parameters<typeof q.resolveMx>): ReturnType<typeof q.resolveMx> {
    return q.resolveMx(...args);
  }
  resolveNaptr(...args: Parameters<typeof q.resolveNaptr>): ReturnType<typeof q.resolveNaptr> {
    return q.resolveNaptr(...args);
  }
  resolveNs(...args: Parameters<typeof q.resolveNs>): ReturnType<typeof q.resolveNs> {
    return q.resolveNs(...args);
  }
  resolvePtr(...args: Parameters<typeof q.resolvePtr>): ReturnType<typeof q.resolvePtr> {
    return q.resolvePtr(...args);
  }
  resolveSoa(...args: Parameters<typeof q.resolveSoa>): ReturnType<typeof q.resolveSoa> {
    return q.resolveSoa(...args);
  }
  resolveSrv(...args: Parameters<typeof q.resolveSrv>): ReturnType<typeof q.resolveSrv> {
    return q.resolveSrv(...args);
  }
  resolveTxt(...args: Parameters<typeof q.resolveTxt>): ReturnType<typeof q.resolveTxt> {
    return q.resolveTxt(...args);
  }
  reverse(...args: Parameters<typeof q.reverse>): ReturnType<typeof q.reverse> {
    return q.reverse(...args);
  }
  setServers(...args: Parameters<typeof q.setServers>): ReturnType<typeof q.setServers> {
    return q.setServers(...args);
  }
}

export default {
  reverse: q.reverse,
  resolveTxt: q.resolveTxt,
  resolveCaa: q.resolveCaa,
  resolveMx: q.resolveMx,
  resolveCname: q.resolveCname,
  resolveNs: q.resolveNs,
  resolvePtr: q.resolvePtr,
  resolveSrv: q.resolveSrv,
  resolveSoa: q.resolveSoa,
  resolveNaptr: q.resolveNaptr,
  resolve4: q.resolve4,
  resolve6: q.resolve6,
  getServers: q.getServers,
  setServers: q.setServers,
  getDefaultResultOrder: q.getDefaultResultOrder,
  setDefaultResultOrder: q.setDefaultResultOrder,
  lookupService: q.lookupService,
  resolve: q.resolve,
  resolveAny: q.resolveAny,
  lookup,
  Resolver,
  ...q.errorCodes,
};
