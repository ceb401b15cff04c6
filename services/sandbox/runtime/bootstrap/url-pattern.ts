/**
 * The URLPattern global: urlpattern-polyfill's pattern behind a class of the snapshot's, so that the
 * polyfill (~20 KB) is a lazy unit (urlpattern-unit.ts) loaded by an isolate's first URLPattern. The
 * class has the polyfill's shape (the same methods, getters and lengths, its toStringTag); each member
 * hands over to the polyfill's pattern, which throws what it threw.
 */
import { unit } from './units.ts';
import type { LazyUnits } from '../abi.ts';

type Typed = LazyUnits['urlpattern']['URLPattern'];
type Input = ConstructorParameters<Typed>[0];
/** The polyfill as it runs (its typings leave out `options`, `compareComponent` and `hasRegExpGroups`). */
type Pattern = InstanceType<Typed> & { readonly hasRegExpGroups: boolean };
interface Polyfill {
  new (input?: Input, baseURL?: string, options?: unknown): Pattern;
  compareComponent(component: string, left: Pattern, right: Pattern): number;
}
const polyfill = () => unit('urlpattern').URLPattern as unknown as Polyfill;

export class URLPattern {
  readonly #pattern: Pattern;
  constructor(input: Input = {}, baseURL?: string, options?: unknown) {
    this.#pattern = new (polyfill())(input, baseURL, options);
  }
  static compareComponent(component: string, left: URLPattern, right: URLPattern): number {
    return polyfill().compareComponent(component, left.#pattern, right.#pattern);
  }
  get [Symbol.toStringTag](): string {
    return 'URLPattern';
  }
  test(input: Input = {}, baseURL?: string): boolean {
    return this.#pattern.test(input, baseURL);
  }
  exec(input: Input = {}, baseURL?: string): ReturnType<Pattern['exec']> {
    return this.#pattern.exec(input, baseURL);
  }
  get protocol(): string {
    return this.#pattern.protocol;
  }
  get username(): string {
    return this.#pattern.username;
  }
  get password(): string {
    return this.#pattern.password;
  }
  get hostname(): string {
    return this.#pattern.hostname;
  }
  get port(): string {
    return this.#pattern.port;
  }
  get pathname(): string {
    return this.#pattern.pathname;
  }
  get search(): string {
    return this.#pattern.search;
  }
  get hash(): string {
    return this.#pattern.hash;
  }
  get hasRegExpGroups(): boolean {
    return this.#pattern.hasRegExpGroups;
  }
}
