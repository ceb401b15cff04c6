/**
 * A body that streams into the isolate from the host: a request's streamed body, or a fetch()
 * response's. Each chunk is pulled from the host only when the worker reads (backpressure back to
 * the client or the origin); cancelling tells the host, which closes the other end.
 */
import type { ReadableStream } from 'web-streams-polyfill';
import { streams } from './streams.ts';
import { requests } from './request-state.ts';
import type { HostReferences, IsolateRef } from '../abi.ts';

const U8 = Uint8Array;
const PromiseCtor = Promise;
const TypeErrorCtor = TypeError;

/** Body `id` pulled through `bodyRef`; `cancel` (if any) runs when the worker cancels it. */
export function hostBody(bodyRef: IsolateRef<HostReferences['bodyPull']>, id: number, cancel?: (id: number) => void): ReadableStream<Uint8Array> {
  const started = requests.generation;
  return new (streams().ReadableStream)<Uint8Array>(
    {
      async pull(controller) {
        let chunk: ArrayBuffer | null;
        try {
          chunk = await bodyRef.apply(undefined, [id], { result: { promise: true, copy: true } });
        } catch (e) {
          // The network failed us (the origin went away, the body was too long): a TypeError, as in Workers.
          throw new TypeErrorCtor(e instanceof Error ? e.message : String(e));
        }
        if (started !== requests.generation) return new PromiseCtor<void>(() => {}); // the request has ended
        if (chunk === null) controller.close();
        else controller.enqueue(new U8(chunk));
      },
      cancel() {
        cancel?.(id);
      },
    },
    { highWaterMark: 0 },
  );
}
