/** Origins as deploys declare them and operators grant them: `scheme://host:port`, one spelling each. */
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
  } catch {
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
