/**
 * The dashboard's entry point: loads the session (who is signed in, the CSRF token), draws the
 * navigation the session's scopes allow, and renders the page the location's hash names.
 */
import { loadSession, signOut, type SessionInfo } from './api.ts';
import { h } from './dom.ts';
import { auditPage } from './pages/audit.ts';
import { healthPage } from './pages/health.ts';
import { quarantinePage } from './pages/quarantine.ts';
import { instancePage, workflowsPage } from './pages/workflows.ts';
import { workerPage, workersPage } from './pages/workers.ts';

function route(): string[] {
  return location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
}

async function page(session: SessionInfo, rerender: () => void, signal: AbortSignal): Promise<Node> {
  const [name = 'workers', ...args] = route();
  switch (name) {
    case 'worker':
      return workerPage(session, args[0] ?? '', args[1] ?? '', signal, rerender);
    case 'workflows':
      return workflowsPage(session, args[0]);
    case 'instance':
      return instancePage(session, args[0] ?? '', args[1] ?? '', args[2] ?? '', signal);
    case 'health':
      return healthPage(session);
    case 'audit':
      return auditPage();
    case 'quarantine':
      return quarantinePage(session, rerender);
    default:
      return workersPage(session);
  }
}

/** The page when the session cannot be loaded (the supervisor unreachable or failing): why, and what to do, not a blank page. */
function unreachable(e: unknown): void {
  const main = h(
    'main',
    { id: 'main' },
    h('p', { class: 'error', role: 'alert' }, `The dashboard could not load your session (${(e as Error).message}). Reload the page to try again.`),
  );
  document.getElementById('app')!.replaceChildren(main);
  main.dataset.drawn = 'error';
}

async function start(): Promise<void> {
  let session: SessionInfo;
  try {
    session = await loadSession();
  } catch (e) {
    // Signed out: the sign-in page is already loading.
    if ((e as { status?: number }).status !== 401) unreachable(e);
    return;
  }
  const operator = session.tenant === null && session.scopes.includes('admin');
  const nav = h(
    'nav',
    { 'aria-label': 'Pages' },
    h('a', { href: '#/workers' }, 'Workers'),
    h('a', { href: '#/workflows' }, 'Workflows'),
    operator && h('a', { href: '#/audit' }, 'Audit'),
    session.scopes.includes('admin') && h('a', { href: '#/quarantine' }, 'Quarantine'),
    h('a', { href: '#/health' }, 'Health'),
  );
  const main = h('main', { id: 'main', 'aria-live': 'polite' });
  const who = session.tenant === null ? `${session.tokenId} (all tenants)` : `${session.tokenId} (tenant ${session.tenant})`;
  document
    .getElementById('app')!
    .replaceChildren(
      h(
        'header',
        {},
        h('h1', {}, 'Cordon'),
        nav,
        h('span', { class: 'who', id: 'who' }, who),
        h('button', { type: 'button', id: 'sign-out', onclick: () => void signOut() }, 'Sign out'),
      ),
      main,
    );
  let drawn = 0;
  // Ends what the page left behind still does (a live log stream, a timeline's polling).
  let leaving = new AbortController();
  const render = async () => {
    const mine = ++drawn;
    leaving.abort();
    const here = (leaving = new AbortController());
    for (const a of nav.querySelectorAll('a')) a.toggleAttribute('aria-current', a.getAttribute('href') === `#/${route()[0] ?? 'workers'}`);
    let node: Node;
    try {
      node = await page(session, () => void render(), here.signal);
    } catch (e) {
      node = h('p', { class: 'error', role: 'alert' }, (e as Error).message);
    }
    // A slower answer for a page already left is dropped.
    if (mine !== drawn) return;
    main.replaceChildren(node);
    // Which page is drawn, for whoever waits for it (the browser test).
    main.dataset.drawn = route()[0] ?? 'workers';
  };
  addEventListener('hashchange', () => void render());
  await render();
}

void start();
