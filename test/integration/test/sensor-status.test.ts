// Coverage you can query, on the real pipeline: the sensor's heartbeats
// (status_interval_s: 1) go through the enricher's transactions to the status
// topic, and the archiver writes them under <prefix>-status; `netmon query`
// reads them as sensor_status. The sensor is stopped for a while and started
// again: the shared query infra/athena/queries/sensor-gaps.sql, over a window
// of this test, lists this host with exactly that gap and two sensor runs.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { createS3Client } from '@netmon/common';
import { NETMON_BIN, REPO_ROOT, startPipeline, stopPipelines, testConfig, waitUntil } from '../src';

const isRoot = process.getuid?.() === 0;
const cache = mkdtempSync(path.join(tmpdir(), 'netmon-status-cache-'));
after(async () => {
  await stopPipelines();
  rmSync(cache, { recursive: true, force: true });
});

/** `netmon query --json` as a user runs it, with the pipeline's config (its bucket and prefix); SQL that starts with a comment goes in a file. */
function query(config: string, sql: string): Array<Record<string, unknown>> {
  let args = [sql];
  if (sql.startsWith('--')) {
    const file = path.join(cache, 'query.sql');
    writeFileSync(file, sql);
    args = ['--file', file];
  }
  const r = spawnSync(process.execPath, [NETMON_BIN, 'query', '--json', '--config', config, ...args], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, NETMON_CACHE_DIR: cache },
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

const s3Settings = testConfig().s3;
const s3 = createS3Client(s3Settings);

async function keysUnder(prefix: string): Promise<string[]> {
  const listed = await s3.send(new ListObjectsV2Command({ Bucket: s3Settings.bucket, Prefix: prefix }));
  return (listed.Contents ?? []).map((o) => o.Key!);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('sensor status records in the archive (real sensor, enricher, archiver, netmon query)', {
  skip: isRoot ? false : 'the kernel probes need root',
}, () => {
  test('heartbeats under <prefix>-status, queryable as sensor_status, each once; a stopped sensor is a gap of sensor-gaps.sql', async (t) => {
    const p = await startPipeline();
    // The first run's heartbeats reach the status archive: gzip NDJSON under <prefix>-status/dt=/hour=/.
    const first = await waitUntil('status objects under the status prefix', async () => {
      const keys = await keysUnder(`${p.prefix}-status/dt=`);
      return keys.length > 0 ? keys : undefined;
    });
    assert.match(first[0]!, new RegExp(`^${p.prefix}-status/dt=\\d{4}-\\d{2}-\\d{2}/hour=\\d{2}/netmon\\.e2e\\.status\\.[^/]+\\+\\d+\\+\\d{20}\\.json\\.gz$`));
    assert.deepEqual(await keysUnder(`${p.prefix}/dt=`).then((k) => k.filter((x) => x.includes('.status.'))), [], 'no status object among the events');

    // Down for 8 s (more than 5 status intervals), then a new run.
    await sleep(3000);
    const stoppedAt = Date.now();
    assert.equal(await p.children.get('sensor')!.stop('SIGTERM'), 0);
    await sleep(8000);
    await p.start('sensor');
    const restartedAt = Date.now();
    const runs = await waitUntil(
      'heartbeats of both sensor runs in netmon query',
      () => {
        const r = query(
          p.config,
          'SELECT source.run_id AS run_id, count(*) AS n, max("timestamp") AS last FROM sensor_status GROUP BY 1 ORDER BY min("timestamp")',
        );
        return r.length === 2 && (r[1]!.n as number) >= 3 ? r : undefined;
      },
      120_000,
      2000,
    );

    const all = query(
      p.config,
      'SELECT "timestamp", host.hostname AS hostname, host.id AS host_id, source.run_id AS run_id, source.seq AS seq, seen, lost_kernel, spooled, dropped, spool_bytes, dt, hour FROM sensor_status ORDER BY "timestamp", source.seq',
    );
    assert.equal(new Set(all.map((r) => `${r.run_id}/${r.seq}`)).size, all.length, 'every heartbeat once');
    assert.equal(new Set(all.map((r) => r.host_id)).size, 1, 'one host');
    for (const [i, r] of all.entries()) {
      assert.match(r.timestamp as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.equal(r.dt, (r.timestamp as string).slice(0, 10));
      assert.equal(r.hour, Number((r.timestamp as string).slice(11, 13)));
      const prev = all[i - 1];
      if (prev?.run_id === r.run_id) {
        assert.ok((r.seq as number) > (prev.seq as number), 'a run: sequence numbers grow');
        assert.ok((r.seen as number) >= (prev.seen as number), 'a run: its counters only grow');
      }
    }
    assert.ok(
      all.some((r) => (r.seen as number) > 0),
      'the kernel records counted',
    );

    // The shared query over this test's window: from the first heartbeat to just after the last one,
    // the status interval of this pipeline (1 s), a gap above 5 intervals.
    const firstBeat = all[0]!.timestamp as string;
    const lastBeat = Date.parse(all[all.length - 1]!.timestamp as string);
    const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
    const sql = readFileSync(path.join(REPO_ROOT, 'infra/athena/queries/sensor-gaps.sql'), 'utf8')
      .replace("'2025-06-01T00:00:00Z'", `'${firstBeat}'`)
      .replace("'2025-06-02T00:00:00Z'", `'${new Date(lastBeat + 500).toISOString()}'`)
      .replace('10 AS interval_s', '1 AS interval_s')
      .replace('3 AS factor', '5 AS factor')
      .replace("dt BETWEEN '2025-05-31' AND '2025-06-01'", `dt BETWEEN '${day(Date.parse(firstBeat) - 86_400_000)}' AND '${day(lastBeat)}'`);
    assert.notEqual(sql, readFileSync(path.join(REPO_ROOT, 'infra/athena/queries/sensor-gaps.sql'), 'utf8'));
    const gaps = query(p.config, sql);
    assert.equal(gaps.length, 1, JSON.stringify(gaps));
    const g = gaps[0]!;
    t.diagnostic(`${all.length} heartbeats; sensor-gaps.sql: ${JSON.stringify(g)}`);
    assert.equal(g.host_id, all[0]!.host_id);
    assert.equal(g.runs, 2, 'two sensor runs in the window');
    assert.equal(g.heartbeats, all.length);
    assert.equal(g.gaps, 1, `exactly the stop: ${JSON.stringify(g)}`);
    const gapStart = Date.parse(g.first_gap_at as string);
    assert.ok(
      gapStart >= stoppedAt - 2000 && gapStart <= stoppedAt + 1000,
      `the gap starts at the last heartbeat of the first run (stopped at ${new Date(stoppedAt).toISOString()}): ${g.first_gap_at}`,
    );
    const longest = g.longest_gap_s as number;
    assert.ok(longest >= 8 && longest <= (restartedAt - stoppedAt) / 1000 + 5, `the gap lasts the downtime: ${longest} s`);
    assert.equal(g.last_heartbeat, all[all.length - 1]!.timestamp);
    assert.deepEqual(
      runs.map((r) => r.run_id),
      [...new Set(all.map((r) => r.run_id))],
      'the two runs, in time order',
    );
  });
});
