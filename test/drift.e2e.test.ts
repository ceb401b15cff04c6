/**
 * Drift through the real mesh: every service reports what it runs with; a service restarted after
 * the config file changed runs with other settings than the rest of the mesh, and that is seen in
 * /healthz, `cordon drift` and the audit log, and cleared when it runs with the right ones again.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';

describe('drift', () => {
  let mesh: TestMesh;
  const configFile = join(mkdtempSync(join(tmpdir(), 'cordon-drift-')), 'cordon.json');
  const healthz = async () => (await (await fetch(`${mesh.adminUrl}/healthz`)).json()) as { drift: Record<string, { config: string; routes?: string }> };
  const restartEgress = async () => {
    const pid = mesh.servicePids().get('egress')!;
    process.kill(pid, 'SIGKILL');
    await waitFor('a new egress', () => {
      const p = mesh.servicePids().get('egress');
      return p && p !== pid ? p : undefined;
    });
  };

  before(async () => {
    writeFileSync(configFile, JSON.stringify({ isolateIdleSeconds: 300 }));
    mesh = await startTestMesh({ CORDON_CONFIG: configFile, CORDON_DRIFT_MS: '300' });
  });
  after(async () => {
    await mesh?.stop();
  });

  test('every service reports; with nothing changed there is no drift, routes included', async () => {
    await mesh.cliOk(['deploy', 'examples/hello/index.ts', '--name', 'hello', '--route', '*/hello*']);
    const h = await waitFor('reports from every service', async () => {
      const d = (await healthz()).drift;
      return ['ingress', 'egress', 'sandbox:standard', 'sandbox:untrusted'].every((s) => d[s]) && d.ingress?.routes ? d : undefined;
    });
    for (const [peer, st] of Object.entries(h)) assert.equal(st.config, 'ok', peer);
    assert.equal(h.ingress!.routes, 'ok');
    const cli = await mesh.cli(['drift']);
    assert.equal(cli.code, 0, cli.stdout + cli.stderr);
    assert.match(cli.stdout, /^ingress\tconfig ok\troutes ok/m);
  });

  test('a service restarted after the config file changed drifts: healthz, `cordon drift` and the audit say so', async () => {
    writeFileSync(configFile, JSON.stringify({ isolateIdleSeconds: 60 }));
    await restartEgress();
    await waitFor('egress to drift', async () => ((await healthz()).drift.egress?.config === 'drift' ? true : undefined));
    assert.equal((await healthz()).drift.ingress!.config, 'ok', 'the others run as the mesh means them to');
    const cli = await mesh.cli(['drift']);
    assert.equal(cli.code, 1);
    assert.match(cli.stdout, /^egress\tconfig drift/m);
    assert.match((await mesh.cli(['audit', 'tail', '--limit', '50'])).stdout, /drift\.detected\tegress/);

    writeFileSync(configFile, JSON.stringify({ isolateIdleSeconds: 300 }));
    await restartEgress();
    await waitFor('egress back in line', async () => ((await healthz()).drift.egress?.config === 'ok' ? true : undefined));
    assert.match((await mesh.cli(['audit', 'tail', '--limit', '50'])).stdout, /drift\.resolved\tegress/);
  });

  test("every service's settings are in the hash: egress restarted with another ingress limit drifts", async () => {
    writeFileSync(configFile, JSON.stringify({ isolateIdleSeconds: 300, maxRequestMb: 5 }));
    await restartEgress();
    await waitFor('egress to drift', async () => ((await healthz()).drift.egress?.config === 'drift' ? true : undefined));
    assert.equal((await healthz()).drift['sandbox:standard']!.config, 'ok');

    writeFileSync(configFile, JSON.stringify({ isolateIdleSeconds: 300 }));
    await restartEgress();
    await waitFor('egress back in line', async () => ((await healthz()).drift.egress?.config === 'ok' ? true : undefined));
  });
});
