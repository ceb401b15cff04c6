// Streams both ways. GET /stream?n=…&ms=…: a body written over time, the client gets each chunk as it
// is written. POST /stream/count: reads the request body as it arrives and answers its length.
// POST /stream/echo: the request body straight back, streaming.
// Deploy: npx cordon deploy examples/stream/index.ts --name stream --route '*/stream*'
export default {
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname.endsWith('/echo')) return new Response(request.body);
    if (url.pathname.endsWith('/count')) {
      const reader = request.body!.getReader();
      let bytes = 0;
      let chunks = 0;
      for (let r = await reader.read(); !r.done; r = await reader.read()) {
        bytes += r.value.byteLength;
        chunks++;
      }
      return Response.json({ bytes, chunks });
    }
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
