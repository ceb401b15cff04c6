import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { outbound, WHOLE_BELOW } from './fetcher.ts';
import { HttpCache } from './cache.ts';
import { EMPTY_POLICY, systemResolver } from './policy.ts';

const MiB = 1024 * 1024;

async function origin(): Promise<{ url: string; closed: string[]; close(): void }> {
  const closed: string[] = [];
  const s = createServer((req, res) => {
    res.on('close', () => closed.push(req.url ?? ''));
    const n = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('mib') ?? 0);
    if (n === 0) return void res.end('small'); // a declared length
    res.writeHead(200, req.url?.startsWith('/cache') ? { 'cache-control': 'max-age=60' } : {});
    const chunk = Buffer.alloc(64 * 1024, 98);
    let left = n * 16;
    const more = () => {
      while (left > 0 && !res.destroyed) {
        left--;
        if (!res.write(chunk)) return void res.once('drain', more);
      }
      if (req.url?.startsWith('/endless')) return void setTimeout(() => !res.destroyed && res.write('x'), 10_000).unref();
      res.end();
    };
    more();
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(s.address() as { port: number }).port}`;
  return { url, closed, close: () => (s.closeAllConnections(), s.close()) };
}

const get = (url: string) => ({ method: 'GET', url, headers: [] as [string, string][], body: null, redirect: 'follow' as const });

async function drain(stream: ReadableStream<Uint8Array>): Promise<number> {
  let n = 0;
  for await (const c of stream as unknown as AsyncIterable<Uint8Array>) n += c.byteLength;
  return n;
}

test('a body of declared small length comes whole; others stream, at most maxResponseBytes', async () => {
  const o = await origin();
  const policy = { ...EMPTY_POLICY, origins: [`${o.url}`] };
  const deps = { resolver: systemResolver(), timeoutMs: 5000, maxResponseBytes: 4 * MiB };
  try {
    const small = await outbound(get(`${o.url}/?mib=0`), policy, 't/w', deps);
    assert.equal(small.stream, undefined, 'a small body of declared length comes whole');
    assert.equal(Buffer.from(small.body!).toString(), 'small');
    const big = await outbound(get(`${o.url}/?mib=3`), policy, 't/w', deps);
    assert.equal(big.body, null);
    assert.equal(await drain(big.stream!), 3 * MiB);
    const over = await outbound(get(`${o.url}/?mib=5`), policy, 't/w', deps);
    await assert.rejects(drain(over.stream!), /is larger than 4194304 bytes/);
    assert.ok(WHOLE_BELOW < 3 * MiB);
  } finally {
    o.close();
  }
});

test('cancelling a streamed body closes the connection to the origin', async () => {
  const o = await origin();
  const policy = { ...EMPTY_POLICY, origins: [o.url] };
  try {
    const r = await outbound(get(`${o.url}/endless?mib=1`), policy, 't/w', { resolver: systemResolver(), timeoutMs: 5000, maxResponseBytes: 64 * MiB });
    const reader = r.stream!.getReader();
    await reader.read();
    await reader.cancel();
    for (let i = 0; i < 100 && !o.closed.includes('/endless?mib=1'); i++) await new Promise((res) => setTimeout(res, 20));
    assert.deepEqual(o.closed, ['/endless?mib=1']);
  } finally {
    o.close();
  }
});

test('a streamed body is cached when its head allows and it fits the bound; a longer one is not kept', async () => {
  const o = await origin();
  const policy = { ...EMPTY_POLICY, origins: [o.url] };
  // Entries may be an eighth of the cache: 1 MiB here.
  const cache = new HttpCache({ maxBytes: 8 * MiB });
  const deps = { resolver: systemResolver(), cache, timeoutMs: 5000, maxResponseBytes: 64 * MiB };
  try {
    const fits = `${o.url}/cache?mib=0.5`;
    assert.equal(await drain((await outbound(get(fits), policy, 't/w', deps)).stream!), 0.5 * MiB);
    const again = await outbound(get(fits), policy, 't/w', deps);
    assert.equal(again.body?.byteLength, 0.5 * MiB, 'served whole from the cache');
    const tooLong = `${o.url}/cache?mib=2`;
    assert.equal(await drain((await outbound(get(tooLong), policy, 't/w', deps)).stream!), 2 * MiB);
    const notKept = await outbound(get(tooLong), policy, 't/w', deps);
    assert.ok(notKept.stream, 'fetched again: it was not kept');
    await notKept.stream!.cancel();
    assert.equal(cache.size.entries, 1);
  } finally {
    o.close();
  }
});
