/**
 * The dashboard in real browsers against a real mesh, the same steps in each: Debian's chromium and
 * Debian's firefox-esr, both driven by puppeteer-core (test/helpers/browser.ts). Sign in, see a
 * worker deployed through the CLI appear, watch its log lines arrive, its traffic charts, workflow
 * instances and their steps, pause and resume from the page, audit verify, a quarantine released by
 * its button, sign out; a version diff and a rollback by keyboard that changes what the route serves,
 * health and drift, an instance found by id whose timeline fills in without a reload after an event
 * sent from the page; links to traces in Jaeger from a log line and an instance.
 * Hostile values (a log line, a step's error, a quarantine reason) must show as text with no script
 * run; a tenant-bound token sees no other tenant; a forged cross-site form is refused; the page makes
 * no request off the admin port and logs no console error (a CSP violation would be one).
 *
 * CORDON_DASHBOARD_SCREENSHOTS=<dir> saves a screenshot of each page there (docs/dashboard/), from chromium.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'puppeteer-core';
import { freePort, startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';
import { receiver, type Receiver } from './helpers/otlp.ts';
import { BROWSERS, openPage, type Ui } from './helpers/browser.ts';

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

const requireAll = process.env.CORDON_REQUIRE_ALL === '1';

for (const kind of BROWSERS) {
  if (kind.missing && requireAll) {
    test(`${kind.name} is required (CORDON_REQUIRE_ALL=1)`, () => assert.fail(kind.missing as string));
    continue;
  }
  describe(`dashboard in ${kind.name}`, { skip: kind.missing }, () => dashboardSteps(kind.launch, kind.name === 'chromium'));
}

/** Every step, once, for whichever browser `launch` starts; screenshots from one of them only. */
function dashboardSteps(launch: () => Promise<Browser>, takesScreenshots: boolean): void {
  let mesh: TestMesh;
  let root: string;
  let project: string;
  let evil: Server;
  let evilUrl: string;
  let browser: Browser;
  const shots = takesScreenshots ? process.env.CORDON_DASHBOARD_SCREENSHOTS : undefined;
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
  const open = () => openPage(browser, [mesh.adminUrl, evilUrl]);
  const signIn = async (ui: Ui, token: string) => {
    await ui.goto(`${mesh.adminUrl}/`);
    assert.equal(new URL(ui.url()).pathname, '/dashboard/sign-in');
    await ui.fill('#token', token);
    await ui.clickToLoad('button[type=submit]');
    assert.equal(ui.url(), `${mesh.adminUrl}/`);
    await ui.waitFor('#main[data-drawn]');
  };
  /** Opens a page afresh (a whole load: a new hash alone would redraw nothing when it is the same) and waits until it is drawn. */
  const go = async (ui: Ui, hash: string) => {
    await ui.goto('about:blank');
    await ui.goto(`${mesh.adminUrl}/${hash}`);
    await ui.waitFor('#main[data-drawn]');
  };
  /** Reloads `hash` until `text` shows in the page (the pages draw what the API says when opened). */
  const until = (ui: Ui, hash: string, text: string) =>
    waitFor(
      `"${text}" on ${hash}`,
      async () => {
        await go(ui, hash);
        return (await ui.text('#main')).includes(text) || undefined;
      },
      20_000,
      250,
    );
  const shot = async (ui: Ui, name: string) => {
    if (shots) await ui.screenshot(join(shots, `${name}.png`));
  };
  const noScriptRan = async (o: Ui) => {
    assert.equal(await o.count('#main img'), 0, 'no element was made from a value');
    assert.notEqual(await o.title(), 'pwned');
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
    browser = await launch();
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
    await signIn(o, root);
    assert.match(await o.text('#who'), /root \(all tenants\)/);
    // The session is an HttpOnly cookie: nothing for script to read, nothing in storage.
    assert.deepEqual(await o.evaluate('[document.cookie, localStorage.length, sessionStorage.length]'), ['', 0, 0]);
    assert.match(await o.text('#main'), /No workers deployed yet/);

    const deployed = await mesh.cli(['deploy', '--config', join(project, 'wrangler.jsonc')]);
    assert.equal(deployed.code, 0, deployed.stderr);
    await until(o, '#/workers', 'flow');
    await shot(o, 'workers');

    // Log lines arrive on the open page as they are logged; one that is markup shows as text.
    await go(o, '#/worker/default/flow');
    await waitFor('the flow worker to serve', async () => (await fetch(`${mesh.httpUrl}/flow`)).status === 200 || undefined);
    await o.waitText('#log li', XSS);
    const seen = await o.count('#log li');
    assert.equal((await fetch(`${mesh.httpUrl}/flow`)).status, 200);
    await o.waitCount('#log li', seen + 1);
    assert.equal(await o.countWithText('#log li', XSS), seen + 1);
    await noScriptRan(o);
    // Filtered by level: these are console.log lines, none is an error.
    await o.select('#level-filter', 'error');
    assert.equal(await o.count('#log li', true), 0);
    await o.select('#level-filter', 'log');
    assert.equal(await o.count('#log li', true), seen + 1);
    // A line logged during a request links to that request's trace, which ingress exported.
    const logged = TRACE_LINK.exec((await o.attr('#log li:last-child a.trace', 'href')) ?? '')?.[1];
    assert.ok(logged, 'the log line links to its trace in Jaeger');
    await waitFor('the request’s trace', () => otlp.spans.some((s) => s.traceId === logged && s.service === 'cordon-ingress') || undefined);
    // The charts: what ingress reported (every few seconds) for these requests, drawn for the last hour.
    const served = async () =>
      ((await bearer('GET', '/v1/workers/default/flow/metrics')).body.minutes as { requests: number }[]).reduce((a, m) => a + m.requests, 0);
    await waitFor('ingress to report the flow worker’s requests', async () => ((await served()) >= 2 ? true : undefined), 30_000);
    await go(o, '#/worker/default/flow');
    await o.waitCount('#charts figure', 3);
    assert.deepEqual(
      (await o.texts('#charts figcaption')).map((c) => c.split('\n')[0]),
      ['Requests per minute', 'Error rate (5xx)', 'p99 latency'],
    );
    assert.doesNotMatch(await o.text('#chart-requests figcaption'), /max 0$/, 'the requests chart shows the requests');
    assert.ok((await o.count('#chart-requests polyline')) > 0);
    await o.waitCount('#log li', seen + 1);
    await shot(o, 'worker');

    // Workflows: an instance that completes, one whose step throws markup.
    const ok = await createInstance({});
    const hostile = await createInstance({ hostile: true });
    await waitFor(
      'both instances to finish',
      async () => ((await instance(ok)).status === 'complete' && (await instance(hostile)).status === 'errored') || undefined,
    );
    await until(o, '#/workflows', hostile);
    assert.match(await o.text('#main'), new RegExp(ok));
    await shot(o, 'workflows');
    await o.select('#status-filter', 'errored');
    await o.waitUrl(/#\/workflows\/errored$/);
    await o.waitText('#main', ok, true);
    const filtered = await o.text('#main');
    assert.ok(filtered.includes(hostile) && !filtered.includes(ok), filtered);
    await o.clickText(hostile);
    await o.waitUrl(new RegExp(`#/instance/default/flow/${hostile}$`));
    await o.waitFor('#instance-status');
    assert.match(await o.text('#main .error'), new RegExp(`NonRetryableError: ${XSS.replace(/[()]/g, '\\$&')}`));
    assert.equal(await o.count('.timeline li'), 3);
    assert.deepEqual(await o.texts('#main tbody tr td:first-child'), ['first', 'nap', 'hostile']);
    await noScriptRan(o);
    await go(o, `#/instance/default/flow/${ok}`);
    assert.equal(await o.text('#instance-status'), 'complete');
    assert.deepEqual(await o.texts('#main tbody tr td:first-child'), ['first', 'nap']);
    // Its one trace, in Jaeger: the id the supervisor's spans for it carry.
    const traced = TRACE_LINK.exec((await o.attr('a.trace', 'href')) ?? '')?.[1];
    assert.ok(traced, 'the instance links to its trace in Jaeger');
    await waitFor('the instance’s trace', () => otlp.spans.some((s) => s.traceId === traced && s.attrs['cordon.workflow.instance'] === ok) || undefined);
    await shot(o, 'instance');

    // Pause and resume from the page (each a POST carrying the session's CSRF token).
    const sleeper = await createInstance({ napMs: 600_000 });
    await waitFor('the sleeper to sleep', async () => (await instance(sleeper)).status === 'waiting' || undefined);
    await go(o, `#/instance/default/flow/${sleeper}`);
    await o.click('button.action-pause');
    await o.waitText('#instance-status', 'paused');
    assert.equal((await instance(sleeper)).status, 'paused');
    await o.click('button.action-resume');
    // Resumed, it may be queued or running for a moment before it sleeps again.
    await o.waitNotText('#instance-status', 'paused');
    await waitFor('the sleeper to sleep again', async () => (await instance(sleeper)).status === 'waiting' || undefined);

    await go(o, '#/audit');
    assert.match(await o.text('#audit-verify'), /^Chain OK: \d+ entries verify\.$/);
    await shot(o, 'audit');

    // A quarantine whose reason is markup, released by its button.
    assert.equal((await bearer('POST', '/v1/tenants/held/quarantine', { reason: XSS })).status, 201);
    await until(o, '#/quarantine', XSS);
    await noScriptRan(o);
    await shot(o, 'quarantine');
    await o.clickText('Release tenant held');
    await o.waitText('#main', 'No tenant is quarantined.');
    assert.deepEqual((await bearer('GET', '/v1/quarantine')).body.tenants, []);

    await o.clickToLoad('#sign-out');
    assert.equal(o.url(), `${mesh.adminUrl}/dashboard/sign-in`);
    await o.goto(`${mesh.adminUrl}/#/workers`);
    assert.equal(new URL(o.url()).pathname, '/dashboard/sign-in');

    assert.deepEqual(o.offsite, [], 'no request left the admin port');
    assert.deepEqual(o.errors, [], 'no console error (a CSP violation is one)');
    await o.close();
  });

  test('versions: a diff and a rollback by keyboard change what the route serves; health and drift OK; an instance found by id fills in live after an event', async () => {
    const o = await open();
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
    assert.equal(await o.text('#worker-version'), v2);
    assert.equal(await o.count('button.rollback'), 1, 'the current version has no rollback button');
    await o.click('.diff summary');
    const diff = await o.text('.diff');
    assert.match(diff, /vars\s+—\s+GREETING/, diff);
    await shot(o, 'versions');
    // By keyboard: focus the button, Enter opens the confirmation with its own button focused, Enter rolls back.
    await o.focus('button.rollback');
    await o.press('Enter');
    assert.equal(await o.evaluate('document.activeElement?.className'), 'rollback-confirm');
    assert.equal(await versionOf(), v2, 'nothing happens before the confirmation');
    await o.press('Enter');
    await o.waitText('#worker-version', v1);
    assert.equal(await versionOf(), v1);
    await waitFor('v1 to serve again', async () => (await serves()) === 'ok' || undefined);

    await until(o, '#/health', 'No drift');
    assert.match(await o.text('#health-verdict'), /^OK: all \d+ services are up\.$/);
    assert.match(await o.text('#drift-verdict'), /^No drift/);
    await shot(o, 'health');

    // Found by id from the workflows page (an unknown id says so); then the event is sent from the page and the timeline fills in with no reload.
    const waiting = await createInstance({ approval: true });
    await go(o, '#/workflows');
    await o.fill('#instance-search', 'no-such-instance');
    await o.press('Enter');
    await o.waitText('#search-result', 'No instance no-such-instance');
    await o.fill('#instance-search', waiting);
    await o.press('Enter');
    await o.waitUrl(new RegExp(`#/instance/default/flow/${waiting}$`));
    await o.evaluate('window.sameDocument = true');
    await o.waitText('#instance-status', 'waiting');
    await o.waitText('#main tbody tr td:first-child', 'approval');
    await o.fill('#event-type', 'approve');
    await o.fill('#event-payload', '{"approved": true}');
    await o.focus('#send-event');
    await o.press('Enter');
    await o.waitText('#instance-status', 'complete');
    assert.deepEqual(await o.texts('#main tbody tr td:first-child'), ['first', 'nap', 'approval', 'after']);
    assert.equal(await o.count('.timeline li'), 4);
    assert.equal(await o.evaluate('window.sameDocument'), true, 'no reload');
    await shot(o, 'instance-live');

    // Polling ends with the page: an instance that sleeps is polled while shown, not once the page is left.
    const sleeper = await createInstance({ napMs: 600_000 });
    await waitFor('the sleeper to sleep', async () => (await instance(sleeper)).status === 'waiting' || undefined);
    await go(o, `#/instance/default/flow/${sleeper}`);
    // Left by its link, in the same document: only the page's own ending can stop the loop.
    const polls: string[] = [];
    o.page.on('request', (r) => void (r.url().endsWith(`/instances/${sleeper}`) && polls.push(r.url())));
    await waitFor('the open instance page to poll', async () => polls.length >= 2 || undefined, 10_000, 100);
    await o.click('nav a[href="#/workers"]');
    await o.waitFor('#main[data-drawn="workers"]');
    const afterLeaving = polls.length;
    await new Promise((r) => setTimeout(r, 2500));
    assert.ok(polls.length <= afterLeaving + 1, `polled ${polls.length - afterLeaving} times after the page was left`);

    assert.deepEqual(o.offsite, []);
    assert.deepEqual(o.errors, []);
    await o.close();
  });

  test('a tenant-bound token sees only its tenant; a forged cross-site form is refused', async () => {
    const token = (await mesh.cli(['tokens', 'create', '--scope', 'read,workflows', '--tenant', 'other'])).stdout.trim();
    const o = await open();
    await signIn(o, token);
    assert.match(await o.text('#who'), /tenant other/);
    assert.match(await o.text('#main'), /No workers deployed yet/);
    assert.equal(await o.countWithText('nav a', 'Audit'), 0);
    await go(o, '#/workflows');
    assert.match(await o.text('#main'), /No workflow instances yet/);
    // Asked for by hand, another tenant's instance list is the API's 403.
    await go(o, '#/worker/default/flow');
    assert.match(await o.text('#main .error'), /bound to tenant other/);
    // Drift is the operator's: a note, not an error.
    await go(o, '#/health');
    assert.match(await o.text('#drift-note'), /operator only/);
    assert.equal(await o.count('#main .error'), 0);
    // The supervisor unreachable as a page loads: the page says so and what to do, it is not left blank; reachable again, it draws.
    o.unreachable.push(`${mesh.adminUrl}/dashboard/session`);
    await go(o, '#/workflows');
    assert.match(await o.text('#main .error'), /could not load your session \(.+\)\. Reload the page to try again/);
    o.unreachable.length = 0;
    await go(o, '#/workflows');
    assert.match(await o.text('#main'), /No workflow instances yet/);
    const errorsBefore = o.errors.length;

    // An operator signed in visits a page of another origin that posts a form to the admin API.
    const operator = await open();
    await signIn(operator, root);
    const [answer] = await Promise.all([operator.page.waitForResponse((r) => r.url().includes('/v1/tenants/victim/quarantine')), operator.goto(`${evilUrl}/`)]);
    assert.equal(answer.status(), 403);
    assert.deepEqual((await bearer('GET', '/v1/quarantine')).body.tenants, [], 'nothing was quarantined');
    // Bystander: the operator's session still works.
    await go(operator, '#/workers');
    assert.match(await operator.text('#main'), /flow/);

    assert.deepEqual([...o.offsite, ...operator.offsite], []);
    assert.equal(o.errors.length, errorsBefore);
    await o.close();
    await operator.close();
  });
}
