// The Cache API: GET /put?key=…[&cc=max-age=60][&cache=name][&size=n][&cookie=1], /match?key=…, /delete?key=…
// Deploy: npx cordon deploy examples/cache/index.ts --name cache --route '*/cache/*'
interface CacheLike {
  match(r: string | Request): Promise<Response | undefined>;
  put(r: string | Request, res: Response): Promise<void>;
  delete(r: string | Request): Promise<boolean>;
}
declare const caches: { default: CacheLike; open(name: string): Promise<CacheLike> };

export default {
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const q = (k: string) => url.searchParams.get(k);
    const cache = q('cache') ? await caches.open(q('cache')!) : caches.default;
    const key = `https://cache.example/${q('key') ?? 'k'}`;
    try {
      switch (url.pathname.split('/').pop()) {
        case 'put': {
          const headers: Record<string, string> = { 'cache-control': q('cc') ?? 'max-age=60', 'content-type': 'text/plain' };
          if (q('cookie')) headers['set-cookie'] = 'a=b';
          await cache.put(key, new Response(`value of ${q('key')} ${'x'.repeat(Number(q('size') ?? 0))}`, { headers }));
          return new Response('stored');
        }
        case 'put-post':
          await cache.put(new Request(key, { method: 'POST', body: 'x' }), new Response('v'));
          return new Response('stored');
        case 'match': {
          const hit = await cache.match(key);
          return hit
            ? new Response(await hit.text(), { headers: { 'x-cache': hit.headers.get('cf-cache-status') ?? '' } })
            : new Response('miss', { status: 404 });
        }
        case 'delete':
          return new Response(String(await cache.delete(key)));
      }
    } catch (e) {
      return new Response(`${(e as Error).name}: ${(e as Error).message}`, { status: 400 });
    }
    return new Response('unknown', { status: 404 });
  },
};
