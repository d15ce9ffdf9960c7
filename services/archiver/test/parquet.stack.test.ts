// Parquet mode on the real stack (the native stack of `netmon stack up`, or
// KAFKA_BROKERS + S3_ENDPOINT), as archiver.stack.test.ts does for JSON: a
// kill -9 after upload and before commit loses and duplicates nothing; a switch
// from JSON to Parquet right after such a crash neither (the manifest fixes the
// replayed flush's format); `netmon query`'s mirror and views over the two
// prefixes together return every event once. ("stack" in the file name keeps it
// out of `npm run test:unit`.)
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { DuckDBInstance } from '@duckdb/node-api';
import type { NetworkEvent } from '@netmon/common';
import { type ArchiveFormat, dataPrefix, manifestKey, parseDataKey } from '../src/layout';
import { type Manifest, manifestFormat } from '../src/manifest';
import { ArchiveQuery, syncArchive } from '../src/query';
import {
  type Child,
  type Fixture,
  cleanup,
  committed,
  endOffsets,
  exactlyOnceProblems,
  fixture,
  produce,
  spawnArchiver,
  startS3Tap,
  waitUntil,
} from './harness';

const fixtures: Fixture[] = [];
const dirs: string[] = [];
after(async () => {
  for (const f of fixtures) {
    await f.store.deletePrefix(`${dataPrefix(f.prefix, 'parquet')}/`).catch(() => undefined);
    await cleanup(f);
  }
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function fresh(name: string, o: Parameters<typeof fixture>[1] = {}): Promise<Fixture> {
  const f = await fixture(name, o);
  fixtures.push(f);
  return f;
}

/** Sets archiver.format in the fixture's config file (read by the next archiver started). */
function setFormat(f: Fixture, format: ArchiveFormat): void {
  const yaml = readFileSync(f.configFile, 'utf8').replace(/archiver: \{ (format: \w+, )?/, `archiver: { format: ${format}, `);
  writeFileSync(f.configFile, yaml);
}

function tmp(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'netmon-parquet-stack-'));
  dirs.push(d);
  return d;
}

interface Contents {
  keys: string[];
  manifests: string[];
  counts: Map<number, number>;
  /** Data objects per format. */
  byFormat: Record<ArchiveFormat, number>;
}

/** Every data object of both formats of the fixture's archive, and the events in them by seq. */
async function readBoth(f: Fixture): Promise<Contents> {
  const listed = [...(await f.store.list(`${f.prefix}/`)), ...(await f.store.list(`${dataPrefix(f.prefix, 'parquet')}/`))];
  const keys = listed.map((o) => o.key).filter((k) => parseDataKey(k) !== undefined);
  const manifests = listed.map((o) => o.key).filter((k) => k.includes('/_flushes/'));
  const counts = new Map<number, number>();
  const byFormat = { json: 0, parquet: 0 };
  const dir = tmp();
  const instance = await DuckDBInstance.create(':memory:');
  const c = await instance.connect();
  try {
    for (const key of keys) {
      const format = parseDataKey(key)!.format;
      byFormat[format]++;
      const body = await f.store.getBytes(key);
      let seqs: number[];
      if (format === 'json') {
        seqs = gunzipSync(body)
          .toString('utf8')
          .trim()
          .split('\n')
          .map((l) => (JSON.parse(l) as NetworkEvent).source.seq);
      } else {
        const file = path.join(dir, 'object.parquet');
        writeFileSync(file, body);
        seqs = (await c.runAndReadAll(`SELECT source.seq FROM read_parquet('${file}')`)).getRows().map((r) => Number(r[0]));
      }
      for (const s of seqs) counts.set(s, (counts.get(s) ?? 0) + 1);
    }
  } finally {
    c.closeSync();
    instance.closeSync();
  }
  return { keys, manifests, counts, byFormat };
}

async function waitArchived(f: Fixture, timeoutMs = 120_000): Promise<void> {
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

/**
 * Runs the archiver through a tap in front of S3 and kills it (SIGKILL, from
 * outside) the moment S3 has stored every object of one flush, before the last
 * answer reaches it: that flush is in S3 and not committed. Returns its manifest.
 */
async function killAfterAFlush(f: Fixture): Promise<{ manifest: Manifest; run: Child }> {
  const stored = new Set<string>();
  const manifests = new Map<string, Manifest | undefined>();
  let run: Child | undefined;
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
        run!.proc.kill('SIGKILL');
        await run!.exited;
        return;
      }
    }
  });
  try {
    run = spawnArchiver(f, { NETMON_S3_ENDPOINT: tap.endpoint }, 'crash');
    const how = await Promise.race([run.exited, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('run 1 was not killed')), 90_000))]);
    assert.equal(how.signal, 'SIGKILL', readFileSync(run.logFile, 'utf8').slice(-2000));
  } finally {
    if (run && run.proc.exitCode === null && run.proc.signalCode === null) run.proc.kill('SIGKILL');
    await tap.close();
  }
  assert.ok(killedAt, 'killed by the test once a flush was in S3');
  assert.doesNotMatch(readFileSync(run.logFile, 'utf8'), /flush committed/, 'run 1 committed nothing');
  return { manifest: killedAt, run };
}

