/**
 * The dashboard in a real browser (Debian's chromium driven by playwright-core) against a real mesh:
 * sign in, see a worker deployed through the CLI appear, watch its log lines arrive, workflow instances and their
 * steps, pause and resume from the page, audit verify, a quarantine released by its button, sign out;
 * a version diff and a rollback by keyboard that changes what the route serves, health and drift, an
 * instance found by id whose timeline fills in without a reload after an event sent from the page.
 * Hostile values (a log line, a step's error, a quarantine reason) must show as text with no script
 * run; a tenant-bound token sees no other tenant; a forged cross-site form is refused; the page makes
 * no request off the admin port and logs no console error (a CSP violation would be one).
 *
 * CORDON_DASHBOARD_SCREENSHOTS=<dir> saves a screenshot of each page there (docs/dashboard/).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';
import { receiver, type Receiver } from './helpers/otlp.ts';

/** The browser: $CORDON_CHROMIUM, else chromium on the PATH. */
function findChromium(): string | undefined {
  if (process.env.CORDON_CHROMIUM) return existsSync(process.env.CORDON_CHROMIUM) ? process.env.CORDON_CHROMIUM : undefined;
  for (const name of ['chromium', 'chromium-browser']) {
    try {
      return execFileSync('which', [name], { encoding: 'utf8' }).trim() || undefined;
    } catch {
      // not this one
    }
  }
  return undefined;
}

type Playwright = typeof import('playwright-core');
const playwright = (await import('playwright-core').catch(() => undefined)) as Playwright | undefined;
const chromiumPath = findChromium();
const missing = !playwright
  ? 'playwright-core is not installed (npm install)'
  : !chromiumPath
    ? 'no chromium found (apt-get install chromium, or set CORDON_CHROMIUM)'
    : false;
if (missing && process.env.CORDON_REQUIRE_ALL === '1') {
  test('a browser is required (CORDON_REQUIRE_ALL=1)', () => assert.fail(missing));
}

const JAEGER = 'http://127.0.0.1:16686';
const TRACE_LINK = new RegExp(`^${JAEGER}/trace/([0-9a-f]{32})$`);

/** Rendered as markup it would run (or at least load an image); rendered as text it is just these characters. */
const XSS = `<img src=x onerror="document.title='pwned';alert(1)">`;
const WORKER = `
import { WorkflowEntrypoint } from 'cloudflare:workers';
import { NonRetryableError } from 'cloudflare:workflows';
const XSS = ${JSON.stringify(XSS)};
export class Flow extends WorkflowEntrypoint {
  async run(event, step) {
    const first = await step.do('first', async () => ({ n: 1 }));
    await step.sleep('nap', event.payload?.napMs ?? 20);
    if (event.payload?.hostile) await step.do('hostile', async () => { throw new NonRetryableError(XSS); });
    if (event.payload?.approval) {
      const approval = await step.waitForEvent('approval', { type: 'approve', timeout: '1 hour' });
      await step.do('after', async () => approval.payload);
    }
    return { n: first.n };
  }
}
export default { async fetch(req, env) { console.log(XSS); return new Response(env.GREETING ?? 'ok'); } };
`;

