/**
 * The web dashboard on the admin port: its pages at `/` and `/dashboard/…`, sign-in and sign-out, and
 * the session a browser then holds. The pages read and act through the admin API itself (`/v1/…`):
 * the admin server asks `principal()` who a cookie-bearing request is, which is the session's token,
 * authenticated again on every request, so the API's scope and tenant checks are the only ones.
 *
 * The token stays on the server; the browser holds an HttpOnly, SameSite=Strict session cookie
 * (Secure over TLS). A session authenticates an API call only together with its CSRF token in the
 * `x-csrf-token` header, which a cross-site page cannot read or send. Every dashboard response
 * carries a Content-Security-Policy that allows only this origin's script and style, no inline
 * script, no eval, and no framing.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { AuditLog } from '../audit.ts';
import type { Logger } from '../../../lib/log.ts';
import type { Principal, TokenStore } from '../tokens.ts';
import { HttpError, readText } from '../admin/http.ts';
import { bundleUi, type UiBundle } from './bundle.ts';
import { csrfMatches, SessionStore, type Session } from './sessions.ts';

const COOKIE = 'cordon_session';
export const CSRF_HEADER = 'x-csrf-token';
/** A sign-in form holds one token: anything longer is not one. */
const MAX_SIGN_IN_BYTES = 4096;

const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  // Not no-referrer: with it a browser sends `Origin: null` on the sign-in form, which then looks cross-site.
  'referrer-policy': 'same-origin',
  'cache-control': 'no-store',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

const SHELL = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Cordon</title><link rel="stylesheet" href="/dashboard/app.css"><script type="module" src="/dashboard/app.js"></script></head>
<body><noscript>The Cordon dashboard needs JavaScript.</noscript><div id="app"></div></body></html>
`;

const signInPage = (failed: boolean) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · Cordon</title><link rel="stylesheet" href="/dashboard/app.css"></head>
<body><main class="sign-in"><h1>Cordon</h1>
<form method="post" action="/dashboard/sign-in">
<label for="token">Admin API token</label>
<input id="token" name="token" type="password" autocomplete="off" required autofocus>
<button type="submit">Sign in</button>
${failed ? '<p class="error" role="alert">That token is not valid (unknown or revoked). Create one with <code>cordon tokens create</code>, or use $CORDON_DATA_DIR/admin.token.</p>' : ''}
<p class="hint">The token stays on the server; this browser gets a session cookie only.</p>
</form></main></body></html>
`;

export interface DashboardDeps {
  tokens: TokenStore;
  audit: AuditLog;
  log: Logger;
  jaegerUrl?: string;
}

export interface Dashboard {
  /** Whether a path is the dashboard's (pages, assets, sign-in), not the API's. */
  owns(pathname: string): boolean;
  handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void>;
  /**
   * Who a request without a bearer token is, by its session cookie: undefined when it has none, or
   * it has ended or its token was revoked. A session without its CSRF token in the header is a 403.
   */
  principal(req: IncomingMessage): Principal | undefined;
}

function cookieOf(req: IncomingMessage): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, v] = part.trim().split('=', 2);
    if (k === COOKIE && v) return v;
  }
  return undefined;
}

/** A form posted from another site (login CSRF) or framed: refused before anything else is read. */
function refuseCrossSite(req: IncomingMessage): void {
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none')
    throw new HttpError(403, `a ${site} request to the dashboard is refused; open the dashboard itself`);
  const origin = req.headers.origin;
  const scheme = (req.socket as TLSSocket).encrypted ? 'https' : 'http';
  if (origin !== undefined && origin !== `${scheme}://${req.headers.host}`)
    throw new HttpError(403, `a request from origin ${origin} to the dashboard is refused`);
}

function page(res: ServerResponse, status: number, type: string, body: string, extra: Record<string, string | string[]> = {}): void {
  res.writeHead(status, { 'content-type': `${type}; charset=utf-8`, 'content-length': Buffer.byteLength(body), ...extra });
  res.end(body);
}

