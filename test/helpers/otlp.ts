/** An OTLP/HTTP (JSON) receiver on loopback for tests: the spans every service exported to it, flattened. */
import { createServer, type Server } from 'node:http';

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  boolValue?: boolean;
  doubleValue?: number;
}
interface OtlpAttribute {
  key: string;
  value: OtlpValue;
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  attributes?: OtlpAttribute[];
  events?: { name: string; attributes?: OtlpAttribute[] }[];
  status?: { message?: string };
}
interface OtlpExport {
  resourceSpans?: { resource?: { attributes?: OtlpAttribute[] }; scopeSpans?: { spans?: OtlpSpan[] }[] }[];
}

export interface SpanRecord {
  service: string;
  traceId: string;
  spanId: string;
  parent: string | undefined;
  name: string;
  attrs: Record<string, string | number | boolean>;
  resource: Record<string, string | number | boolean>;
  /** Every string the span carries: its name, status message, its attributes and its events', its resource's. */
  strings: string[];
}

const valueOf = (v: OtlpValue) => v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : (v.boolValue ?? v.doubleValue ?? ''));
const record = (list: OtlpAttribute[] = []) => Object.fromEntries(list.map((a) => [a.key, valueOf(a.value)]));

export interface Receiver {
  url: string;
  spans: SpanRecord[];
  close(): void;
}

/** An OTLP/HTTP receiver on loopback: the spans it was sent, flattened. */
export function receiver(): Promise<Receiver> {
  const spans: SpanRecord[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/v1/traces' && String(req.headers['content-type']).startsWith('application/json')) {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as OtlpExport;
        for (const rs of body.resourceSpans ?? []) {
          const resource = record(rs.resource?.attributes);
          for (const ss of rs.scopeSpans ?? [])
            for (const s of ss.spans ?? []) {
              const attrs = record(s.attributes);
              const strings = [
                s.name,
                s.status?.message ?? '',
                ...Object.values(attrs),
                ...Object.values(resource),
                ...(s.events ?? []).flatMap((e) => [e.name, ...Object.values(record(e.attributes))]),
              ].map(String);
              spans.push({
                service: String(resource['service.name']),
                traceId: s.traceId,
                spanId: s.spanId,
                parent: s.parentSpanId || undefined,
                name: s.name,
                attrs,
                resource,
                strings,
              });
            }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({ url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, spans, close: () => (server.closeAllConnections(), server.close()) }),
    ),
  );
}
