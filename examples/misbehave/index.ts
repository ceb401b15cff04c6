// Every way a tenant can misbehave that the sandbox's limits must contain, one per path:
// /loop /bomb /giant /promises /timers /hang /recurse. A test fixture: deploy with --memory-mb 32 --wall-ms 4000.
const storms: Record<string, () => unknown> = {
  loop: () => {
    for (;;);
  },
  bomb: () => {
    const keep: string[] = [];
    for (;;) keep.push('x'.repeat(1024) + keep.length);
  },
  // A body held in full has no cap of its own (as in Workers): past the worker's memory it cannot be made.
  giant: () => new Response(new Uint8Array(64 * 1024 * 1024)),
  promises: async () => {
    for (;;) await null;
  },
  timers: () => {
    for (;;) setTimeout(() => {}, 0);
  },
  hang: () => new Promise(() => {}),
  recurse: () => {
    const down = (n: number): number => down(n + 1) + 1;
    return down(0);
  },
};

export default {
  async fetch(request: Request): Promise<Response> {
    const storm = storms[new URL(request.url).pathname.split('/').pop() ?? ''];
    if (!storm) return new Response('fine');
    const result = await storm();
    return result instanceof Response ? result : new Response(String(result));
  },
};
