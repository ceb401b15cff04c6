// Answers after ?ms=… milliseconds (default 1000): a fixture for requests in flight when a sandbox dies.
export default {
  async fetch(request: Request): Promise<Response> {
    const ms = Number(new URL(request.url).searchParams.get('ms') ?? 1000);
    await new Promise((r) => setTimeout(r, ms));
    return new Response(`slept ${ms} ms after a ${request.method}`);
  },
};
