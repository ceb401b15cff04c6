/**
 * An `assets` binding as Workers has it (env.ASSETS, a Fetcher): `fetch(input, init)` answers from the
 * worker's static assets by Cloudflare's rules (html_handling, not_found_handling), served by the
 * sandbox's host (services/sandbox/assets/server.ts). A body past its first part (4 MiB) streams, a part
 * per call.
 */
import { Request, Response } from './fetch-api.ts';
import { streams } from './streams.ts';
import type { CallAsync } from './workflow-step.ts';

const U8 = Uint8Array;
const freeze = Object.freeze;

interface Answer {
  status: number;
  statusText: string;
  headers: [string, string][];
  body: Uint8Array | null;
  hash: string | null;
  parts: number;
}

export function assetsBinding(call: CallAsync, handle: string): object {
  const fetch = async (input: unknown, init?: unknown): Promise<Response> => {
    const request = new Request(input as string, init as never);
    const headers: [string, string][] = [];
    for (const pair of request.headers) headers.push([pair[0], pair[1]]);
    const a = (await call(handle, 'fetch', [request.method, request.url, headers])) as Answer;
    let body: Uint8Array | ReadableStream | null = a.body && new U8(a.body);
    if (a.body && a.hash !== null && a.parts > 1) {
      const hash = a.hash;
      let next = 0;
      const first = a.body;
      body = new (streams().ReadableStream)({
        type: 'bytes',
        async pull(c: ReadableByteStreamController) {
          c.enqueue(new U8(next === 0 ? first : ((await call(handle, 'part', [hash, next])) as Uint8Array)));
          if (++next === a.parts) c.close();
        },
      }) as unknown as ReadableStream;
    }
    return new Response(body as never, { status: a.status, statusText: a.statusText, headers: a.headers });
  };
  return freeze({ fetch, connect: () => Promise.reject(new TypeError('connect() is not offered by an assets binding')) });
}
