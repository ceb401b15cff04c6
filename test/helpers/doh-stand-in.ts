/**
 * A stand-in for Cloudflare's DNS-over-HTTPS resolver (`https://cloudflare-dns.com/dns-query`, what workerd's
 * node:dns asks) on loopback: RFC 8484's JSON dialect, as Cloudflare answers `?name=&type=` with
 * `Accept: application/dns-json`, from a table of records. A name not in the table is NXDOMAIN (no Answer).
 * `raw` answers a name with a body of its own (a hostile or broken resolver).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type HttpsStandIn, startHttpsStandIn } from './https-stand-in.ts';

const TYPES: Record<string, number> = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33, NAPTR: 35, CAA: 257 };

export type Records = Record<string, Partial<Record<string, string[]>>>;

export interface DohStandIn extends HttpsStandIn {
  /** Each query as `<name>/<type> <accept header>`. */
  asked: string[];
}

export async function startDohStandIn(
  address: string,
  records: Records,
  raw: Record<string, (res: ServerResponse) => void> = {},
  more: Record<string, string[]> = {},
): Promise<DohStandIn> {
  const asked: string[] = [];
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'https://cloudflare-dns.com');
    const name = url.searchParams.get('name') ?? '';
    const type = url.searchParams.get('type') ?? '';
    asked.push(`${name}/${type} ${req.headers.accept}`);
    if (url.pathname !== '/dns-query') return void res.writeHead(404).end();
    const own = raw[name];
    if (own) return own(res);
    const data = records[name]?.[type];
    const body = {
      Status: records[name] ? 0 : 3,
      TC: false,
      RD: true,
      RA: true,
      AD: false,
      CD: false,
      Question: [{ name, type: TYPES[type] ?? 0 }],
      ...(data?.length ? { Answer: data.map((d) => ({ name, type: TYPES[type] ?? 0, TTL: 300, data: d })) } : {}),
    };
    res.writeHead(200, { 'content-type': 'application/dns-json' }).end(JSON.stringify(body));
  };
  const standIn = await startHttpsStandIn('cloudflare-dns.com', address, handler, more);
  return { ...standIn, asked };
}
