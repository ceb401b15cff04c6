/**
 * `node:dns` as workerd has it: the queries of dns-query.ts with callbacks (Node's `util.callbackify`:
 * arguments checked synchronously, the callback called on a later tick), `lookup` in its callback form,
 * and the promise API as `promises`.
 */
import process from 'node:process';
import * as q from './dns-query.ts';
import * as promises from './dns-promises.ts';
import { describeReceived, nodeError } from './node-error.ts';

type Callback = (err: unknown, value?: unknown) => void;

/** Node's util.callbackify (unenv has only a stand-in): a rejection with a falsy reason becomes ERR_FALSY_VALUE_REJECTION. */
function callbackify<A extends unknown[]>(original: (...args: A) => Promise<unknown>): (...args: unknown[]) => void {
  return (...args: unknown[]) => {
    const cb = args.pop();
    if (typeof cb !== 'function')
      throw nodeError(TypeError, `The last argument must be of type function. Received ${describeReceived(cb)}`, 'ERR_INVALID_ARG_TYPE');
    original(...(args as A)).then(
      (value) => process.nextTick(cb as Callback, null, value),
      (reason) =>
        process.nextTick(
          cb as Callback,
          reason || Object.assign(new Error('Promise was rejected with falsy value'), { code: 'ERR_FALSY_VALUE_REJECTION', reason }),
        ),
    );
  };
}

export const reverse = callbackify(q.reverse);
export const resolveTxt = callbackify(q.resolveTxt);
export const resolveCaa = callbackify(q.resolveCaa);
export const resolveMx = callbackify(q.resolveMx);
export const resolveCname = callbackify(q.resolveCname);
export const resolveNs = callbackify(q.resolveNs);
export const resolvePtr = callbackify(q.resolvePtr);
export const resolveSrv = callbackify(q.resolveSrv);
export const resolveSoa = callbackify(q.resolveSoa);
export const resolveNaptr = callbackify(q.resolveNaptr);
export const resolve4 = callbackify(q.resolve4);
export const resolve6 = callbackify(q.resolve6);
export const lookupService = callbackify(q.lookupService);
export const resolve = callbackify(q.resolve);
export const resolveAny = callbackify(q.resolveAny);
export const { getServers, setServers, getDefaultResultOrder, setDefaultResultOrder, lookup } = q;
export * from './dns-codes.ts';
export { promises };

/** workerd's Resolver: the module's functions, with no servers of its own to set. */
export class Resolver {
  cancel(): never {
    throw new Error('Not implemented');
  }
  setLocalAddress(): never {
    throw new Error('Not implemented');
  }
  getServers(): string[] {
    return getServers();
  }
  setServers(): never {
    return setServers();
  }
  resolve(...args: unknown[]): void {
    resolve(...args);
  }
  resolve4(...args: unknown[]): void {
    resolve4(...args);
  }
  resolve6(...args: unknown[]): void {
    resolve6(...args);
  }
  resolveAny(...args: unknown[]): void {
    resolveAny(...args);
  }
  resolveCaa(...args: unknown[]): void {
    resolveCaa(...args);
  }
  resolveCname(...args: unknown[]): void {
    resolveCname(...args);
  }
  resolveMx(...args: unknown[]): void {
    resolveMx(...args);
  }
  resolveNaptr(...args: unknown[]): void {
    resolveNaptr(...args);
  }
  resolveNs(...args: unknown[]): void {
    resolveNs(...args);
  }
  resolvePtr(...args: unknown[]): void {
    resolvePtr(...args);
  }
  resolveSoa(...args: unknown[]): void {
    resolveSoa(...args);
  }
  resolveSrv(...args: unknown[]): void {
    resolveSrv(...args);
  }
  resolveTxt(...args: unknown[]): void {
    resolveTxt(...args);
  }
  reverse(...args: unknown[]): void {
    reverse(...args);
  }
}

export default {
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
  lookupService,
  resolve,
  resolveAny,
  getServers,
  setServers,
  getDefaultResultOrder,
  setDefaultResultOrder,
  lookup,
  Resolver,
  promises,
  ...q.errorCodes,
  ...q.flags,
};
