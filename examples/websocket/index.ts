// WebSockets, as on Workers: GET /ws with an upgrade gets a socket that greets, then echoes.
// Send "close" and the worker closes (4000 "bye"); "later" answers from a timer; "bytes:N" answers N
// bytes; "flood:K" sends K MiB at once; "huge" tries a message over the 1 MiB limit. The socket speaks the "chat" subprotocol if offered.
// /ws/plain refuses with a 403; a plain GET (no upgrade) gets 426.
// Deploy: npx cordon deploy examples/websocket/index.ts --name ws --route '*/ws*'
// Try:    npx wscat -c ws://localhost:8080/ws
interface ServerSocket {
  accept(): void;
  send(data: string | ArrayBuffer | ArrayBufferView): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: 'message', listener: (event: { data: string | ArrayBuffer }) => void): void;
  addEventListener(type: 'close', listener: (event: { code: number; reason: string }) => void): void;
}
declare const WebSocketPair: new () => { 0: unknown; 1: ServerSocket };

export default {
  fetch(request: Request): Response {
    const url = new URL(request.url);
    if (url.pathname.endsWith('/plain')) return new Response('no sockets here', { status: 403 });
    if (request.headers.get('upgrade') !== 'websocket') return new Response('expected a WebSocket upgrade', { status: 426 });
    const { 0: client, 1: server } = new WebSocketPair();
    server.accept();
    server.addEventListener('message', ({ data }) => {
      if (typeof data !== 'string') return server.send(data); // bytes come back as they are
      if (data === 'close') return server.close(4000, 'bye');
      if (data === 'later') return void setTimeout(() => server.send('from a timer'), 20);
      if (data.startsWith('bytes:')) return server.send(new Uint8Array(Number(data.slice(6))).fill(7));
      if (data.startsWith('flood:')) {
        const mib = new Uint8Array(1024 * 1024);
        for (let i = 0; i < Number(data.slice(6)); i++) server.send(mib);
        return;
      }
      if (data === 'huge') {
        try {
          server.send('x'.repeat(2 * 1024 * 1024));
        } catch (e) {
          server.send(`refused: ${(e as Error).message}`);
        }
        return;
      }
      server.send(`echo: ${data}`);
    });
    server.addEventListener('close', ({ code, reason }) => console.log(`socket closed: ${code} ${reason}`));
    server.send('hello'); // before the 101 has gone out: it waits for the handshake
    const protocols = (request.headers.get('sec-websocket-protocol') ?? '').split(',').map((p) => p.trim());
    const headers = protocols.includes('chat') ? { 'sec-websocket-protocol': 'chat' } : undefined;
    return new Response(null, { status: 101, webSocket: client, headers } as ResponseInit);
  },
};
