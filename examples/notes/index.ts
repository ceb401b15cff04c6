// A worker with its own SQLite database and private directory.
// Deploy: npx cordon deploy examples/notes/index.ts --name notes --route '*/notes*' --storage DB --directory FILES

interface Env {
  DB: {
    sql: {
      exec(query: string, ...bindings: unknown[]): { toArray(): Record<string, unknown>[]; one(): Record<string, unknown>; rowsWritten: number };
      databaseSize: number;
    };
    transactionSync<T>(fn: () => T): T;
    get(key: string): Promise<unknown>;
    put(key: string, value: unknown): Promise<void>;
    list(options?: { prefix?: string; limit?: number }): Promise<Map<string, unknown>>;
  };
  FILES: {
    read(path: string): Promise<Uint8Array>;
    write(path: string, data: Uint8Array | string): Promise<void>;
    list(path?: string): Promise<{ name: string; type: string }[]>;
  };
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    const op = url.searchParams.get('op') ?? 'list';
    const sql = env.DB.sql;
    try {
      sql.exec('CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)');
      switch (op) {
        case 'add': {
          const text = await request.text();
          sql.exec('INSERT INTO notes (text) VALUES (?)', text);
          return Response.json(sql.exec('SELECT count(*) AS n FROM notes').one());
        }
        case 'list':
          return Response.json(sql.exec('SELECT id, text FROM notes ORDER BY id').toArray());
        case 'tx-fail':
          env.DB.transactionSync(() => {
            sql.exec('INSERT INTO notes (text) VALUES (?)', 'never');
            throw new Error('roll back');
          });
          return new Response('unreachable');
        case 'sql':
          return Response.json(sql.exec(await request.text()).toArray());
        case 'kv-put':
          await env.DB.put(url.searchParams.get('key')!, JSON.parse(await request.text()));
          return new Response('ok');
        case 'kv-get':
          return Response.json((await env.DB.get(url.searchParams.get('key')!)) ?? null);
        case 'kv-list':
          return Response.json([...(await env.DB.list({ prefix: url.searchParams.get('prefix') ?? '' })).keys()]);
        case 'write':
          await env.FILES.write(url.searchParams.get('path')!, new Uint8Array(await request.arrayBuffer()));
          return new Response('written');
        case 'read':
          return new Response(await env.FILES.read(url.searchParams.get('path')!));
        case 'ls':
          return Response.json(await env.FILES.list(url.searchParams.get('path') ?? ''));
        default:
          return new Response(`unknown op ${op}`, { status: 400 });
      }
    } catch (e) {
      return new Response(`error: ${(e as Error).message}`, { status: 409 });
    }
  },
};
