// The start-up write probe against the local S3 server (and a closed port):
// an archiver that cannot write exits at once with one line naming the
// endpoint, the bucket and the cause, before it touches Kafka.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { createS3Client, loadConfig } from '@netmon/common';
import { Archiver } from '../src/archiver';
import { S3UnavailableError } from '../src/errors';
import type { ArchiveSource } from '../src/source';
import { ArchiveStore } from '../src/store';
import { checkStoreWritable, probeKey } from '../src/store-check';
import { logger, repoRoot } from './harness';

function configFile(s3: string): string {
  const id = `probe-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'netmon-archiver-')), 'netmon.yaml');
  writeFileSync(file, [`topics: { events: test.archiver.${id} }`, `s3: { ${s3} }`, `archiver: { group_id: test-${id}, metrics_port: 0 }`, ''].join('\n'));
  return file;
}

/** A local port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A source that records whether the archiver got as far as Kafka. */
function watchedSource(): ArchiveSource & { started: boolean } {
  const source = {
    started: false,
    async start() {
      source.started = true;
    },
    seek() {},
    pause() {},
    resume() {},
    pauseAll() {},
    commit: async () => undefined,
    deadLetter: async () => undefined,
    close: async () => undefined,
  };
  return source;
}

describe('archiver start-up: S3 write probe', () => {
  test('a writable bucket: the probe object is there, and the archiver starts', async () => {
    const config = loadConfig(configFile(`prefix: test/probe-ok-${randomBytes(3).toString('hex')}`));
    const store = new ArchiveStore(createS3Client(config.s3), config.s3);
    try {
      await checkStoreWritable(store, config);
      const listed = await store.list(probeKey(config.s3.prefix));
      assert.deepEqual(
        listed.map((o) => o.key),
        [probeKey(config.s3.prefix)],
      );
      assert.match((await store.getBytes(probeKey(config.s3.prefix))).toString(), /"pid":\d+/);
    } finally {
      await store.deletePrefix(`${config.s3.prefix}/`);
      store.client.destroy();
    }
  });

  test('a bucket that does not exist: refused, named, before Kafka', async () => {
    const bucket = `netmon-missing-${randomBytes(4).toString('hex')}`;
    const config = loadConfig(configFile(`bucket: ${bucket}, prefix: archive`));
    const source = watchedSource();
    const archiver = new Archiver(config, { logger, source });
    const err = await archiver.start().then(
      () => assert.fail('started without a bucket'),
      (e: unknown) => e,
    );
    await archiver.stop();
    assert.ok(err instanceof S3UnavailableError, String(err));
    assert.equal(source.started, false);
    assert.doesNotMatch(err.message, /\n/);
    assert.match(
      err.message,
      new RegExp(`^netmon archiver: S3 at ${config.s3.endpoint.replace(/[.]/g, '\\.')} refused writing s3://${bucket}/archive/_probe/archiver\\.json: `),
    );
    assert.match(err.message, /NoSuchBucket|does not exist/);
  });

  test('an endpoint nobody listens on: `netmon archiver` exits 1 with one line on stderr', async () => {
    const port = await closedPort();
    const file = configFile(`endpoint: "http://127.0.0.1:${port}", prefix: archive`);
    const started = Date.now();
    // S3_ENDPOINT (set by the test runner for the stack) would override the file's endpoint.
    const { S3_ENDPOINT: _endpoint, ...env } = process.env;
    const r = spawnSync(process.execPath, [path.join(repoRoot, 'services/archiver/dist/src/main.js'), '--config', file], {
      encoding: 'utf8',
      timeout: 60_000,
      env,
    });
    assert.equal(r.status, 1, `exit ${r.status}, stderr: ${r.stderr}`);
    // Besides the service's JSON log lines, one line for people.
    const lines = r.stderr
      .trim()
      .split('\n')
      .filter((l) => !l.startsWith('{'));
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, new RegExp(`^netmon archiver: cannot reach S3 at http://127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
    assert.ok(Date.now() - started < PROBE_LIMIT_MS, `took ${Date.now() - started} ms`);
  });
});

/** The probe gives up within its timeout (10 s); the process around it starts and ends within this. */
const PROBE_LIMIT_MS = 30_000;