/** Runs the archiver as a process until every event is committed, then SIGTERM; asserts a clean exit. */
async function runToEnd(f: Fixture, tag: string): Promise<Child> {
  const run = spawnArchiver(f, {}, tag);
  try {
    await waitArchived(f);
  } finally {
    run.proc.kill('SIGTERM');
  }
  const exit = await run.exited;
  assert.equal(exit.code, 0, `clean exit on SIGTERM: ${readFileSync(run.logFile, 'utf8').slice(-2000)}`);
  return run;
}

describe('archiver in Parquet mode on the real stack', () => {
  test('kill -9 after upload and before commit, then a restart that cuts elsewhere: exactly once, the same Parquet bytes again', async () => {
    const f = await fresh('pq-crash', { flushRecords: 300 });
    setFormat(f, 'parquet');
    const n = 3000;
    await produce(f, 0, n);
    const { manifest: m } = await killAfterAFlush(f);
    assert.equal(manifestFormat(m), 'parquet');
    assert.ok(
      m.objects.every((o) => o.key.startsWith(`${f.prefix}-parquet/dt=`) && o.key.endsWith('.parquet')),
      'Parquet objects under <prefix>-parquet',
    );
    const afterCrash = await readBoth(f);
    assert.equal(afterCrash.byFormat.json, 0);
    assert.ok(
      afterCrash.manifests.every((k) => k.startsWith(`${f.prefix}/_flushes/`)),
      'manifests under s3.prefix',
    );
    const before = new Map<string, string>();
    for (const key of afterCrash.keys) before.set(key, (await f.store.getBytes(key)).toString('base64'));

    // Run 2 would cut at 1000 records (not 300): it must still end its first flush where run 1 did.
    writeFileSync(f.configFile, readFileSync(f.configFile, 'utf8').replace('flush_records: 300', 'flush_records: 1000'));
    await produce(f, n, n + 500);
    const second = await runToEnd(f, 'restart');
    const c = await readBoth(f);
    assert.deepEqual(exactlyOnceProblems({ ...c, lines: [] }, n + 500), [], readFileSync(second.logFile, 'utf8').slice(-3000));
    assert.equal(c.byFormat.json, 0, 'Parquet only');
    for (const [key, body] of before) assert.equal((await f.store.getBytes(key)).toString('base64'), body, `${key} rewritten with the same bytes`);
    const m2 = JSON.parse((await f.store.getBytes(manifestKey(f.prefix, f.topic, m.partition, m.firstOffset))).toString('utf8')) as Manifest;
    assert.deepEqual([m2.firstOffset, m2.lastOffset, m2.format], [m.firstOffset, m.lastOffset, 'parquet']);
    assert.match(readFileSync(second.logFile, 'utf8'), /replaying a flush of an earlier run|realigning to an existing flush/);
  });

  test('kill -9 in JSON mode, restart in Parquet mode: the crashed flush replays as JSON, the rest is Parquet; netmon query over both prefixes returns every event once', async () => {
    const f = await fresh('pq-switch', { flushRecords: 250 });
    const n = 2000;
    await produce(f, 0, n);
    const { manifest: m } = await killAfterAFlush(f);
    assert.equal(manifestFormat(m), 'json');

    setFormat(f, 'parquet');
    await produce(f, n, n + 500);
    const second = await runToEnd(f, 'parquet');
    const log = readFileSync(second.logFile, 'utf8');
    const c = await readBoth(f);
    assert.deepEqual(exactlyOnceProblems({ ...c, lines: [] }, n + 500), [], log.slice(-3000));
    assert.ok(c.byFormat.json > 0 && c.byFormat.parquet > 0, `both formats: ${JSON.stringify(c.byFormat)}`);
    for (const o of m.objects) assert.ok(c.keys.includes(o.key), `${o.key}: the crashed JSON flush, replayed as JSON`);
    for (const mk of c.manifests) {
      const man = (await f.store.getManifest(mk))!;
      assert.ok(
        man.objects.every((o) => parseDataKey(o.key)!.format === manifestFormat(man)),
        `${mk}: objects in the manifest's format`,
      );
    }

    // netmon query: both prefixes mirrored into one folder, every event once.
    const cache = tmp();
    const sync = await syncArchive(f.store, f.prefix, cache);
    assert.equal(sync.objects, c.keys.length);
    const q = await ArchiveQuery.open(cache);
    try {
      const rows = (await q.jsonRows('SELECT source.seq AS seq, count(*) AS n FROM netmon_events GROUP BY 1 ORDER BY 1')).map(
        (r) => JSON.parse(r) as { seq: number; n: number },
      );
      assert.equal(rows.length, n + 500, 'every event');
      assert.deepEqual(
        rows.filter((r) => r.n !== 1),
        [],
        'once',
      );
      assert.deepEqual(
        rows.map((r) => r.seq),
        Array.from({ length: n + 500 }, (_, i) => i),
      );
      const [mixed] = await q.jsonRows(
        "SELECT count(*) FILTER (WHERE event_time IS NULL) AS no_time, count(DISTINCT dt || '/' || hour) AS hours FROM network_events",
      );
      assert.deepEqual(JSON.parse(mixed!), { no_time: 0, hours: 2 });
    } finally {
      q.close();
    }
  });
});
