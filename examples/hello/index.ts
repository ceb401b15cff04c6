// The smallest Cordon worker. Deploy: npx cordon deploy examples/hello/index.ts --name hello --route '*/hello*'
import { greeting } from './greeting.ts';

export default {
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    return new Response(greeting(url.searchParams.get('name') ?? 'world'), {
      headers: { 'content-type': 'text/plain; charset=utf-8' },
    });
  },
};
