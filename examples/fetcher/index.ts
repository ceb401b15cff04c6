// Fetches ?url=… through the worker's fetch capability and reports what happened.
// Deploy: npx cordon deploy examples/fetcher/index.ts --name fetcher --route '*/fetch*' [--origin http://host:port]
export default {
  async fetch(request: Request): Promise<Response> {
    const params = new URL(request.url).searchParams;
    const times = Number(params.get('times') ?? 1);
    try {
      let last: Response | undefined;
      for (let i = 0; i < times; i++) {
        last = await fetch(params.get('url') ?? '', {
          headers: { 'cordon-worker': 'victim/forged', 'x-forwarded-for': '10.0.0.1', 'x-custom': 'kept' },
          redirect: (params.get('redirect') ?? 'follow') as 'follow' | 'manual' | 'error',
        });
      }
      return Response.json({ status: last!.status, location: last!.headers.get('location'), body: await last!.text() });
    } catch (e) {
      return Response.json({ error: `${(e as Error).name}: ${(e as Error).message}` });
    }
  },
};
