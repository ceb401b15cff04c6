/**
 * The admin API as the signed-in session calls it: same-origin, the session cookie sent by the browser
 * (HttpOnly: this code never sees it) and the session's CSRF token in a header on every call.
 */
import { CordonError } from '../../../../lib/errors.ts';

export interface SessionInfo {
  csrf: string;
  tokenId: string;
  tenant: string | null;
  scopes: string[];
  /** The Jaeger UI traces link to (CORDON_JAEGER_URL), or null. */
  jaegerUrl: string | null;
}

/** The admin API's refusal as the page sees it: its message, and its status (a 403 is a page for operators only). */
const apiError = (status: number, message: string) => new CordonError(message, { status });

let csrf = '';

function toSignIn(): never {
  location.assign('/dashboard/sign-in');
  throw apiError(401, 'not signed in');
}

export async function loadSession(): Promise<SessionInfo> {
  const r = await fetch('/dashboard/session', { credentials: 'same-origin' });
  if (r.status === 401) toSignIn();
  if (!r.ok) throw apiError(r.status, `loading the session: HTTP ${r.status}`);
  const s = (await r.json()) as SessionInfo;
  csrf = s.csrf;
  return s;
}

async function call(method: string, path: string, body?: unknown): Promise<Response> {
  const r = await fetch(path, {
    method,
    credentials: 'same-origin',
    headers: { 'x-csrf-token': csrf, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (r.status === 401) toSignIn();
  return r;
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const r = await call(method, path, body);
  const data = (await r.json().catch(() => ({}))) as { error?: string };
  if (!r.ok) throw apiError(r.status, data.error ?? `${method} ${path}: HTTP ${r.status}`);
  return data as T;
}

/** A GET whose answer is NDJSON that goes on (a worker's logs with ?follow=1): each value as it arrives, until `signal` aborts. */
export async function apiFollow<T>(path: string, signal: AbortSignal, each: (value: T) => void): Promise<void> {
  const r = await fetch(path, { credentials: 'same-origin', headers: { 'x-csrf-token': csrf }, signal });
  if (r.status === 401) toSignIn();
  if (!r.ok || !r.body) throw apiError(r.status, `GET ${path}: HTTP ${r.status}`);
  const lines = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let rest = '';
  try {
    for (;;) {
      const { value, done } = await lines.read();
      if (done) return;
      const parts = (rest + value).split('\n');
      rest = parts.pop()!;
      for (const line of parts) if (line) each(JSON.parse(line) as T);
    }
  } catch (e) {
    if (!signal.aborted) throw e;
  }
}

export async function signOut(): Promise<void> {
  await fetch('/dashboard/sign-out', { method: 'POST', credentials: 'same-origin', headers: { 'x-csrf-token': csrf } });
  location.assign('/dashboard/sign-in');
}

/** A path segment of an API URL. */
export const seg = encodeURIComponent;
