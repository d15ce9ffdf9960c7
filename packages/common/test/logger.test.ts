// Secrets never reach a log line, and logging never changes the caller's objects.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createLogger } from '../src';

function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { lines, logger: createLogger('test', 'info', stream as never) };
}

test('kafka.sasl and s3.credentials are censored in the line and left whole in the caller’s objects', () => {
  const { lines, logger } = capture();
  const kafka = { brokers: ['b:9092'], sasl: { mechanism: 'scram-sha-512', username: 'u', password: 'hunter2' } };
  const s3 = { bucket: 'b', credentials: { accessKeyId: 'AKIA', secretAccessKey: 'sekrit' } };
  logger.info({ kafka, s3, password: 'top', nested: { password: 'also' } }, 'settings');
  const line = lines.join('');
  for (const secret of ['hunter2', 'sekrit', 'AKIA', 'top', 'also']) assert.ok(!line.includes(secret), `${secret} in ${line}`);
  assert.match(line, /"sasl":"\[redacted\]"/);
  assert.equal(kafka.sasl.password, 'hunter2', 'the caller’s object is unchanged');
  assert.equal(s3.credentials.secretAccessKey, 'sekrit');
});
