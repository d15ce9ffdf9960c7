// Fidelity in single-host mode (`netmon run`): real programs (Java, Node,
// curl, Python, C with io_uring) make real connections on this host, log what
// they did, and every event the spec promises is checked field by field
// against that log: pid, tid, ppid, binary_path, filename, args, the
// four-tuple, cookie pairing of Establish/Accept with Close, container_id,
// promptness, and NetworkEvent v2's facts (how each connection ended, how long
// it lasted, its payload bytes, netns, process_key; TcpListen). All workloads
// run once under one `netmon run`; each test checks one of them.
// fidelity-pipeline.test.ts checks the same through Kafka and S3.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { NetworkEvent } from '@netmon/common';
import { type Child, DenyWorkload, EventLines, FidelityScenario, WORKLOADS, startNetmon, waitUntil } from '../src';

const isRoot = process.getuid?.() === 0;
const rootSkip = isRoot ? false : 'the kernel probes need root';
if (!isRoot) console.log('# fidelity (single-host): skipped: the kernel probes need root');

/** `netmon run` with a config of its own (no broker needed); resolves once the probes are attached. */
async function startRun(dir: string, extra = ''): Promise<{ run: Child; lines: EventLines }> {
  const config = path.join(dir, `netmon-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(config, `kafka: { brokers: [127.0.0.1:1] }\n${extra}\n`);
  const run = startNetmon(['run', '--config', config]);
  const lines = new EventLines(run);
  await waitUntil('netmon run to attach its probes', () => run.stderr().includes('probes attached') || run.proc.exitCode !== null, 60_000);
  if (run.proc.exitCode !== null) throw new Error(`netmon run exited ${run.proc.exitCode}: ${run.stderr().slice(-2000)}`);
  return { run, lines };
}

function verdict(t: { skip(msg: string): void }, v: { skip?: string; mismatches: string[] }, id: string, note = ''): void {
  if (v.skip) {
    console.log(`# fidelity ${id} skipped: ${v.skip}`);
    t.skip(v.skip);
    return;
  }
  const mismatches = note && v.mismatches.length > 0 ? [...v.mismatches, note] : v.mismatches;
  assert.ok(mismatches.length === 0, `workload ${id}: ${v.mismatches.length} mismatch(es) with the spec:\n  ${mismatches.join('\n  ')}`);
}

/** Why netmon run ended before it was stopped, from its stderr ('' while it runs). */
function died(run: Child): string {
  if (run.proc.exitCode === null && run.proc.signalCode === null) return '';
  const err = run.stderr();
  const cause = /^\w*Error: .*$/m.exec(err)?.[0] ?? err.trim().split('\n').slice(-3).join(' | ');
  return `NOTE: netmon run died during the workloads (exit ${run.proc.exitCode ?? run.proc.signalCode}): ${cause}`;
}

describe('fidelity in single-host mode (netmon run), every workload under one sensor', { skip: rootSkip }, () => {
  const sc = new FidelityScenario();
  let events: NetworkEvent[] = [];
  let arrival: (e: NetworkEvent) => number | undefined = () => undefined;
  let stderr = '';
  let note = '';

  before(
    async () => {
      await sc.beforeSensor();
      const { run, lines } = await startRun(sc.dir);
      try {
        await sc.run();
        await waitUntil('every workload event (or the grace after the marker)', () => died(run) !== '' || sc.complete(lines.events()), 120_000, 200).catch(
          (err) => console.log(`# ${(err as Error).message}`),
        );
        note = died(run);
        if (note) console.log(`# ${note}`);
      } finally {
        const code = await run.stop('SIGINT');
        stderr = run.stderr();
        if (code !== 0) console.log(`# netmon run exited ${code}: ${stderr.slice(-1500)}`);
      }
      events = lines.events();
      arrival = lines.arrival;
      if (lines.junk.length > 0) console.log(`# netmon run printed ${lines.junk.length} non-JSON lines, e.g. ${lines.junk[0]!.slice(0, 200)}`);
      console.log(`# netmon run printed ${events.length} events`);
      // for a closer look at what came: NETMON_FIDELITY_EVENTS=/tmp/events.jsonl
      const dump = process.env.NETMON_FIDELITY_EVENTS;
      if (dump) writeFileSync(dump, events.map((e) => `${JSON.stringify(e)}\n`).join(''));
    },
    { timeout: 300_000 },
  );
  after(() => sc.cleanup());

  for (const w of WORKLOADS) {
    test(w.title, (t) => verdict(t, sc.check(w.id, events, arrival), w.id, note));
  }

  test('netmon run stays up through every workload and loses nothing in the kernel', () => {
    assert.equal(note, '', note);
    assert.doesNotMatch(stderr, /records lost in the kernel/, stderr.slice(-500));
  });
});

describe('fidelity: a deny rule with the front of a 600-byte path drops that program (netmon run)', { skip: rootSkip }, () => {
  const w = new DenyWorkload();
  after(() => w.cleanup());

  test('i. process_filter { deny_list: true, binary.prefix: [first 40 bytes of the path] }: its events are gone, the same binary elsewhere passes', async (t) => {
    const skip = w.prepare();
    if (skip) {
      console.log(`# fidelity deny skipped: ${skip}`);
      t.skip(skip);
      return;
    }
    await w.startSink();
    const { run, lines } = await startRun(w.dir, w.filterYaml());
    let note = '';
    try {
      await w.run();
      await waitUntil("the control's events and the sink's events of the denied connection", () => died(run) !== '' || w.ready(lines.events()), 30_000).catch(
        (err) => console.log(`# ${(err as Error).message}`),
      );
      note = died(run);
    } finally {
      await run.stop('SIGINT');
    }
    const problems = w.check(lines.events());
    assert.ok(problems.length === 0, [...problems, note].filter(Boolean).join('\n  '));
  });
});