export function createDashboard({ tokens, audit, log, jaegerUrl }: DashboardDeps): Dashboard {
  const sessions = new SessionStore();
  const bundle: Promise<UiBundle | undefined> = bundleUi().catch((e: unknown) => {
    log.error('the dashboard could not be bundled; its pages answer 500', { error: e as Error });
    return undefined;
  });

  /** The live session and its token's principal, or undefined (the session ended on the way if its token was revoked). */
  const sessionOf = (req: IncomingMessage): { id: string; session: Session; who: Principal } | undefined => {
    const id = cookieOf(req);
    const session = id === undefined ? undefined : sessions.use(id);
    if (!session) return undefined;
    const who = tokens.authenticate(session.token);
    if (!who) {
      sessions.end(id!);
      return undefined;
    }
    return { id: id!, session, who };
  };

  const cookie = (req: IncomingMessage, value: string, maxAge?: number) =>
    `${COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict${(req.socket as TLSSocket).encrypted ? '; Secure' : ''}${maxAge === undefined ? '' : `; Max-Age=${maxAge}`}`;

  async function signIn(req: IncomingMessage, res: ServerResponse): Promise<void> {
    refuseCrossSite(req);
    if (!/^application\/x-www-form-urlencoded\b/.test(req.headers['content-type'] ?? ''))
      throw new HttpError(415, 'sign in with the form at /dashboard/sign-in');
    const token = new URLSearchParams(await readText(req, MAX_SIGN_IN_BYTES)).get('token')?.trim() ?? '';
    const who = token ? tokens.authenticate(token) : undefined;
    if (!who) {
      audit.append({ actor: 'anonymous', action: 'dashboard.sign-in', outcome: 'denied', detail: { reason: 'bad or missing token' } });
      return page(res, 401, 'text/html', signInPage(true));
    }
    const old = cookieOf(req);
    if (old !== undefined) sessions.end(old);
    const { id } = sessions.create(token);
    audit.append({ actor: `token:${who.tokenId}`, action: 'dashboard.sign-in', outcome: 'ok' });
    page(res, 303, 'text/plain', 'signed in\n', { location: '/', 'set-cookie': cookie(req, id) });
  }

  function signOut(req: IncomingMessage, res: ServerResponse): void {
    refuseCrossSite(req);
    const id = cookieOf(req);
    const session = id === undefined ? undefined : sessions.use(id);
    if (session && !csrfMatches(session, req.headers[CSRF_HEADER] as string | undefined))
      throw new HttpError(403, `signing out needs the session's CSRF token in ${CSRF_HEADER}`);
    if (id !== undefined) sessions.end(id);
    page(res, 200, 'application/json', '{"signedOut":true}\n', { 'set-cookie': cookie(req, '', 0) });
  }

  async function asset(res: ServerResponse, which: keyof UiBundle): Promise<void> {
    const b = await bundle;
    if (!b) return page(res, 500, 'text/plain', 'the dashboard could not be bundled; see the supervisor log\n');
    page(res, 200, which === 'js' ? 'text/javascript' : 'text/css', b[which]);
  }

  return {
    owns: (pathname) => pathname === '/' || pathname === '/favicon.ico' || pathname.startsWith('/dashboard/'),

    async handle(req, res, url) {
      // Set first, so that an error answered by the admin server carries them too.
      for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
      const route = `${req.method === 'HEAD' ? 'GET' : req.method} ${url.pathname}`;
      switch (route) {
        case 'GET /':
          if (!sessionOf(req)) return page(res, 303, 'text/plain', 'sign in at /dashboard/sign-in\n', { location: '/dashboard/sign-in' });
          return page(res, 200, 'text/html', SHELL);
        case 'GET /dashboard/sign-in':
          return page(res, 200, 'text/html', signInPage(false));
        case 'POST /dashboard/sign-in':
          return signIn(req, res);
        case 'POST /dashboard/sign-out':
          return signOut(req, res);
        case 'GET /dashboard/session': {
          // The page's only way to its CSRF token: same-origin script can read this, another site cannot.
          const s = sessionOf(req);
          if (!s) return page(res, 401, 'application/json', '{"error":"not signed in; sign in at /dashboard/sign-in"}\n');
          const body = JSON.stringify({
            csrf: s.session.csrf,
            tokenId: s.who.tokenId,
            tenant: s.who.tenant ?? null,
            scopes: s.who.scopes,
            jaegerUrl: jaegerUrl ?? null,
          });
          return page(res, 200, 'application/json', body);
        }
        case 'GET /dashboard/app.js':
          return asset(res, 'js');
        case 'GET /dashboard/app.css':
          return asset(res, 'css');
        case 'GET /favicon.ico':
          // Asked for by every browser; answered so that it is not an API 401 in the console.
          return page(res, 204, 'text/plain', '');
        default:
          return page(res, 404, 'text/plain', `no such dashboard page: ${route}\n`);
      }
    },

    principal(req) {
      const s = sessionOf(req);
      if (!s) return undefined;
      if (!csrfMatches(s.session, req.headers[CSRF_HEADER] as string | undefined))
        throw new HttpError(403, `an API call with a dashboard session needs its CSRF token in ${CSRF_HEADER}`);
      return s.who;
    },
  };
}
