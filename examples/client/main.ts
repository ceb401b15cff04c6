// A plain Node service that starts the signup workflow (examples/workflows), watches it step by step
// and prints its output. Run against a mesh with the workflow deployed:
//   CORDON_TOKEN=$(npx cordon tokens create --scope workflows) node examples/client/main.ts [ws://127.0.0.1:8081/rpc]
// (In a project of your own: import { connect } from 'cordon/client'.)
import { connect, type ClientStep } from '../../client/index.ts';

const token = process.env.CORDON_TOKEN;
if (!token) throw new Error('set CORDON_TOKEN to a token with the workflows scope (npx cordon tokens create --scope workflows)');
const cordon = await connect(process.argv[2] ?? 'ws://127.0.0.1:8081/rpc', { token });
const instance = await cordon.workflows('signup').create({ params: { user: 'ada', sleepMs: 100 } });
const id = await instance.id;
console.log(`started ${id}`);

// Steps are printed once each: from their own events, and from a status (the first event is the status
// now, which holds the steps that ended before the watch began).
const printed = new Set<string>();
const printStep = async (step: ClientStep) => {
  if (step.status !== 'complete' || printed.has(step.name)) return;
  printed.add(step.name);
  console.log(`  step ${step.name} (${step.type}): ${step.status}${step.type === 'do' ? ` after ${step.attempts} attempt(s)` : ''}`);
  // The workflow waits for an approval after its cool-off: give it one then.
  if (step.name === 'cool off') await instance.sendEvent({ type: 'approved', payload: { by: 'the example' } });
};

const finished = new Promise<unknown>((resolve, reject) => {
  void instance.watch(async (event) => {
    if (event.type === 'step') await printStep(event.step);
    else {
      for (const step of event.status.steps ?? []) await printStep(step);
      console.log(`status: ${event.status.status}`);
      if (event.status.status === 'complete') resolve(event.status.output);
      if (event.status.status === 'errored' || event.status.status === 'terminated') reject(new Error(`${id} ${event.status.status}`));
    }
  });
});
console.log('output:', await finished);
cordon[Symbol.dispose]();
