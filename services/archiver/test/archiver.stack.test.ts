// Integration tests on a real broker and a real S3 server (the native stack of
// `netmon stack up`, or KAFKA_BROKERS + S3_ENDPOINT). Every test has its own
// topic, group and S3 prefix. ("stack" in the file name keeps it out of
// `npm run test:unit`.)
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { start } from '../src/command';
import { dataKey, hourOf, manifestKey, parseDataKey } from '../src/layout';
import type { Manifest } from '../src/manifest';
import {
  type Child,
  type Fixture,
  cleanup,
  committed,
  endOffsets,
  eventFor,
  exactlyOnceProblems,
  fixture,
  logger,
  produce,
  readArchive,
  repoRoot,
  spawnArchiver,
  startS3Tap,
  waitUntil,
} from './harness';
import { assertSpecOrder } from './samples';

const fixtures: Fixture[] = [];
after(async () => {
  for (const f of fixtures) await cleanup(f);
});

async function fresh(name: string, o: Parameters<typeof fixture>[1] = {}): Promise<Fixture> {
  const f = await fixture(name, o);
  fixtures.push(f);
  return f;
}

/** Waits until every produced event is in S3 and every partition's offset is committed to its end. */
async function waitArchived(f: Fixture, timeoutMs = 90_000): Promise<void> {
  await waitUntil(
    'every event archived and committed',
    async () => {
      const ends = await endOffsets(f);
      const done = await committed(f);
      for (const [p, end] of ends) if (Math.max(0, done.get(p) ?? 0) < end) return false;
      return true;
    },
    timeoutMs,
    500,
  );
}

