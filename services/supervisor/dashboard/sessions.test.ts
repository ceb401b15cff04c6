import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ABSOLUTE_MS, csrfMatches, IDLE_MS, SessionStore } from './sessions.ts';

test('a session lives while used, ends when idle or old, and on sign-out', () => {
  let now = 1_000_000;
  const store = new SessionStore(() => now);
  const a = store.create('tok-a');
  assert.equal(store.use(a.id)?.token, 'tok-a');
  now += IDLE_MS + 1;
  assert.equal(store.use(a.id), undefined, 'idle past IDLE_MS');
  assert.equal(store.use(a.id), undefined, 'and stays ended');

  const b = store.create('tok-b');
  // Used often enough never to idle out, it still ends ABSOLUTE_MS after sign-in.
  for (let t = 0; t < ABSOLUTE_MS; t += IDLE_MS / 2) {
    now += IDLE_MS / 2;
    if (t + IDLE_MS / 2 <= ABSOLUTE_MS) assert.ok(store.use(b.id), `alive at +${t}`);
  }
  now += IDLE_MS / 2;
  assert.equal(store.use(b.id), undefined, 'past ABSOLUTE_MS');

  const c = store.create('tok-c');
  store.end(c.id);
  assert.equal(store.use(c.id), undefined);
  assert.equal(store.use('no-such-session'), undefined);
});

test('session ids and CSRF tokens are distinct and random; the CSRF check is exact', () => {
  const store = new SessionStore();
  const a = store.create('t');
  const b = store.create('t');
  assert.notEqual(a.id, b.id);
  assert.notEqual(a.csrf, b.csrf);
  assert.notEqual(a.id, a.csrf);
  const s = store.use(a.id)!;
  assert.ok(csrfMatches(s, a.csrf));
  assert.ok(!csrfMatches(s, b.csrf));
  assert.ok(!csrfMatches(s, undefined));
  assert.ok(!csrfMatches(s, ''));
  assert.ok(!csrfMatches(s, a.csrf.slice(1)));
});

test('past the session cap the least recently used session ends, not the one in use', () => {
  const store = new SessionStore();
  const first = store.create('first');
  const second = store.create('second');
  store.use(first.id); // now second is the least recently used
  for (let i = 0; i < 998; i++) store.create(`t${i}`);
  assert.equal(store.size, 1000);
  store.create('one more');
  assert.equal(store.size, 1000);
  assert.ok(store.use(first.id));
  assert.equal(store.use(second.id), undefined);
});
