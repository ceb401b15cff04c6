/**
 * Workflow values as callers outside the mesh see them: plain JSON. Inside, params, payloads and
 * outputs are the isolate's wire encoding (JSON text, bytes as {"$b": base64}); the admin API and
 * the client RPC endpoint decode them on the way out and encode them on the way in.
 */
import type { ClientInstanceStatus, ClientStep } from '../../../schemas/client.ts';
import type { InstanceStatus, StepRecord } from '../../../schemas/workflows.ts';

export const toWire = (v: unknown): string | null => (v === undefined ? null : JSON.stringify(v));

export const plainStep = (st: StepRecord): ClientStep => ({ ...st, output: st.output === undefined ? undefined : JSON.parse(st.output) });

export const plainStatus = (s: InstanceStatus): ClientInstanceStatus => ({
  ...s,
  output: s.output === undefined ? undefined : JSON.parse(s.output),
  steps: s.steps.map(plainStep),
});
