// Interactive commands against a closed port: one line naming the address,
// the cause and the fix, within 5 s, a non-zero exit, no stack trace and no
// JSON logs (the services keep theirs, and their retry policy).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

const BIN = path.resolve(__dirname, '../../../bin/netmon.js');

function run(args: string[], env: NodeJS.ProcessEnv) {
  const started = Date.now();
  const r = spawnSync(process.execPath, [BIN, ...args], { env, encoding: 'utf8', timeout: 20_000 });
  return { ...r, seconds: (Date.now() - started) / 1000 };
}

function assertOneLine(r: ReturnType<typeof run>, pattern: RegExp): void {
  assert.notEqual(r.status, 0, r.stderr);
  assert.notEqual(r.status, null, `still running after 20 s: ${r.stderr}`);
  assert.ok(r.seconds < 5.5, `took ${r.seconds} s`); // 5 s for the command, node's start on top
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line, got:\n${r.stderr}`);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(r.stderr, /^\s+at |"level":/m, 'no stack trace, no JSON log');
  assert.equal(r.stdout, '');
}

const defaults = (): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.NETMON_CONFIG;
  delete env.KAFKA_BROKERS;
  delete env.S3_ENDPOINT;
  return env;
};

/** A config of configured (not local) servers on closed ports. */
function closedConfig(): string {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'netmon-closed-')), 'netmon.yaml');
  writeFileSync(file, 'kafka: { brokers: [127.0.0.1:1] }\ns3: { endpoint: "http://127.0.0.1:1", bucket: netmon-closed, force_path_style: true }\n');
  return file;
}

test('tail with an unreachable broker (local stack defaults): the line says to start the stack', () => {
  const r = run(['tail', '--topic', 'events'], { ...defaults(), KAFKA_BROKERS: '127.0.0.1:1' });
  assertOneLine(r, /^netmon tail: cannot reach Kafka at 127\.0\.0\.1:1: .+; is the broker running\? For the local stack: \.\/bin\/netmon\.js stack up$/);
});

test('query with an unreachable S3 server: one line naming it', () => {
  const r = run(['query', '--config', closedConfig(), 'SELECT 1'], defaults());
  assertOneLine(r, /^netmon query: cannot reach S3 at http:\/\/127\.0\.0\.1:1: connect ECONNREFUSED 127\.0\.0\.1:1; is the S3 server running\?$/);
});

test('run --pipeline with configured servers that cannot be reached: one line, before starting anything', () => {
  const r = run(['run', '--pipeline', '--config', closedConfig()], defaults());
  assertOneLine(r, /^netmon run: cannot reach Kafka at 127\.0\.0\.1:1: .+; is the broker running\?$/);
});
