/**
 * The admin API as the signed-in session calls it: same-origin, the session cookie sent by the browser
 * (HttpOnly: this code never sees it) and the session's CSRF token in a header on every call.
 */
export interface SessionInfo {
  csrf: string;
  tokenId: string;
  tenant: string | null;
  scopes: string[];
}

export class ApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

let csrf = '';

function toSignIn(): never {
  location.assign('/dashboard/sign-in');
  throw new ApiError(401, 'not signed in');
}

export async function loadSession(): Promise<SessionInfo> {
  const r = await fetch('/dashboard/session', { credentials: 'same-origin' });
  if (r.status === 401) toSignIn();
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
  if (!r.ok) throw new ApiError(r.status, data.error ?? `${method} ${path}: HTTP ${r.status}`);
  return data as T;
}

/** A GET whose answer is NDJSON (a worker's logs): one value per line. */
export async function apiLines<T>(path: string): Promise<T[]> {
  const r = await call('GET', path);
  if (!r.ok) throw new ApiError(r.status, `GET ${path}: HTTP ${r.status}`);
  return (await r.text())
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as T);
}

export async function signOut(): Promise<void> {
  await fetch('/dashboard/sign-out', { method: 'POST', credentials: 'same-origin', headers: { 'x-csrf-token': csrf } });
  location.assign('/dashboard/sign-in');
}

/** A path segment of an API URL. */
export const seg = encodeURIComponent;
