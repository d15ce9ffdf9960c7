// Secrets in command lines, with the default rules (no kernel needed).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_REDACT_ARGS, parseConfig } from '@netmon/common';
import { REDACTED, compileRedaction, redactArgs } from '../src/index';

const defaults = compileRedaction(DEFAULT_REDACT_ARGS);
const redact = (args: string[], filename = 'prog') => redactArgs(args, filename, defaults);

test('name=value secrets, in any spelling, keep their name', () => {
  assert.deepEqual(redact(['--password=hunter2', '--db-token=abc', '-Djavax.net.ssl.keyStorePassword=ks', 'PGPASSWORD=pg', 'api_key=k', '--API-KEY=K']), [
    `--password=${REDACTED}`,
    `--db-token=${REDACTED}`,
    `-Djavax.net.ssl.keyStorePassword=${REDACTED}`,
    `PGPASSWORD=${REDACTED}`,
    `api_key=${REDACTED}`,
    `--API-KEY=${REDACTED}`,
  ]);
});

test('a secret flag redacts the argument after it, not the flag', () => {
  assert.deepEqual(redact(['--password', 'hunter2', '--token', 't0k', '--user', 'bob']), ['--password', REDACTED, '--token', REDACTED, '--user', 'bob']);
});

test('URL credentials: only the password, every URL in the argument', () => {
  assert.deepEqual(redact(['postgres://app:s3cret@db:5432/x', 'a=https://u:p@h/ b=ftp://v:q@g/']), [
    `postgres://app:${REDACTED}@db:5432/x`,
    `a=https://u:${REDACTED}@h/ b=ftp://v:${REDACTED}@g/`,
  ]);
  assert.deepEqual(redact(['https://example.com/path?x=1', 'user@host:22']), ['https://example.com/path?x=1', 'user@host:22']);
});

test('Authorization headers, mysql -p, curl -u: only where they mean a secret', () => {
  assert.deepEqual(redact(['-H', 'Authorization: Bearer eyJhbGc', '-H', 'Accept: */*'], 'curl'), [
    '-H',
    `Authorization: Bearer ${REDACTED}`,
    '-H',
    'Accept: */*',
  ]);
  assert.deepEqual(redact(['-u', 'root', '-pS3cret', 'db'], 'mysql'), ['-u', 'root', `-p${REDACTED}`, 'db']);
  assert.deepEqual(redact(['-p', '-u', 'x'], 'mysql'), ['-p', '-u', 'x'], 'a bare -p asks on the terminal');
  assert.deepEqual(redact(['-pv', 'dir'], 'mkdir'), ['-pv', 'dir'], '-p of other programs is not a password');
  assert.deepEqual(redact(['-u', 'alice:pw', 'https://h/'], 'curl'), ['-u', REDACTED, 'https://h/']);
});

test('ordinary arguments pass untouched (the same array)', () => {
  const args = ['-c', 'import os; print(1)', '--token-file=/run/secrets/t', '--verbose', 'password'];
  assert.equal(redact(args), args);
});

test('sensor.redact_args: [] turns redaction off; a bad rule names the key', () => {
  assert.deepEqual(parseConfig('sensor: { redact_args: [] }', 'f.yaml', {}).sensor.redactArgs, []);
  assert.equal(parseConfig('', 'f.yaml', {}).sensor.redactArgs, DEFAULT_REDACT_ARGS);
  const custom = parseConfig("sensor: { redact_args: [{ arg: '^--pin=(?<secret>.+)$' }] }", 'f.yaml', {}).sensor.redactArgs;
  assert.deepEqual(redactArgs(['--pin=1234', '--password=x'], 'p', compileRedaction(custom)), [`--pin=${REDACTED}`, '--password=x']);
  assert.throws(() => parseConfig("sensor: { redact_args: [{ arg: '(' }] }", 'f.yaml', {}), /f\.yaml.*sensor\.redact_args\[0\]/);
  assert.throws(() => parseConfig("sensor: { redact_args: [{ arg: 'a', flag: 'b' }] }", 'f.yaml', {}), /sensor\.redact_args\[0\]/);
});
