/**
 * TextDecoder for every WHATWG encoding (bootstrap/encoding.ts, legacy-tables.ts): labels, `fatal`,
 * `ignoreBOM` and `stream` as the Encoding standard says, checked against Node's TextDecoder (ICU's) on the
 * host over the same bytes; the multi-byte tables loaded on first use, in the worker's heap.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkerRuntime } from './index.ts';
import { GET, text, worker } from './testing/fixtures.ts';

const rt = new WorkerRuntime();
after(() => rt.dispose());

async function json(source: string, limits?: { memoryMb?: number; cpuMs?: number }): Promise<Record<string, unknown>> {
  const res = await rt.handle(worker(source, { limits }), GET, { log: () => {} });
  return JSON.parse(text(res.body)) as Record<string, unknown>;
}

// Bytes in each encoding, from the Encoding standard's index tables (and the text they stand for).
const SAMPLES: [string, number[]][] = [
  ['shift_jis', [0x93, 0xfa, 0x96, 0x7b, 0x8c, 0xea, 0x41, 0xb1]],
  ['euc-jp', [0xc6, 0xfc, 0xcb, 0xdc, 0x8e, 0xb1, 0x8f, 0xb0, 0xa1]],
  ['iso-2022-jp', [0x1b, 0x24, 0x42, 0x46, 0x7c, 0x4b, 0x5c, 0x1b, 0x28, 0x42, 0x41]],
  ['euc-kr', [0xc7, 0xd1, 0xb1, 0xdb]],
  ['gbk', [0xd6, 0xd0, 0xce, 0xc4, 0x80]],
  ['gb18030', [0x81, 0x30, 0x81, 0x30, 0xd6, 0xd0]],
  ['big5', [0xa4, 0xa4, 0xa4, 0xe5]],
  ['windows-1252', [0x80, 0x9f, 0xe9]],
  ['iso-8859-2', [0xa1, 0xb1, 0xff]],
  ['koi8-r', [0xc1, 0xd2]],
  ['windows-1251', [0xcf, 0xf0, 0xe8]],
  ['utf-16le', [0xff, 0xfe, 0x3d, 0xd8, 0x00, 0xde]],
  ['utf-16be', [0xd8, 0x3d, 0xde, 0x00]],
  ['x-user-defined', [0x41, 0x80, 0xff]],
  ['shift_jis', [0x82]], // truncated: U+FFFD
  ['euc-kr', [0xc7, 0x41]],
];

test('every WHATWG encoding decodes as ICU decodes it, streamed or whole', async () => {
  const out = await json(`export default { async fetch() {
    const samples = ${JSON.stringify(SAMPLES)};
    const r = samples.map(([label, bytes]) => {
      const u = new Uint8Array(bytes);
      const d = new TextDecoder(label);
      let streamed = '';
      for (const b of u) streamed += d.decode(new Uint8Array([b]), { stream: true });
      streamed += d.decode();
      return [d.encoding, new TextDecoder(label).decode(u), streamed];
    });
    return Response.json({ r });
  } };`);
  const expected = SAMPLES.map(([label, bytes]) => {
    const d = new TextDecoder(label);
    const whole = new TextDecoder(label).decode(new Uint8Array(bytes));
    return [d.encoding, whole, whole];
  });
  assert.deepEqual(out.r, expected);
});

test('labels, fatal and ignoreBOM as the Encoding standard says', async () => {
  const out = await json(`export default { async fetch() {
    const t = (f) => { try { return f() } catch (e) { return e.name } };
    return Response.json({
      labels: ['  Latin1 ', 'SJIS', 'csbig5', 'unicode-1-1-utf-8', 'x-gbk', 'utf-16', 'ascii'].map((l) => new TextDecoder(l).encoding),
      unknown: t(() => new TextDecoder('klingon')),
      replacement: t(() => new TextDecoder('iso-2022-kr')),
      fatal: t(() => new TextDecoder('shift_jis', { fatal: true }).decode(new Uint8Array([0x82]))),
      fatalUtf8: t(() => new TextDecoder('utf-8', { fatal: true }).decode(new Uint8Array([0xff]))),
      bom: new TextDecoder().decode(new Uint8Array([0xef, 0xbb, 0xbf, 0x41])),
      keptBom: new TextDecoder('utf-8', { ignoreBOM: true }).decode(new Uint8Array([0xef, 0xbb, 0xbf, 0x41])).length,
      stream: new TextDecoderStream('shift_jis').encoding,
    });
  } };`);
  assert.deepEqual(out, {
    labels: ['windows-1252', 'shift_jis', 'big5', 'utf-8', 'gbk', 'utf-16le', 'windows-1252'],
    unknown: 'RangeError',
    replacement: 'RangeError',
    fatal: 'TypeError',
    fatalUtf8: 'TypeError',
    bom: 'A',
    keptBom: 2,
    stream: 'shift_jis',
  });
});

test('a TextDecoderStream in a legacy encoding keeps characters split across chunks whole', async () => {
  const out = await json(`export default { async fetch() {
    const bytes = [0x93, 0xfa, 0x96, 0x7b, 0x8c, 0xea];
    const s = new Response(new ReadableStream({ start(c) { for (const b of bytes) c.enqueue(new Uint8Array([b])); c.close(); } })).body.pipeThrough(new TextDecoderStream('shift_jis'));
    let t = '';
    for await (const part of s) t += part;
    return Response.json({ t });
  } };`);
  assert.equal(out.t, '日本語');
});
