/**
 * Real browsers for the dashboard's tests, driven by puppeteer-core: Debian's `chromium` over the
 * DevTools protocol and Debian's `firefox-esr` over WebDriver BiDi (stock Firefox speaks no other
 * automation protocol; Playwright drives only its own patched Firefox). `Ui` is what a test step
 * does on a page, written once for both.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Browser, BrowserContext, HTTPRequest, Page } from 'puppeteer-core';

type Puppeteer = typeof import('puppeteer-core').default;
const puppeteer = ((await import('puppeteer-core').catch(() => undefined)) as { default: Puppeteer } | undefined)?.default;

/** `$<env>` if set (and there), else the first of `names` on the PATH. */
function findBinary(env: string, names: string[]): string | undefined {
  const given = process.env[env];
  if (given) return existsSync(given) ? given : undefined;
  for (const name of names) {
    try {
      return execFileSync('which', [name], { encoding: 'utf8' }).trim() || undefined;
    } catch {
      // not this one
    }
  }
  return undefined;
}

export interface BrowserKind {
  name: 'chromium' | 'firefox';
  /** Why this browser cannot run here, or false. */
  missing: string | false;
  launch(): Promise<Browser>;
}

const VIEWPORT = { width: 1280, height: 720 };

function kind(name: BrowserKind['name'], env: string, binaries: string[], install: string): BrowserKind {
  const path = findBinary(env, binaries);
  const missing = !puppeteer ? 'puppeteer-core is not installed (npm install)' : !path ? `no ${name} found (apt-get install ${install}, or set ${env})` : false;
  return {
    name,
    missing,
    launch: () =>
      name === 'chromium'
        ? puppeteer!.launch({ browser: 'chrome', executablePath: path, headless: true, args: ['--no-sandbox'], defaultViewport: VIEWPORT })
        : puppeteer!.launch({ browser: 'firefox', executablePath: path, headless: true, defaultViewport: VIEWPORT }),
  };
}

export const BROWSERS: BrowserKind[] = [
  kind('chromium', 'CORDON_CHROMIUM', ['chromium', 'chromium-browser'], 'chromium'),
  kind('firefox', 'CORDON_FIREFOX', ['firefox-esr', 'firefox'], 'firefox-esr'),
];

/**
 * One page in its own browser context (its own cookies): every request off `allowed` origins refused
 * and recorded, console errors, uncaught errors and dialogs (dismissed) collected.
 */
export async function openPage(browser: Browser, allowed: string[]): Promise<Ui> {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  const ui = new Ui(context, page);
  await page.setRequestInterception(true);
  page.on('request', (r) => {
    ui.pending.set(r, Date.now());
    if (r.isInterceptResolutionHandled()) return;
    const url = r.url();
    if (ui.unreachable.some((prefix) => url.startsWith(prefix))) return void r.abort('connectionrefused');
    // data: URLs go nowhere (Firefox loads a font of its own as one).
    if (allowed.some((origin) => url.startsWith(`${origin}/`)) || url === 'about:blank' || url.startsWith('data:')) return void r.continue();
    ui.offsite.push(url);
    void r.abort();
  });
  page.on('requestfinished', (r) => void ui.pending.delete(r));
  page.on('requestfailed', (r) => void ui.pending.delete(r));
  page.on('console', (m) => void (m.type() === 'error' && ui.errors.push(m.text())));
  page.on('pageerror', (e) => ui.errors.push((e as Error).message));
  page.on('dialog', (d) => {
    ui.dialogs.push(d.message());
    void d.dismiss();
  });
  return ui;
}

const TIMEOUT_MS = 20_000;
/** What the functions evaluated in the page see of an element (this program is typed without the DOM; a cast, so nothing outside the function is needed there). */
type Shown = { innerText: string; getAttribute(name: string): string | null; checkVisibility(): boolean; value: string };
/** A JavaScript expression evaluated in the page, with `values` inlined as JSON. */
const js = (strings: TemplateStringsArray, ...values: unknown[]) => strings.reduce((out, part, i) => out + JSON.stringify(values[i - 1]) + part);

/** What a step does on a page: every read waits for its element first, as a user would. */
export class Ui {
  readonly offsite: string[] = [];
  readonly errors: string[] = [];
  readonly dialogs: string[] = [];
  /** Addresses a step makes unreachable (the request fails as a refused connection would). */
  readonly unreachable: string[] = [];
  /** Requests the page made that have neither finished nor failed, and since when: what a wait that timed out names. */
  readonly pending = new Map<HTTPRequest, number>();
  readonly context: BrowserContext;
  readonly page: Page;
  constructor(context: BrowserContext, page: Page) {
    this.context = context;
    this.page = page;
  }

