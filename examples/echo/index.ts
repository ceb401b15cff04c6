/** Echoes method, path, selected headers and the body back: an end-to-end fixture for the test suite. */
export default {
  async fetch(request: Request, env: Record<string, string>): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname.endsWith('/throw')) throw new Error('boom from the echo worker');
    const body = new Uint8Array(await request.arrayBuffer());
    const headers = new Headers({ 'content-type': 'application/octet-stream', 'x-echo-method': request.method, 'x-echo-path': url.pathname });
    const custom = request.headers.get('x-custom');
    if (custom !== null) headers.set('x-echo-custom', custom);
    if (env.GREETING) headers.set('x-echo-greeting', env.GREETING);
    // Who the client is, as ingress tells the worker (a client cannot choose these).
    for (const name of ['cf-connecting-ip', 'x-forwarded-for', 'x-forwarded-proto']) headers.set(`x-echo-${name}`, request.headers.get(name) ?? '');
    const own = request.headers.get('x-answer-request-id');
    if (own !== null) headers.set('x-request-id', own);
    headers.append('set-cookie', 'a=1');
    headers.append('set-cookie', 'b=2');
    return new Response(body, { status: request.method === 'POST' ? 201 : 200, headers });
  },
};
