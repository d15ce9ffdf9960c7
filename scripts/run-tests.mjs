#!/usr/bin/env node
// The test command: builds, finds the infrastructure (environment, then
// testcontainers, then the native stack), and runs every compiled test file
// with node's test runner, which ends with its pass/fail counts.
//   node scripts/run-tests.mjs           all tests (unit, kernel, integration)
//   node scripts/run-tests.mjs --unit    unit tests only, no infrastructure
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const unitOnly = process.argv.includes('--unit');

function run(cmd, args, env = process.env, timeout = undefined) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env, timeout, killSignal: 'SIGKILL' });
  if (r.error?.code === 'ETIMEDOUT') console.error(`run-tests: ${path.basename(cmd)} still running after ${timeout / 60_000} min: killed`);
  return r.status ?? 1;
}

function testFiles(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) return testFiles(p);
    return name.endsWith('.test.js') ? [p] : [];
  });
}

if (run('npm', ['run', '--silent', 'build']) !== 0) {
  console.error('run-tests: the build failed');
  process.exit(1);
}

const packages = ['packages/common', 'services/sensor', 'services/enricher', 'services/archiver', 'cli'];
const unit = packages.flatMap((p) => testFiles(path.join(root, p, 'dist/test')));
const integration = testFiles(path.join(root, 'test/integration/dist/test'));
const files = unitOnly ? unit.filter((f) => !/(probe|stack|kernel)/.test(path.basename(f))) : [...unit, ...integration];

const env = { ...process.env };
let infra;
if (!unitOnly) {
  const require = createRequire(import.meta.url);
  const { resolveInfra } = require(path.join(root, 'test/integration/dist/src/index.js'));
  infra = await resolveInfra();
  env.KAFKA_BROKERS = infra.brokers;
  env.S3_ENDPOINT = infra.s3Endpoint;
  console.error(`run-tests: Kafka at ${infra.brokers}, S3 at ${infra.s3Endpoint} (${infra.how})`);
}

console.error(`run-tests: ${files.length} test files`);
// One file at a time: kernel tests share the probes and integration tests the broker.
// A failed test can leave a child (a sensor, a server) running: --test-force-exit
// ends each file when its tests are done, and its exit handler kills what is left.
// No test may take over 10 minutes, nor the whole run over 45: a hang fails
// here, with the name of what hung, well inside CI's limit.
const status = run(
  process.execPath,
  ['--test', '--test-concurrency=1', '--test-force-exit', '--test-timeout=600000', '--test-reporter=spec', ...files],
  env,
  45 * 60_000,
);
if (infra) await infra.stop();
process.exit(status);
