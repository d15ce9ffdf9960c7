// The native stack (`netmon stack up`, run by the test runner before the tests):
// status must report both servers running and answering.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_BROKERS, DEFAULT_S3 } from '@netmon/common';
import { formatStatus, runStackCommand, stackStatus, stackUp } from '../src/stack';

test('stack status: kafka and s3 run and answer', async () => {
  const status = await stackStatus();
  assert.ok(status.kafka.running, `kafka not running:\n${formatStatus(status)}`);
  assert.ok(status.kafka.answering, `kafka not answering:\n${formatStatus(status)}`);
  assert.ok(status.s3.running, `s3 not running:\n${formatStatus(status)}`);
  assert.ok(status.s3.answering, `s3 not answering:\n${formatStatus(status)}`);
  assert.equal(status.up, true);
  assert.equal(status.kafka.address, DEFAULT_BROKERS[0]);
  assert.equal(status.s3.address, DEFAULT_S3.endpoint);
  assert.match(status.kafka.server, /^Apache Kafka 4\./);
  assert.match(status.s3.detail, new RegExp(DEFAULT_S3.bucket));
  assert.match(status.kafka.logFile, /kafka\.log$/);
  assert.match(status.s3.logFile, /s3\.log$/);
});

test('stack up on a running stack is a no-op', async () => {
  const before = await stackStatus();
  const lines: string[] = [];
  const after = await stackUp({ log: (m) => lines.push(m) });
  assert.equal(after.kafka.pid, before.kafka.pid);
  assert.equal(after.s3.pid, before.s3.pid);
  assert.ok(
    lines.some((l) => /already running/.test(l)),
    lines.join('\n'),
  );
});

test('netmon stack --help and bad usage', async () => {
  assert.equal(await runStackCommand(['--help']), 0);
  assert.equal(await runStackCommand(['frobnicate']), 2);
  assert.equal(await runStackCommand(['status', '--bogus']), 2);
});
