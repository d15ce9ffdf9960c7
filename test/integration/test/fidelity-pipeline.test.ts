// Fidelity through the pipeline: the same workloads as fidelity.test.ts (real
// Java, Node, curl, Python, C/io_uring programs on this host), run once under
// the real sensor → Kafka → enricher → events topic → archiver → S3, and every
// workload's events checked field by field in the archive as `netmon query`
// returns it. The events topic must carry the same events, and nothing may be
// dead-lettered.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { NetworkEvent } from '@netmon/common';
import {
  ARCHIVE_SQL,
  DenyWorkload,
  FidelityScenario,
  type Pipeline,
  WORKLOADS,
  archived,
  deadLetters,
  queryArchive,
  readEventsTopic,
  runQuery,
  startPipeline,
  stopPipelines,
  waitUntil,
} from '../src';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.log('# fidelity (pipeline): skipped: the kernel probes need root');

/** The services that ended before the test stopped them, with the error they printed ('' when all run). */
function deadServices(p: Pipeline): string {
  const dead = [...p.children].filter(([, c]) => c.proc.exitCode !== null || c.proc.signalCode !== null);
  return dead
    .map(([name, c]) => {
      const err = c.stderr();
      const cause = /^\w*Error: .*$/m.exec(err)?.[0] ?? err.trim().split('\n').slice(-2).join(' | ').slice(0, 400);
      return `NOTE: the ${name} died during the workloads (exit ${c.proc.exitCode ?? c.proc.signalCode}): ${cause}`;
    })
    .join('\n  ');
}

const key = (e: NetworkEvent) => `${e.source.run_id}/${e.source.seq}`;
/** The spec's fields, v2's included (later schema versions may add more after `process_key`). */
const specFields = (e: NetworkEvent | undefined) =>
  e &&
  JSON.stringify({
    type: e.type,
    process: e.process,
    network_event: e.network_event,
    timestamp: e.timestamp,
    host: e.host,
    source: e.source,
    connection: e.connection,
    process_key: e.process_key,
  });

describe('fidelity through the pipeline (sensor → Kafka → enricher → archiver → S3 → netmon query)', {
  skip: isRoot ? false : 'the kernel probes need root',
}, () => {
  const sc = new FidelityScenario({ graceMs: 8000 });
  let p: Pipeline;
  let events: NetworkEvent[] = [];
  let note = '';

  before(
    async () => {
      await sc.beforeSensor(); // the connection of workload h predates the sensor
      p = await startPipeline();
      await sc.run();
      await waitUntil(
        'every workload event archived (or the grace after the marker)',
        async () => deadServices(p) !== '' || sc.complete(await archived(p)),
        180_000,
        1000,
      ).catch((err) => console.log(`# ${(err as Error).message}`));
      note = deadServices(p);
      if (note) console.log(`# ${note}`);
      events = await queryArchive(p);
      console.log(`# netmon query returned ${events.length} archived events`);
    },
    { timeout: 420_000 },
  );
  after(async () => {
    await sc.cleanup();
    await stopPipelines();
  });

  for (const w of WORKLOADS) {
    test(w.title, (t) => {
      const v = sc.check(w.id, events);
      if (v.skip) {
        console.log(`# fidelity ${w.id} skipped: ${v.skip}`);
        t.skip(v.skip);
        return;
      }
      const mismatches = note && v.mismatches.length > 0 ? [...v.mismatches, note] : v.mismatches;
      assert.ok(mismatches.length === 0, `workload ${w.id}: ${v.mismatches.length} mismatch(es) with the spec:\n  ${mismatches.join('\n  ')}`);
    });
  }

  test('the sensor, enricher and archiver stay up through every workload', () => {
    assert.equal(note, '', note);
  });

  test('the events topic carries the archived events of the workloads, each once; the dead-letter topic is empty', async () => {
    const pids = sc.pids();
    const mine = (list: NetworkEvent[]) => list.filter((e) => pids.has(e.process.pid));
    const archivedKeys = new Set(mine(events).map(key));
    assert.equal(archivedKeys.size, mine(events).length, 'an archived event twice (same run_id/seq)');
    const onTopic = await readEventsTopic(p, (list) => {
      const have = new Set(mine(list).map(key));
      return [...archivedKeys].every((k) => have.has(k));
    });
    const topicMine = mine(onTopic);
    const topicKeys = new Set(topicMine.map(key));
    assert.equal(topicKeys.size, topicMine.length, 'an event twice on the events topic');
    const notArchived = topicMine.filter((e) => !archivedKeys.has(key(e)));
    assert.deepEqual(notArchived.slice(0, 5), [], `${notArchived.length} events on the topic are not in the archive`);
    const byKey = new Map(topicMine.map((e) => [key(e), e]));
    const differ = mine(events).filter((e) => specFields(byKey.get(key(e))) !== specFields(e));
    assert.deepEqual(
      differ.slice(0, 3).map((e) => ({ archive: e, topic: byKey.get(key(e)) })),
      [],
      `${differ.length} archived events differ from the topic's`,
    );
    const dlq = await deadLetters(p);
    assert.equal(dlq.count, 0, `dead-lettered records: ${dlq.reasons.join(' | ')}`);
  });

  test('netmon query --json through a pipe prints every row (as many as with stdout on a file)', async () => {
    const piped = await runQuery(p, ARCHIVE_SQL, 'pipe');
    const lines = piped.split('\n').filter(Boolean);
    const last = lines.at(-1) ?? '';
    assert.ok(
      lines.length >= events.length && piped.endsWith('\n'),
      `through a pipe netmon query printed ${piped.length} bytes, ${lines.length} lines, not the ${events.length} rows it printed to a file; the last line ends ${JSON.stringify(last.slice(-80))} (stdout not drained before exit?)`,
    );
  });
});

describe('fidelity through the pipeline: a deny rule with the front of a 600-byte path drops that program', {
  skip: isRoot ? false : 'the kernel probes need root',
}, () => {
  const w = new DenyWorkload();
  after(async () => {
    await w.cleanup();
    await stopPipelines();
  });

  test('i. process_filter { deny_list: true, binary.prefix: [first 40 bytes of the path] } in the enricher: its events are not archived, the same binary elsewhere is', async (t) => {
    const skip = w.prepare();
    if (skip) {
      console.log(`# fidelity deny skipped: ${skip}`);
      t.skip(skip);
      return;
    }
    await w.startSink();
    const p = await startPipeline(w.filterYaml());
    await w.run();
    await waitUntil(
      "the control's events and the sink's events of the denied connection archived",
      async () => deadServices(p) !== '' || w.ready(await archived(p)),
      90_000,
      1000,
    ).catch((err) => console.log(`# ${(err as Error).message}`));
    const problems = w.check(await queryArchive(p));
    const note = deadServices(p);
    assert.ok(problems.length === 0, [...problems, note].filter(Boolean).join('\n  '));
  });
});
