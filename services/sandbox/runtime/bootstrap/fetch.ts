/**
 * fetch(): only through the worker's fetch capability (egress), at most MAX_SUBREQUESTS a request; a
 * refusal is a TypeError whose message starts "egress denied:", as the platform promises. A response
 * body egress does not return whole streams in (host-body.ts) as the worker reads it.
 */
import { Body, Headers, Request, Response } from './fetch-api.ts';
import { requests } from './request-state.ts';
import { hostBody } from './host-body.ts';
import type { HostReferences, IsolateRef } from '../abi.ts';

const MAX_SUBREQUESTS = 50;

type CallAsync = (handle: string, method: string, args: unknown[]) => Promise<unknown>;

/** What counts subrequests: `count` throws past the limit; `reset` when a request (or invocation) starts. */
export interface Subrequests {
  count(): void;
  reset(): void;
}

/** Where a streamed response body's chunks come from, and where its cancellation goes. */
export interface StreamedBodies {
  bodyRef: IsolateRef<HostReferences['bodyPull']>;
  cancel(id: number): void;
}

/** A response the host answered a call with (fetch(), a loaded Worker's fetch()): its body whole, or streamed in as it is read. */
export interface HostReply {
  status: number;
  statusText: string;
  headers: [string, string][];
  body: Uint8Array | null;
  /** A body that streams: its number, to pull with (bodies.bodyRef). */
  stream?: number;
}

export function hostResponse(reply: HostReply, method: string, bodies: StreamedBodies): Response {
  const nullBody = reply.status === 204 || reply.status === 205 || reply.status === 304 || method === 'HEAD';
  const streamed = typeof reply.stream === 'number' ? hostBody(bodies.bodyRef, reply.stream, bodies.cancel) : undefined;
  if (streamed && nullBody) void streamed.cancel();
  return new Response(nullBody ? null : (streamed ?? reply.body), { status: reply.status, statusText: reply.statusText, headers: reply.headers });
}

/** Installs `fetch`; returns its subrequest count, which other outbound calls (Workers RPC) share. */
export function installFetch(g: Record<string, unknown>, callCapAsync: CallAsync, maxBody: number, bodies: StreamedBodies): Subrequests {
  let subrequests = 0;
  // Requests running together share one count (the isolate cannot tell whose call is whose): their
  // allowance is MAX_SUBREQUESTS each, for those started in this scope.
  const count = () => {
    if (++subrequests > MAX_SUBREQUESTS * Math.max(1, requests.active))
      throw new TypeError(`Too many subrequests: a request may make at most ${MAX_SUBREQUESTS}`);
  };
  g.fetch = async (input: unknown, init?: Record<string, unknown>) => {
    const request = new Request(input as string, init as never);
    count();
    let reply: HostReply & { url: string; redirected: boolean };
    try {
      reply = (await callCapAsync('$fetch', 'fetch', [
        {
          method: request.method,
          url: request.url,
          headers: Headers.raw(request.headers),
          body: await Body.read(request, maxBody),
          redirect: request.redirect,
        },
      ])) as typeof reply;
    } catch (e) {
      throw new TypeError((e as Error).message);
    }
    const response = hostResponse(reply, request.method, bodies);
    Object.defineProperties(response, { url: { value: reply.url }, redirected: { value: reply.redirected } });
    return response;
  };
  return {
    count,
    reset: () => {
      subrequests = 0;
    },
  };
}
