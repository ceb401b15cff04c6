// A chat room per name, as on Cloudflare: GET /room/<name> is the page, a WebSocket upgrade there joins
// the room (?name=<who>), GET /room/<name>/history is the last messages as JSON. Each room is a Durable
// Object that accepts its sockets with ctx.acceptWebSocket: an idle room is evicted from memory while
// its sockets stay open, and the next message wakes it (a new instance, the same storage, the same
// sockets with their tags and attachments). "ping" is answered "pong" without waking the room.
import { DurableObject } from 'cloudflare:workers';

interface Env {
  ROOMS: { getByName(name: string): { fetch(request: Request): Promise<Response> } };
}

/** The Workers runtime's own types, as the room uses them (a Cordon example needs no @cloudflare/workers-types). */
interface ServerSocket {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  serializeAttachment(value: unknown): void;
  deserializeAttachment(): unknown;
}
declare const WebSocketPair: { new (): { 0: unknown; 1: ServerSocket } };
declare const WebSocketRequestResponsePair: new (request: string, response: string) => unknown;

const HISTORY = 50;
const MAX_TEXT = 2000;

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    const [, room, rest] = url.pathname.match(/^\/room\/([\w-]{1,64})(\/history)?$/) ?? [];
    if (!room) return new Response('Rooms are at /room/<name> (letters, digits, - and _).\n', { status: 404 });
    if (request.headers.get('upgrade') !== 'websocket' && !rest) return new Response(page(room), { headers: { 'content-type': 'text/html; charset=utf-8' } });
    return env.ROOMS.getByName(room).fetch(request);
  },
};

interface Member {
  name: string;
  joined: number;
}

export class Room extends DurableObject<Env> {
  /** Made anew each time the room wakes: the page shows it, the tests compare it. */
  readonly instance = crypto.randomUUID();

  constructor(ctx: any, env: Env) {
    super(ctx, env);
    ctx.storage.sql.exec('CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, name TEXT NOT NULL, text TEXT NOT NULL)');
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair('ping', 'pong'));
  }

  async fetch(request: Request): Promise<Response> {
    if (new URL(request.url).pathname.endsWith('/history')) return Response.json(this.#history());
    if (request.headers.get('upgrade') !== 'websocket') return new Response('Expected a WebSocket upgrade.\n', { status: 426 });
    const name = (new URL(request.url).searchParams.get('name') ?? 'anonymous').slice(0, 32) || 'anonymous';
    this.#broadcast({ type: 'joined', name });
    const pair = new WebSocketPair();
    const [client, server] = [pair[0], pair[1]];
    this.ctx.acceptWebSocket(server, [name]);
    server.serializeAttachment({ name, joined: Date.now() } satisfies Member);
    server.send(JSON.stringify({ type: 'history', messages: this.#history() }));
    return new Response(null, { status: 101, webSocket: client } as ResponseInit);
  }

  async webSocketMessage(ws: ServerSocket, message: string | ArrayBuffer): Promise<void> {
    const { name } = ws.deserializeAttachment() as Member;
    const text = typeof message === 'string' ? message : new TextDecoder().decode(message);
    if (text === '/who') {
      const online = this.ctx.getWebSockets().map((s: ServerSocket) => (s.deserializeAttachment() as Member).name);
      return ws.send(JSON.stringify({ type: 'who', online, instance: this.instance }));
    }
    const at = Date.now();
    this.ctx.storage.sql.exec('INSERT INTO messages (at, name, text) VALUES (?, ?, ?)', at, name, text.slice(0, MAX_TEXT));
    this.#broadcast({ type: 'message', name, text: text.slice(0, MAX_TEXT), at });
  }

  async webSocketClose(ws: ServerSocket, code: number): Promise<void> {
    const { name } = ws.deserializeAttachment() as Member;
    this.#broadcast({ type: 'left', name, code });
  }

  #history(): { name: string; text: string; at: number }[] {
    const rows = this.ctx.storage.sql.exec('SELECT at, name, text FROM messages ORDER BY id DESC LIMIT ?', HISTORY).toArray();
    return rows.reverse();
  }

  #broadcast(event: unknown): void {
    const text = JSON.stringify(event);
    for (const ws of this.ctx.getWebSockets() as ServerSocket[]) {
      try {
        ws.send(text);
      } catch {
        // A socket closing as we send: it hears nothing more.
      }
    }
  }
}

function page(room: string): string {
  return `<!doctype html>
<meta charset="utf-8"><title>#${room}</title>
<style>body{font:15px system-ui;max-width:40em;margin:2em auto}#log{height:60vh;overflow:auto;border:1px solid #ccc;padding:.5em}</style>
<h1>#${room}</h1><div id="log"></div>
<form id="f"><input id="t" autocomplete="off" placeholder="say something" style="width:80%"> <button>Send</button></form>
<script>
const who = prompt('Your name?') || 'anonymous';
const log = document.getElementById('log');
const line = (s) => { const p = document.createElement('div'); p.textContent = s; log.append(p); log.scrollTop = log.scrollHeight; };
const ws = new WebSocket(location.href.replace(/^http/, 'ws').split('?')[0] + '?name=' + encodeURIComponent(who));
ws.onmessage = (e) => {
  const m = JSON.parse(e.data);
  if (m.type === 'history') m.messages.forEach((h) => line(h.name + ': ' + h.text));
  else if (m.type === 'message') line(m.name + ': ' + m.text);
  else if (m.type === 'joined' || m.type === 'left') line('* ' + m.name + ' ' + m.type);
};
ws.onclose = () => line('* disconnected');
document.getElementById('f').onsubmit = (e) => { e.preventDefault(); const t = document.getElementById('t'); if (t.value) ws.send(t.value); t.value = ''; };
</script>`;
}