  async goto(url: string): Promise<void> {
    await this.page.goto(url);
  }
  url(): string {
    return this.page.url();
  }
  async title(): Promise<string> {
    return this.page.title();
  }
  async waitFor(selector: string): Promise<void> {
    await this.page.waitForSelector(selector, { timeout: TIMEOUT_MS }).catch((e: Error) => this.#timedOut(e));
  }
  /** A wait's failure with what the page was doing: its address, requests still in flight, errors it logged. */
  #timedOut(e: Error): never {
    const now = Date.now();
    const inFlight = [...this.pending].map(([r, since]) => `${r.method()} ${r.url()} (${now - since} ms)`);
    throw new Error(`${e.message} on ${this.page.url()}; in flight: ${inFlight.join(', ') || 'nothing'}; page errors: ${this.errors.join(' | ') || 'none'}`, {
      cause: e,
    });
  }
  /** The text of the first element matching, once there is one. */
  async text(selector: string): Promise<string> {
    await this.waitFor(selector);
    return this.page.$eval(selector, (e) => (e as unknown as Shown).innerText);
  }
  async texts(selector: string): Promise<string[]> {
    return this.page.$$eval(selector, (es) => es.map((e) => (e as unknown as Shown).innerText));
  }
  async attr(selector: string, name: string): Promise<string | null> {
    await this.waitFor(selector);
    return this.page.$eval(selector, (e, n) => (e as unknown as Shown).getAttribute(n), name);
  }
  /** How many match (`visible`: only those rendered). */
  async count(selector: string, visible = false): Promise<number> {
    return this.page.$$eval(selector, (es, v) => es.filter((e) => !v || (e as unknown as Shown).checkVisibility()).length, visible);
  }
  async countWithText(selector: string, text: string): Promise<number> {
    return this.page.$$eval(selector, (es, t) => es.filter((e) => (e as unknown as Shown).innerText.includes(t)).length, text);
  }
  /** Until an element matching shows `text` (or, with `absent`, until none does). */
  async waitText(selector: string, text: string, absent = false): Promise<void> {
    await this.#until(js`[...document.querySelectorAll(${selector})].some((e) => e.innerText.includes(${text})) !== ${absent}`);
  }
  /** Until the first element matching is there and no longer shows `text`. */
  async waitNotText(selector: string, text: string): Promise<void> {
    await this.#until(js`((e) => e !== null && !e.innerText.includes(${text}))(document.querySelector(${selector}))`);
  }
  /** Until at least `n` elements match. */
  async waitCount(selector: string, n: number): Promise<void> {
    await this.#until(js`document.querySelectorAll(${selector}).length >= ${n}`);
  }
  async waitUrl(pattern: RegExp): Promise<void> {
    await this.#until(js`new RegExp(${pattern.source}).test(location.href)`);
  }
  async #until(expression: string): Promise<void> {
    await this.page.waitForFunction(expression, { timeout: TIMEOUT_MS, polling: 100 }).catch((e: Error) => this.#timedOut(e));
  }
  async click(selector: string): Promise<void> {
    await this.waitFor(selector);
    await this.page.click(selector);
  }
  /** Clicks the innermost element showing exactly this text (a link or button label). */
  async clickText(text: string): Promise<void> {
    await this.click(`::-p-text(${JSON.stringify(text)})`);
  }
  /** Clicks, and waits for the document that click loads. */
  async clickToLoad(selector: string): Promise<void> {
    await this.waitFor(selector);
    await Promise.all([this.page.waitForNavigation({ timeout: TIMEOUT_MS }), this.page.click(selector)]);
  }
  async fill(selector: string, value: string): Promise<void> {
    await this.waitFor(selector);
    await this.page.$eval(selector, (e) => void ((e as unknown as Shown).value = ''));
    await this.page.type(selector, value);
  }
  async select(selector: string, value: string): Promise<void> {
    await this.waitFor(selector);
    await this.page.select(selector, value);
  }
  async focus(selector: string): Promise<void> {
    await this.waitFor(selector);
    await this.page.focus(selector);
  }
  async press(key: 'Enter' | 'Tab'): Promise<void> {
    await this.page.keyboard.press(key);
  }
  async evaluate<T>(expression: string): Promise<T> {
    return this.page.evaluate(expression) as Promise<T>;
  }
  async screenshot(path: string): Promise<void> {
    await this.page.screenshot({ path: path as `${string}.png` });
  }
  async close(): Promise<void> {
    await this.context.close();
  }
}
