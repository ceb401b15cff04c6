// The request-path bench's worker, run unchanged on workerd and on Cordon: hello, an echo of the
// request body (64 KiB each way in the bench) and a 10 MiB body streamed in 64 KiB chunks.
const CHUNK = new Uint8Array(64 * 1024).fill(0x61);
const STREAM_CHUNKS = 160;

export default {
  async fetch(request) {
    const path = new URL(request.url).pathname;
    if (path.endsWith('/echo')) return new Response(await request.arrayBuffer(), { headers: { 'content-type': 'application/octet-stream' } });
    if (path.endsWith('/stream')) {
      let sent = 0;
      const body = new ReadableStream({
        pull(controller) {
          if (sent++ < STREAM_CHUNKS) controller.enqueue(CHUNK.slice());
          else controller.close();
        },
      });
      return new Response(body, { headers: { 'content-type': 'application/octet-stream' } });
    }
    return new Response('Hello, world!\n', { headers: { 'content-type': 'text/plain; charset=utf-8' } });
  },
};