describe('archiver on the real stack', () => {
  test('events spanning two hours land under both hour partitions, exactly once, in spec order', async () => {
    const f = await fresh('two-hours', { flushRecords: 700 });
    const n = 5000;
    await produce(f, 0, n);
    const handle = await start(f.config, logger);
    try {
      await waitArchived(f);
    } finally {
      await handle.stop();
    }
    const c = await readArchive(f);
    assert.deepEqual(exactlyOnceProblems(c, n), []);
    const hours = new Set(c.keys.map((k) => `${parseDataKey(k)!.dt}/${parseDataKey(k)!.hour}`));
    assert.deepEqual([...hours].sort(), ['2025-05-31/10', '2025-05-31/11']);
    for (const { key, line } of c.lines) {
      const obj = JSON.parse(line);
      assertSpecOrder(obj);
      assert.equal(JSON.stringify(obj), line, 'the line is the event JSON, nothing else');
      const part = hourOf(obj.timestamp)!;
      const k = parseDataKey(key)!;
      assert.deepEqual([k.dt, k.hour], [part.dt, part.hour], `${key} holds only its hour`);
    }
    // Each object is named by its first record's offset: its lines' seqs are in offset order.
    for (const key of c.keys) {
      const seqs = gunzipSync(await f.store.getBytes(key))
        .toString('utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).source.seq as number);
      assert.ok(
        seqs.every((s, i) => i === 0 || s > seqs[i - 1]!),
        `${key}: lines in offset order`,
      );
    }
    // Every object is listed by exactly one manifest; manifests tile the partitions without overlap.
    const listed = new Set<string>();
    for (const mk of c.manifests) {
      const m = JSON.parse((await f.store.getBytes(mk)).toString('utf8')) as Manifest;
      for (const o of m.objects) {
        assert.ok(!listed.has(o.key), `${o.key} in one manifest only`);
        listed.add(o.key);
      }
    }
    assert.deepEqual([...listed].sort(), [...c.keys].sort());
    assert.ok((await handle.archiver.registry.getSingleMetricAsString('netmon_archiver_records_total')).includes(` ${n}`));
  });

  test('kill -9 after upload and before commit, then a restart that cuts elsewhere: still exactly once', async () => {
    const f = await fresh('crash', { flushRecords: 300 });
    const n = 3000;
    await produce(f, 0, n);
    // Run 1 talks to S3 through a tap. The test kills it (SIGKILL, from outside)
    // the moment S3 has stored every object of its first flush, before the tap
    // passes the last answer on: everything is in S3 and the archiver cannot
    // have committed, since it commits only once it has heard.
    const stored = new Set<string>();
    const manifests = new Map<string, Manifest | undefined>();
    let run1: Child | undefined;
    let killedAt: Manifest | undefined;
    const tap = await startS3Tap(f.config.s3.endpoint, async (x) => {
      if (x.method !== 'PUT' || x.status !== 200 || killedAt) return;
      if (x.key.includes('/_flushes/')) {
        manifests.set(x.key, undefined);
        return;
      }
      if (!parseDataKey(x.key)) return;
      stored.add(x.key);
      for (const [mk, known] of manifests) {
        const m = known ?? (await f.store.getManifest(mk));
        manifests.set(mk, m);
        if (!killedAt && m && m.objects.length > 0 && m.objects.every((o) => stored.has(o.key))) {
          killedAt = m;
          run1!.proc.kill('SIGKILL');
          await run1!.exited;
          return;
        }
      }
    });
    try {
      run1 = spawnArchiver(f, { NETMON_S3_ENDPOINT: tap.endpoint }, 'crash');
      const how = await Promise.race([run1.exited, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('run 1 was not killed')), 60_000))]);
      assert.equal(how.signal, 'SIGKILL', readFileSync(run1.logFile, 'utf8').slice(-2000));
    } finally {
      if (run1 && run1.proc.exitCode === null && run1.proc.signalCode === null) run1.proc.kill('SIGKILL');
      await tap.close();
    }
    const m = killedAt;
    assert.ok(m, 'killed by the test once a flush was in S3');
    assert.doesNotMatch(readFileSync(run1.logFile, 'utf8'), /flush committed/, 'run 1 committed nothing');
    const afterCrash = await readArchive(f);
    for (const o of m.objects) assert.ok(afterCrash.keys.includes(o.key), `${o.key} is in S3`);
    const perPartition = new Map<string, number>();
    for (const mk of afterCrash.manifests) perPartition.set(path.dirname(mk), (perPartition.get(path.dirname(mk)) ?? 0) + 1);
    assert.ok(afterCrash.manifests.length >= 1);
    assert.ok(
      [...perPartition.values()].every((k) => k === 1),
      'at most one (uncommitted) flush per partition',
    );
    assert.equal((await committed(f)).size === 0 || [...(await committed(f)).values()].every((o) => o < 0), true, 'nothing committed');
    const before = new Map<string, string>();
    for (const key of afterCrash.keys) before.set(key, (await f.store.getBytes(key)).toString('base64'));

    // Run 2 would cut at 1000 records (not 300): it must still end its first flush where run 1 did.
    const yaml = readFileSync(f.configFile, 'utf8').replace('flush_records: 300', 'flush_records: 1000');
    (await import('node:fs')).writeFileSync(f.configFile, yaml);
    await produce(f, n, n + 500);
    const second = spawnArchiver(f, {}, 'restart');
    try {
      await waitArchived(f);
    } finally {
      second.proc.kill('SIGTERM');
    }
    const exit = await second.exited;
    assert.equal(exit.code, 0, 'clean exit on SIGTERM');
    const c = await readArchive(f);
    assert.deepEqual(exactlyOnceProblems(c, n + 500), [], readFileSync(second.logFile, 'utf8').slice(-3000));
    for (const [key, body] of before) assert.equal((await f.store.getBytes(key)).toString('base64'), body, `${key} rewritten with the same content`);
    const m2 = JSON.parse((await f.store.getBytes(manifestKey(f.prefix, f.topic, m.partition, m.firstOffset))).toString('utf8')) as Manifest;
    assert.deepEqual([m2.firstOffset, m2.lastOffset], [m.firstOffset, m.lastOffset]);
    assert.match(readFileSync(second.logFile, 'utf8'), /replaying a flush of an earlier run|realigning to an existing flush/);
  });

  test('a flush another writer fixed first (zombie or earlier run) is matched, not overlapped', async () => {
    const f = await fresh('zombie', { partitions: 1, flushRecords: 400 });
    const n = 2000;
    await produce(f, 0, n);
    // A "zombie" created the manifest of offsets 0..136 and uploaded nothing yet.
    const zombie: Manifest = {
      version: 1,
      topic: f.topic,
      partition: 0,
      firstOffset: 0,
      lastOffset: 136,
      nextOffset: 137,
      records: 137,
      objects: [],
      writer: { host: 'zombie', pid: 1, memberId: 'old-generation' },
      createdAt: new Date().toISOString(),
    };
    assert.equal(await f.store.createManifest(manifestKey(f.prefix, f.topic, 0, 0), zombie), 'created');
    assert.equal(await f.store.createManifest(manifestKey(f.prefix, f.topic, 0, 0), zombie), 'exists', 'the S3 server honours If-None-Match: *');
    const handle = await start(f.config, logger);
    try {
      await waitArchived(f);
    } finally {
      await handle.stop();
    }
    const c = await readArchive(f);
    assert.deepEqual(exactlyOnceProblems(c, n), []);
    // The objects of the first flush hold exactly offsets 0..136 (seq = offset here: one partition).
    const firstFlush = c.keys.filter((k) => parseDataKey(k)!.firstOffset <= 136);
    let inFirst = 0;
    for (const k of firstFlush)
      inFirst += gunzipSync(await f.store.getBytes(k))
        .toString('utf8')
        .trim()
        .split('\n').length;
    assert.equal(inFirst, 137);
    assert.ok(c.keys.includes(dataKey(f.prefix, f.topic, 0, hourOf(eventFor(0).timestamp)!, 0)));
  });

  test('a rebalance while flushes are in flight: a member joins, then the first leaves mid-stream, exactly once', async () => {
    const f = await fresh('rebalance', { partitions: 4, flushRecords: 250, idleFlushS: 1 });
    const a = await start(f.config, logger);
    let b: Awaited<ReturnType<typeof start>> | undefined;
    let seq = 0;
    let stopLoad = false;
    const load = (async () => {
      while (!stopLoad) {
        await produce(f, seq, seq + 300);
        seq += 300;
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    try {
      await waitUntil('some flushes by member A', async () => (await readArchive(f)).manifests.length >= 4, 60_000);
      b = await start(f.config, logger);
      const records = async (h: typeof a) => (await h.archiver.metrics.records.get()).values[0]?.value ?? 0;
      await waitUntil('member B archives', async () => (await records(b!)) > 0, 90_000);
      await a.stop();
      const bBefore = await records(b);
      await waitUntil('member B takes over', async () => (await records(b!)) > bBefore + 1000, 90_000);
      stopLoad = true;
      await load;
      await waitArchived(f, 120_000);
    } finally {
      stopLoad = true;
      await load.catch(() => undefined);
      await a.stop();
      await b?.stop();
    }
    const c = await readArchive(f);
    assert.ok(seq >= 3000, `${seq} events`);
    assert.deepEqual(exactlyOnceProblems(c, seq), []);
  });

  test('S3 stopped for 30 s under load, then started: nothing lost, nothing twice, consumption paused and resumed', async (t) => {
    const stackJs = path.join(repoRoot, 'cli/dist/src/stack/index.js');
    const native = !process.env.S3_ENDPOINT || /^http:\/\/127\.0\.0\.1:9000\/?$/.test(process.env.S3_ENDPOINT);
    if (!existsSync(stackJs) || !native) {
      t.skip('needs the native stack (cli/dist/src/stack) to stop and start the S3 server');
      return;
    }
    const stack = (fn: 'stopS3' | 'startS3') =>
      execFileSync(
        process.execPath,
        ['-e', `require(${JSON.stringify(stackJs)}).${fn}({ log: () => {} }).then(() => process.exit(0), (e) => { console.error(e); process.exit(1); })`],
        {
          stdio: ['ignore', 'inherit', 'inherit'],
          timeout: 120_000,
          env: { ...process.env, NODE_NO_WARNINGS: '1' },
        },
      );
    const f = await fresh('outage', { partitions: 2, flushRecords: 300, idleFlushS: 1 });
    const handle = await start(f.config, logger);
    const m = handle.archiver.metrics;
    let seq = 0;
    let stopLoad = false;
    const load = (async () => {
      while (!stopLoad) {
        await produce(f, seq, seq + 200);
        seq += 200;
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    let s3Down = false;
    try {
      await waitUntil('the first flushes', async () => (await readArchive(f)).manifests.length >= 2, 60_000);
      stack('stopS3');
      s3Down = true;
      const stoppedAt = Date.now();
      await waitUntil('back-pressure: a partition paused', async () => ((await m.paused.get()).values[0]?.value ?? 0) > 0, 30_000, 100);
      await new Promise((r) => setTimeout(r, Math.max(0, 30_000 - (Date.now() - stoppedAt))));
      stack('startS3');
      s3Down = false;
      await new Promise((r) => setTimeout(r, 3000));
      stopLoad = true;
      await load;
      await waitArchived(f, 120_000);
      assert.equal((await m.paused.get()).values[0]?.value ?? 0, 0, 'resumed by itself');
      const errors = (await m.uploadErrors.get()).values.reduce((n, v) => n + v.value, 0);
      assert.ok(errors > 0, 'upload errors were counted');
    } finally {
      stopLoad = true;
      await load.catch(() => undefined);
      if (s3Down) stack('startS3');
      await handle.stop();
    }
    const c = await readArchive(f);
    assert.deepEqual(exactlyOnceProblems(c, seq), []);
    assert.ok(seq > 5000, `under load (${seq} events)`);
  });
});
