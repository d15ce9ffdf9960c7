// `netmon tail` against a closed port: one line naming the address, the cause
// and the fix, within 5 s, exit 1, no stack trace and no JSON logs.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';

const BIN = path.resolve(__dirname, '../../../bin/netmon.js');

test('tail with an unreachable broker fails within 5 s with one actionable line', () => {
  const env: NodeJS.ProcessEnv = { ...process.env, KAFKA_BROKERS: '127.0.0.1:1' };
  delete env.NETMON_CONFIG;
  const started = Date.now();
  const r = spawnSync(process.execPath, [BIN, 'tail', '--topic', 'events'], { env, encoding: 'utf8', timeout: 20_000 });
  const seconds = (Date.now() - started) / 1000;
  assert.equal(r.status, 1, r.stderr);
  assert.ok(seconds < 5.5, `took ${seconds} s`); // 5 s for the command, node's start on top
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line, got:\n${r.stderr}`);
  assert.match(lines[0]!, /^netmon tail: cannot reach Kafka at 127\.0\.0\.1:1: .+; is the broker running\? For the local stack: \.\/bin\/netmon\.js stack up$/);
  assert.equal(r.stdout, '');
});
