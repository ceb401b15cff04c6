import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ROOT_CONTEXT, SpanKind } from '@opentelemetry/api';
import { SamplingDecision } from '@opentelemetry/sdk-trace';
import { samplerFromEnv, traceAttributes } from './telemetry.ts';

const decide = (env: NodeJS.ProcessEnv, traceId = 'ffffffffffffffffffffffffffffffff') =>
  samplerFromEnv(env).shouldSample(ROOT_CONTEXT, traceId, 'x', SpanKind.SERVER, {}, []).decision;

test('OTEL_TRACES_SAMPLER and _ARG choose the sampler', () => {
  assert.equal(decide({}), SamplingDecision.RECORD_AND_SAMPLED);
  assert.equal(decide({ OTEL_TRACES_SAMPLER: 'always_off' }), SamplingDecision.NOT_RECORD);
  assert.equal(decide({ OTEL_TRACES_SAMPLER: 'parentbased_always_off' }), SamplingDecision.NOT_RECORD);
  assert.equal(decide({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '0' }), SamplingDecision.NOT_RECORD);
  assert.equal(decide({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '1' }), SamplingDecision.RECORD_AND_SAMPLED);
  assert.throws(() => samplerFromEnv({ OTEL_TRACES_SAMPLER: 'sometimes' }), /OTEL_TRACES_SAMPLER=sometimes is not supported/);
  assert.throws(() => samplerFromEnv({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '2' }), /OTEL_TRACES_SAMPLER_ARG=2 is not a ratio/);
});

test('span attributes: identities and outcomes only', () => {
  assert.deepEqual(traceAttributes({ workerId: 'acme/api', version: 'v', cordon: 'standard', route: '*/api*', status: 200 }), {
    'cordon.tenant': 'acme',
    'cordon.worker': 'api',
    'cordon.version': 'v',
    'cordon.cordon': 'standard',
    'http.route': '*/api*',
    'http.response.status_code': 200,
  });
});
