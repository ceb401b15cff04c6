/** The registry of live Workers RPC sessions: which it closes when workers change, and which it leaves. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ServiceSessions, type SessionEnd } from './service-bindings.ts';

type Worker = { tenant: string; cordon: string; codeKey: string };

function end(closed: string[]): SessionEnd {
  const e: SessionEnd = {
    onEnd: () => {},
    async close(reason) {
      closed.push(reason);
      e.onEnd();
    },
  };
  return e;
}

test('sessions are closed at both ends when their callee is undeployed, moved, or stops granting the caller; others run on', () => {
  const workers = new Map<string, Worker>([
    ['a/api', { tenant: 'a', cordon: 'standard', codeKey: 'k1' }],
    ['b/lender', { tenant: 'b', cordon: 'untrusted', codeKey: 'k2' }],
    ['a/kept', { tenant: 'a', cordon: 'standard', codeKey: 'k3' }],
  ]);
  const grants = new Map<string, string[]>([['k2', ['a']]]);
  const store = {
    worker: (id: string) => workers.get(id) as never,
    bundleForKey: (key: string) => ({ bundle: { rpcCallers: grants.get(key) ?? [] }, cordon: '' }) as never,
  };
  const sessions = new ServiceSessions(store);
  const closed = { api: [] as string[], lender: [] as string[], kept: [] as string[] };
  sessions.add('a/api', 'standard', 'a', [end(closed.api), end(closed.api)]);
  sessions.add('b/lender', 'untrusted', 'a', [end(closed.lender), end(closed.lender)]);
  sessions.add('a/kept', 'standard', 'a', [end(closed.kept), end(closed.kept)]);
  sessions.check();
  assert.equal(sessions.size, 3, 'nothing changed, nothing closed');

  workers.set('a/api', { tenant: 'a', cordon: 'q-123', codeKey: 'k1' });
  grants.set('k2', []);
  workers.set('a/kept', { tenant: 'a', cordon: 'standard', codeKey: 'k4' }); // a redeploy: the session stays on its version
  sessions.check();
  assert.deepEqual(closed.api, Array(2).fill('the RPC session to a/api was revoked: a/api was moved to cordon q-123'));
  assert.deepEqual(closed.lender, Array(2).fill("the RPC session to b/lender was revoked: b/lender's owner no longer grants a"));
  assert.deepEqual(closed.kept, []);
  assert.equal(sessions.size, 1);

  workers.delete('a/kept');
  sessions.check();
  assert.deepEqual(closed.kept, Array(2).fill('the RPC session to a/kept was revoked: a/kept was undeployed'));
  assert.equal(sessions.size, 0);
});

test('a session leaves the registry when either end lets go', async () => {
  const sessions = new ServiceSessions({ worker: () => undefined, bundleForKey: () => undefined });
  const ends: [SessionEnd, SessionEnd] = [end([]), end([])];
  sessions.add('a/api', 'standard', 'a', ends);
  ends[1].onEnd();
  assert.equal(sessions.size, 0);
});
