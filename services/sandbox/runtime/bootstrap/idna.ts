/**
 * Stands in for the `tr46` package inside the isolate. tr46's UTS #46 tables are ~2.2 MB of every
 * isolate's heap (more than half of it), yet whatwg-url calls tr46 only for hosts that are not
 * ASCII (it lower-cases ASCII hosts itself, as the URL Standard now says). So those rare calls are
 * handed to the host, which runs the real tr46 with the same options: same results, a fraction of
 * the memory per isolate.
 */
type HostToASCII = (domain: string, options: string) => string | null;

let host: HostToASCII | undefined;

/** Called once per context by the init half, with the host callback; never reachable by tenant code. */
export function setIdnaHost(fn: HostToASCII): void {
  host ??= fn;
}

export function toASCII(domain: string, options: Record<string, boolean> = {}): string | null {
  if (!host) throw new TypeError('international domain names are not available here');
  return host(domain, JSON.stringify(options));
}
