// Allocations known to make V8 abort the whole process instead of throwing (isolated-vm #186, #527).
// A test fixture: deploy with --memory-mb 32 and request /bomb?kind=fill or /bomb?kind=copy.
export default {
  fetch(request: Request): Response {
    const kind = new URL(request.url).searchParams.get('kind');
    const a = kind === 'copy' ? Array.from(new Uint8Array(64 * 1024 * 1024)) : new Array(1024 * 1024 * 60).fill(0);
    return new Response(String(a.length));
  },
};
