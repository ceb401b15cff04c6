// A response body written over time: ?n=… chunks, ?ms=… apart. The client gets each as it is written.
// Deploy: npx cordon deploy examples/stream/index.ts --name stream --route '*/stream*'
export default {
  fetch(request: Request): Response {
    const url = new URL(request.url);
    const n = Number(url.searchParams.get('n') ?? 5);
    const ms = Number(url.searchParams.get('ms') ?? 200);
    const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
    const writer = writable.getWriter();
    const encoder = new TextEncoder();
    void (async () => {
      for (let i = 1; i <= n; i++) {
        await writer.write(encoder.encode(`chunk ${i}\n`));
        if (i < n) await new Promise((r) => setTimeout(r, ms));
      }
      await writer.close();
    })();
    return new Response(readable, { headers: { 'content-type': 'text/plain' } });
  },
};