describe('dashboard in a browser', { skip: missing }, () => {
  let mesh: TestMesh;
  let root: string;
  let project: string;
  let evil: Server;
  let evilUrl: string;
  let browser: Awaited<ReturnType<Playwright['chromium']['launch']>>;
  const shots = process.env.CORDON_DASHBOARD_SCREENSHOTS;
  let otlp: Receiver;

  const bearer = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(`${mesh.adminUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${root}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: r.status, body: (await r.json()) as Record<string, unknown> };
  };
  const instance = async (id: string) => (await bearer('GET', `/v1/workflows/default/flow/instances/${id}`)).body as { status: string };
  const createInstance = async (params: object) => {
    const r = await mesh.cli(['workflows', 'create', 'flow', '--params', JSON.stringify(params)]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  };

  /** A fresh browser context and page, with every request off the admin port refused and recorded, and console errors collected. */
  const open = async () => {
    const context = await browser.newContext();
    const offsite: string[] = [];
    const errors: string[] = [];
    const dialogs: string[] = [];
    await context.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith(`${mesh.adminUrl}/`) || url.startsWith(`${evilUrl}/`)) return route.continue();
      offsite.push(url);
      return route.abort();
    });
    const page = await context.newPage();
    page.on('console', (m) => void (m.type() === 'error' && errors.push(m.text())));
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    return { context, page, offsite, errors, dialogs };
  };
  type Open = Awaited<ReturnType<typeof open>>;
  const signIn = async ({ page }: Open, token: string) => {
    await page.goto(`${mesh.adminUrl}/`);
    assert.equal(new URL(page.url()).pathname, '/dashboard/sign-in');
    await page.fill('#token', token);
    await Promise.all([page.waitForURL(`${mesh.adminUrl}/`), page.click('button[type=submit]')]);
    await page.locator('#main[data-drawn]').waitFor();
  };
  /** Opens a page afresh (a whole load: a new hash alone would redraw nothing when it is the same) and waits until it is drawn. */
  const go = async ({ page }: Open, hash: string) => {
    await page.goto('about:blank');
    await page.goto(`${mesh.adminUrl}/${hash}`);
    await page.locator('#main[data-drawn]').waitFor();
  };
  /** Reloads `hash` until `text` shows in the page (the pages draw what the API says when opened). */
  const until = ({ page }: Open, hash: string, text: string) =>
    waitFor(
      `"${text}" on ${hash}`,
      async () => {
        await go({ page } as Open, hash);
        return (await page.locator('#main').innerText()).includes(text) || undefined;
      },
      20_000,
      250,
    );
  const shot = async ({ page }: Open, name: string) => {
    if (shots) await page.screenshot({ path: join(shots, `${name}.png`), fullPage: false });
  };
  const noScriptRan = async (o: Open) => {
    assert.equal(await o.page.locator('#main img').count(), 0, 'no element was made from a value');
    assert.notEqual(await o.page.title(), 'pwned');
    assert.deepEqual(o.dialogs, []);
  };

  before(async () => {
    otlp = await receiver();
    // Traces exported to a receiver here; the pages link them to a Jaeger UI that need not exist (no link is followed).
    mesh = await startTestMesh({ OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, CORDON_JAEGER_URL: JAEGER });
    root = readFileSync(join(mesh.dataDir, 'admin.token'), 'utf8').trim();
    project = mkdtempSync(join(tmpdir(), 'cordon-dash-'));
    writeFileSync(join(project, 'index.js'), WORKER);
    writeFileSync(
      join(project, 'wrangler.jsonc'),
      JSON.stringify({ name: 'flow', main: 'index.js', routes: ['*/flow*'], workflows: [{ name: 'flow', binding: 'FLOW', class_name: 'Flow' }] }),
    );
    // Another origin on the same site (127.0.0.1, another port): the cookie goes with its requests, the CSRF token does not.
    const evilPort = await freePort();
    evilUrl = `http://127.0.0.1:${evilPort}`;
    evil = createServer((_req, res) => {
      res.setHeader('content-type', 'text/html');
      res.end(
        `<form id=f method=post action="${mesh.adminUrl}/v1/tenants/victim/quarantine" enctype="text/plain"><input name='{"reason":"forged","x":"' value='"}'></form><script>document.getElementById('f').submit()</script>`,
      );
    });
    await new Promise<void>((r) => evil.listen(evilPort, '127.0.0.1', () => r()));
    browser = await playwright!.chromium.launch({ executablePath: chromiumPath, headless: true, chromiumSandbox: false });
  });
  after(async () => {
    await browser?.close();
    evil?.close();
    await mesh?.stop();
    otlp?.close();
    if (project) rmSync(project, { recursive: true, force: true });
  });

  test('an operator signs in, watches a deploy, a log line, workflow steps, pauses and resumes, checks audit, releases a quarantine, signs out', async () => {
    const o = await open();
    const { page } = o;
    await signIn(o, root);
    assert.match(await page.locator('#who').innerText(), /root \(all tenants\)/);
    // The session is an HttpOnly cookie: nothing for script to read, nothing in storage.
    assert.deepEqual(await page.evaluate('[document.cookie, localStorage.length, sessionStorage.length]'), ['', 0, 0]);
    assert.match(await page.locator('#main').innerText(), /No workers deployed yet/);

    const deployed = await mesh.cli(['deploy', '--config', join(project, 'wrangler.jsonc')]);
    assert.equal(deployed.code, 0, deployed.stderr);
    await until(o, '#/workers', 'flow');
    await shot(o, 'workers');

    // Log lines arrive on the open page as they are logged; one that is markup shows as text.
    await go(o, '#/worker/default/flow');
    await waitFor('the flow worker to serve', async () => (await fetch(`${mesh.httpUrl}/flow`)).status === 200 || undefined);
    await page.locator('#log li', { hasText: XSS }).first().waitFor();
    const seen = await page.locator('#log li').count();
    assert.equal((await fetch(`${mesh.httpUrl}/flow`)).status, 200);
    await page.locator('#log li').nth(seen).waitFor();
    assert.equal(await page.locator('#log li', { hasText: XSS }).count(), seen + 1);
    await noScriptRan(o);
    // Filtered by level: these are console.log lines, none is an error.
    await page.selectOption('#level-filter', 'error');
    assert.equal(await page.locator('#log li:visible').count(), 0);
    await page.selectOption('#level-filter', 'log');
    assert.equal(await page.locator('#log li:visible').count(), seen + 1);
    // A line logged during a request links to that request's trace, which ingress exported.
    const logged = TRACE_LINK.exec((await page.locator('#log li a.trace').last().getAttribute('href')) ?? '')?.[1];
    assert.ok(logged, 'the log line links to its trace in Jaeger');
    await waitFor('the request’s trace', () => otlp.spans.some((s) => s.traceId === logged && s.service === 'cordon-ingress') || undefined);
    // The charts: what ingress reported (every few seconds) for these requests, drawn for the last hour.
    const served = async () =>
      ((await bearer('GET', '/v1/workers/default/flow/metrics')).body.minutes as { requests: number }[]).reduce((a, m) => a + m.requests, 0);
    await waitFor('ingress to report the flow worker’s requests', async () => ((await served()) >= 2 ? true : undefined), 30_000);
    await go(o, '#/worker/default/flow');
    await page.locator('#charts figure').nth(2).waitFor();
    assert.deepEqual(
      await page
        .locator('#charts figcaption')
        .allInnerTexts()
        .then((t) => t.map((c) => c.split('\n')[0])),
      ['Requests per minute', 'Error rate (5xx)', 'p99 latency'],
    );
    assert.doesNotMatch(await page.locator('#chart-requests figcaption').innerText(), /max 0$/, 'the requests chart shows the requests');
    assert.ok((await page.locator('#chart-requests polyline').count()) > 0);
    await page.locator('#log li').nth(seen).waitFor();
    await shot(o, 'worker');

    // Workflows: an instance that completes, one whose step throws markup.
    const ok = await createInstance({});
    const hostile = await createInstance({ hostile: true });
    await waitFor(
      'both instances to finish',
      async () => ((await instance(ok)).status === 'complete' && (await instance(hostile)).status === 'errored') || undefined,
    );
    await until(o, '#/workflows', hostile);
    assert.match(await page.locator('#main').innerText(), new RegExp(ok));
    await shot(o, 'workflows');
    await page.selectOption('#status-filter', 'errored');
    await page.waitForURL(/#\/workflows\/errored$/);
    await page.locator(`text=${ok}`).waitFor({ state: 'detached' });
    const filtered = await page.locator('#main').innerText();
    assert.ok(filtered.includes(hostile) && !filtered.includes(ok), filtered);
    await Promise.all([page.waitForURL(new RegExp(`#/instance/default/flow/${hostile}$`)), page.click(`text=${hostile}`)]);
    await page.locator('#instance-status').waitFor();
    assert.match(await page.locator('#main .error').innerText(), new RegExp(`NonRetryableError: ${XSS.replace(/[()]/g, '\\$&')}`));
    assert.equal(await page.locator('.timeline li').count(), 3);
    assert.deepEqual(await page.locator('#main tbody tr td:first-child').allInnerTexts(), ['first', 'nap', 'hostile']);
    await noScriptRan(o);
    await go(o, `#/instance/default/flow/${ok}`);
    assert.equal(await page.locator('#instance-status').innerText(), 'complete');
    assert.deepEqual(await page.locator('#main tbody tr td:first-child').allInnerTexts(), ['first', 'nap']);
    // Its one trace, in Jaeger: the id the supervisor's spans for it carry.
    const traced = TRACE_LINK.exec((await page.locator('a.trace').getAttribute('href')) ?? '')?.[1];
    assert.ok(traced, 'the instance links to its trace in Jaeger');
    await waitFor('the instance’s trace', () => otlp.spans.some((s) => s.traceId === traced && s.attrs['cordon.workflow.instance'] === ok) || undefined);
    await shot(o, 'instance');

    // Pause and resume from the page (each a POST carrying the session's CSRF token).
    const sleeper = await createInstance({ napMs: 600_000 });
    await waitFor('the sleeper to sleep', async () => (await instance(sleeper)).status === 'waiting' || undefined);
    await go(o, `#/instance/default/flow/${sleeper}`);
    await page.click('button.action-pause');
    await page.locator('#instance-status', { hasText: 'paused' }).waitFor();
    assert.equal((await instance(sleeper)).status, 'paused');
    await page.click('button.action-resume');
    // Resumed, it may be queued or running for a moment before it sleeps again.
    await page.locator('#instance-status').filter({ hasNotText: 'paused' }).waitFor();
    await waitFor('the sleeper to sleep again', async () => (await instance(sleeper)).status === 'waiting' || undefined);

    await go(o, '#/audit');
    assert.match(await page.locator('#audit-verify').innerText(), /^Chain OK: \d+ entries verify\.$/);
    await shot(o, 'audit');

    // A quarantine whose reason is markup, released by its button.
    assert.equal((await bearer('POST', '/v1/tenants/held/quarantine', { reason: XSS })).status, 201);
    await until(o, '#/quarantine', XSS);
    await noScriptRan(o);
    await shot(o, 'quarantine');
    await page.click('text=Release tenant held');
    await page.locator('#main', { hasText: 'No tenant is quarantined.' }).waitFor();
    assert.deepEqual((await bearer('GET', '/v1/quarantine')).body.tenants, []);

    await Promise.all([page.waitForURL(`${mesh.adminUrl}/dashboard/sign-in`), page.click('#sign-out')]);
    await page.goto(`${mesh.adminUrl}/#/workers`);
    assert.equal(new URL(page.url()).pathname, '/dashboard/sign-in');

    assert.deepEqual(o.offsite, [], 'no request left the admin port');
    assert.deepEqual(o.errors, [], 'no console error (a CSP violation is one)');
    await o.context.close();
  });

  test('versions: a diff and a rollback by keyboard change what the route serves; health and drift OK; an instance found by id fills in live after an event', async () => {
    const o = await open();
    const { page } = o;
    await signIn(o, root);
    const serves = async () => (await fetch(`${mesh.httpUrl}/flow`)).text();
    const versionOf = async () => (await bearer('GET', '/v1/workers/default/flow')).body.version as string;
    const v1 = await versionOf();
    assert.equal(await serves(), 'ok');
    writeFileSync(
      join(project, 'wrangler.jsonc'),
      JSON.stringify({
        name: 'flow',
        main: 'index.js',
        routes: ['*/flow*'],
        vars: { GREETING: 'v2' },
        workflows: [{ name: 'flow', binding: 'FLOW', class_name: 'Flow' }],
      }),
    );
    const deployed = await mesh.cli(['deploy', '--config', join(project, 'wrangler.jsonc')]);
    assert.equal(deployed.code, 0, deployed.stderr);
    await waitFor('v2 to serve', async () => (await serves()) === 'v2' || undefined);
    const v2 = await versionOf();

    await go(o, '#/worker/default/flow');
    assert.equal(await page.locator('#worker-version').innerText(), v2);
    assert.equal(await page.locator('button.rollback').count(), 1, 'the current version has no rollback button');
    await page.click('.diff summary');
    const diff = await page.locator('.diff').innerText();
    assert.match(diff, /vars\s+—\s+GREETING/, diff);
    await shot(o, 'versions');
    // By keyboard: focus the button, Enter opens the confirmation with its own button focused, Enter rolls back.
    await page.focus('button.rollback');
    await page.keyboard.press('Enter');
    assert.equal(await page.evaluate('document.activeElement?.className'), 'rollback-confirm');
    assert.equal(await versionOf(), v2, 'nothing happens before the confirmation');
    await page.keyboard.press('Enter');
    await page.locator('#worker-version', { hasText: v1 }).waitFor();
    assert.equal(await versionOf(), v1);
    await waitFor('v1 to serve again', async () => (await serves()) === 'ok' || undefined);

    await until(o, '#/health', 'No drift');
    assert.match(await page.locator('#health-verdict').innerText(), /^OK: all \d+ services are up\.$/);
    assert.match(await page.locator('#drift-verdict').innerText(), /^No drift/);
    await shot(o, 'health');

    // Found by id from the workflows page (an unknown id says so); then the event is sent from the page and the timeline fills in with no reload.
    const waiting = await createInstance({ approval: true });
    await go(o, '#/workflows');
    await page.fill('#instance-search', 'no-such-instance');
    await page.keyboard.press('Enter');
    await page.locator('#search-result', { hasText: 'No instance no-such-instance' }).waitFor();
    await page.fill('#instance-search', waiting);
    await Promise.all([page.waitForURL(new RegExp(`#/instance/default/flow/${waiting}$`)), page.keyboard.press('Enter')]);
    await page.evaluate('window.sameDocument = true');
    await page.locator('#instance-status', { hasText: 'waiting' }).waitFor();
    await page.locator('#main tbody tr td:first-child', { hasText: 'approval' }).waitFor();
    await page.fill('#event-type', 'approve');
    await page.fill('#event-payload', '{"approved": true}');
    await page.focus('#send-event');
    await page.keyboard.press('Enter');
    await page.locator('#instance-status', { hasText: 'complete' }).waitFor();
    assert.deepEqual(await page.locator('#main tbody tr td:first-child').allInnerTexts(), ['first', 'nap', 'approval', 'after']);
    assert.equal(await page.locator('.timeline li').count(), 4);
    assert.equal(await page.evaluate('window.sameDocument'), true, 'no reload');
    await shot(o, 'instance-live');

    // Polling ends with the page: an instance that sleeps is polled while shown, not once the page is left.
    const sleeper = await createInstance({ napMs: 600_000 });
    await waitFor('the sleeper to sleep', async () => (await instance(sleeper)).status === 'waiting' || undefined);
    await go(o, `#/instance/default/flow/${sleeper}`);
    // Left by its link, in the same document: only the page's own ending can stop the loop.
    const polls: string[] = [];
    page.on('request', (r) => void (r.url().endsWith(`/instances/${sleeper}`) && polls.push(r.url())));
    await waitFor('the open instance page to poll', async () => polls.length >= 2 || undefined, 10_000, 100);
    await Promise.all([page.locator('#main[data-drawn="workers"]').waitFor(), page.click('nav a[href="#/workers"]')]);
    const afterLeaving = polls.length;
    await new Promise((r) => setTimeout(r, 2500));
    assert.ok(polls.length <= afterLeaving + 1, `polled ${polls.length - afterLeaving} times after the page was left`);

    assert.deepEqual(o.offsite, []);
    assert.deepEqual(o.errors, []);
    await o.context.close();
  });

  test('a tenant-bound token sees only its tenant; a forged cross-site form is refused', async () => {
    const token = (await mesh.cli(['tokens', 'create', '--scope', 'read,workflows', '--tenant', 'other'])).stdout.trim();
    const o = await open();
    const { page } = o;
    await signIn(o, token);
    assert.match(await page.locator('#who').innerText(), /tenant other/);
    assert.match(await page.locator('#main').innerText(), /No workers deployed yet/);
    assert.equal(await page.locator('nav a', { hasText: 'Audit' }).count(), 0);
    await go(o, '#/workflows');
    assert.match(await page.locator('#main').innerText(), /No workflow instances yet/);
    // Asked for by hand, another tenant's instance list is the API's 403.
    await go(o, '#/worker/default/flow');
    assert.match(await page.locator('#main .error').innerText(), /bound to tenant other/);
    // Drift is the operator's: a note, not an error.
    await go(o, '#/health');
    assert.match(await page.locator('#drift-note').innerText(), /operator only/);
    assert.equal(await page.locator('#main .error').count(), 0);
    const errorsBefore = o.errors.length;

    // An operator signed in visits a page of another origin that posts a form to the admin API.
    const operator = await open();
    await signIn(operator, root);
    const [answer] = await Promise.all([
      operator.page.waitForResponse((r) => r.url().includes('/v1/tenants/victim/quarantine')),
      operator.page.goto(`${evilUrl}/`),
    ]);
    assert.equal(answer.status(), 403);
    assert.deepEqual((await bearer('GET', '/v1/quarantine')).body.tenants, [], 'nothing was quarantined');
    // Bystander: the operator's session still works.
    await go(operator, '#/workers');
    assert.match(await operator.page.locator('#main').innerText(), /flow/);

    assert.deepEqual([...o.offsite, ...operator.offsite], []);
    assert.equal(o.errors.length, errorsBefore);
    await o.context.close();
    await operator.context.close();
  });
});
