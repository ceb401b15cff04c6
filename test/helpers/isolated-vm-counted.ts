/** isolated-vm with its ExternalCopy counted (see isolate-copies.ts). */
import ivm from 'isolated-vm';

let copies = 0;
/** ExternalCopies made so far that copy (not transferOut). */
export const externalCopies = (): number => copies;

const counted = Object.create(ivm) as typeof ivm;
Object.defineProperty(counted, 'ExternalCopy', {
  value: new Proxy(ivm.ExternalCopy, {
    construct(target, args: [unknown, { transferOut?: boolean }?]) {
      if (!args[1]?.transferOut) copies++;
      return Reflect.construct(target, args);
    },
  }),
});
export default counted;
