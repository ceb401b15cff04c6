/**
 * A tiny DNS server on loopback for tests: answers A and AAAA queries from a table (a function per
 * name allows answers that change between queries, for rebinding tests); everything else NXDOMAIN.
 * Hand-written: ~60 lines of RFC 1035 framing, and no test DNS server package is worth a dependency.
 */
import { createSocket } from 'node:dgram';
import { isIPv4 } from 'node:net';
import { ipv6Bytes } from '../../../lib/ip-classify.ts';

export type Answers = Record<string, string[] | (() => string[])>;

export async function startDnsServer(answers: Answers): Promise<{ server: string; queries: string[]; stop(): Promise<void> }> {
  const socket = createSocket('udp4');
  const queries: string[] = [];
  socket.on('message', (msg, rinfo) => {
    try {
      let i = 12;
      const labels: string[] = [];
      while (msg[i]) {
        labels.push(msg.subarray(i + 1, i + 1 + msg[i]!).toString());
        i += msg[i]! + 1;
      }
      const qtype = msg.readUInt16BE(i + 1);
      const question = msg.subarray(12, i + 5);
      const name = labels.join('.').toLowerCase();
      queries.push(`${name}/${qtype === 28 ? 'AAAA' : 'A'}`);
      const entry = answers[name];
      const all = typeof entry === 'function' ? entry() : (entry ?? []);
      const found = all.filter((a) => (qtype === 28 ? !isIPv4(a) : isIPv4(a)));
      const header = Buffer.alloc(12);
      msg.copy(header, 0, 0, 2);
      header.writeUInt16BE(entry ? 0x8180 : 0x8183, 2); // response, recursion available; NXDOMAIN if unknown
      header.writeUInt16BE(1, 4);
      header.writeUInt16BE(found.length, 6);
      const records = found.map((a) => {
        const rdata = Buffer.from(isIPv4(a) ? a.split('.').map(Number) : ipv6Bytes(a));
        const rr = Buffer.alloc(12);
        rr.writeUInt16BE(0xc00c, 0); // pointer to the question's name
        rr.writeUInt16BE(qtype, 2);
        rr.writeUInt16BE(1, 4);
        rr.writeUInt32BE(0, 6);
        rr.writeUInt16BE(rdata.length, 10);
        return Buffer.concat([rr, rdata]);
      });
      socket.send(Buffer.concat([header, question, ...records]), rinfo.port, rinfo.address);
    } catch {
      // a malformed query: no answer
    }
  });
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
  return { server: `127.0.0.1:${socket.address().port}`, queries, stop: () => new Promise((r) => socket.close(() => r())) };
}
