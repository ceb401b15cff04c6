/**
 * Origins as deploys declare them and operators grant them: `scheme://host:port`, one spelling each.
 * `http:`/`https:` origins are for fetch(); `tcp://host:port` (port required) for `connect()`
 * (cloudflare:sockets), TLS or not: a raw socket can say anything, so an HTTP origin never grants one.
 */
import { CordonError } from './errors.ts';

export class OriginError extends CordonError {
  constructor(message: string) {
    super(message, { status: 400 });
  }
}

/** `text` as `scheme://host:port` (default port filled in), or an OriginError saying why it is not just an origin. */
export function parseOrigin(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
    // A tcp: host is read as an http: one would be (IPv4 spellings, IDNA), so one address has one spelling.
    if (url.protocol === 'tcp:') {
      if (!/^tcp:\/\/[^/?#@]+:\d+\/?$/i.test(text)) throw new OriginError(`origin ${JSON.stringify(text)} must be just tcp://host:port (with its port)`);
      const http = new URL(`http://${url.host}`);
      return `tcp://${http.hostname}:${url.port || '80'}`;
    }
  } catch (e) {
    if (e instanceof OriginError) throw e;
    throw new OriginError(`origin ${JSON.stringify(text)} is not a URL`);
  }
  if (
    (url.protocol !== 'http:' && url.protocol !== 'https:') ||
    url.username ||
    url.password ||
    (url.pathname !== '/' && url.pathname !== '') ||
    url.search ||
    url.hash
  ) {
    throw new OriginError(`origin ${JSON.stringify(text)} must be just scheme://host[:port]`);
  }
  return `${url.protocol}//${url.hostname}:${url.port || (url.protocol === 'https:' ? '443' : '80')}`;
}
