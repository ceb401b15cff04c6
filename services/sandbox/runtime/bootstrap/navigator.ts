/** `navigator` as Workers has it: its user agent, and the one CPU a worker is given. */
export class Navigator {
  constructor(key?: symbol) {
    if (key !== SECRET) throw new TypeError('Illegal constructor: use the global navigator');
  }
  get userAgent(): string {
    return 'Cloudflare-Workers';
  }
  get hardwareConcurrency(): number {
    return 1;
  }
}
const SECRET = Symbol('construct');
export const navigator = new Navigator(SECRET);
