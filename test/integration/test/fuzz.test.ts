// Hostile input against a real pipeline (issue 12, "Hostile input"): the real
// sensor, enricher and archiver with fresh topics, and a seeded random mix
// written to the raw and events topics: random bytes, large records, truncated
// records, unknown writer fingerprints, bodies that do not decode, records that
// break the contract, unreadable and impossible timestamps; records of the
// older writer schemas in schemas/avro/history/; valid current records in
// between. Every bad record must reach the dead-letter topic once, with its
// reason and its source topic, partition and offset (read as
// `netmon tail --topic dlq` prints them); every valid record must pass (raw
// socket records become their events, events are archived, old writers read as
// their record plus the current schema's defaults); the services' counters must
// say what was sent; no service may stop. Then the size limits: a record over
// the topic's max.message.bytes is refused by the broker, one at it is
// dead-lettered without stalling its partition (the dead-letter topic takes
// what its sources take). Last, on a pipeline of its own, a 56-byte record
// claiming a billion array items.
//
// NETMON_FUZZ_SEED=N repeats a run; every failure names its seed.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { DLQ_MAX_VALUE_BYTES, loadConfig, type NetworkEvent } from '@netmon/common';
import type { Producer } from 'kafkajs';
import { type Pipeline, type Service, startPipeline, stopPipelines, testKafka, waitUntil } from '../src';
import {
  ArchiveReader,
  type DeadLetter,
  DlqReader,
  type Item,
  MixBuilder,
  Rng,
  committedOffsets,
  counterByLabel,
  encodeEvent,
  fuzzSeed,
  highWatermarks,
  hugeArrayRecord,
  messageLimits,
  sha,
} from '../src/fuzz';
import { metricsPortOf } from '../src/prometheus';

const isRoot = process.getuid?.() === 0;
const SERVICES: readonly Service[] = ['sensor', 'enricher', 'archiver'];
/** Random records up to this size in the mix: under librdkafka's default message.max.bytes (1,000,000) with room for the dead-letter headers. */
const MAX_LARGE = 900_000;
/** The array count of the crafted record: past what a JavaScript array can hold as a dictionary, under 2^32 (avsc allocates it). */
const HUGE_COUNT = 1_000_000_000;

const key = (topic: string, partition: number, offset: number | string) => `${topic}/${partition}/${offset}`;
const letterKey = (l: DeadLetter) => key(l.source.topic, l.source.partition, l.source.offset);
const tally = (reasons: string[]) => {
  const m = new Map<string, number>();
  for (const r of reasons) m.set(r, (m.get(r) ?? 0) + 1);
  return m;
};
const mapText = (m: Map<string, number>) => JSON.stringify(Object.fromEntries([...m].sort()));

describe('fuzz: hostile records on the raw and events topics of a real pipeline', { skip: isRoot ? false : 'the sensor needs root' }, () => {
  const seed = fuzzSeed();
  const rng = new Rng(seed);
  const kafka = testKafka();
  const rawHost = `fuzz-raw-${seed}`;
  const eventsHost = `fuzz-events-${seed}`;
  let p: Pipeline;
  let topics: { raw: string; events: string; dlq: string };
  let groups: { enricher: string; archiver: string };
  let ports: { enricher: number; archiver: number };
  let producer: Producer;
  let dlq: DlqReader;
  let archive: ArchiveReader;
  let builder: MixBuilder;
  let barriers = 0;
  /** How long the last pipeline took to start. */
  let openedMs = 0;

  /** Runs a test body; a failure names the seed that repeats it. */
  const seeded = (body: (t: { diagnostic(m: string): void }) => Promise<void>) => async (t: { diagnostic(m: string): void }) => {
    t.diagnostic(`seed ${seed} (repeat with NETMON_FUZZ_SEED=${seed})`);
    try {
      await body(t);
    } catch (err) {
      if (err instanceof Error) err.message = `[fuzz seed ${seed}: repeat with NETMON_FUZZ_SEED=${seed}] ${err.message}`;
      throw err;
    }
  };

  /** Writes one record; its offset. */
  const send = async (topic: string, partition: number, value: Buffer | null): Promise<number> => {
    const [meta] = await producer.send({ topic, messages: [{ value, partition }] });
    return Number(meta!.baseOffset);
  };

  /** Which services stopped, and what the enricher and archiver complained of (first line of each message). */
  const diagnose = (): string => {
    const lines: string[] = [];
    for (const s of SERVICES) {
      const c = p.children.get(s)!;
      if (c.proc.exitCode !== null || c.proc.signalCode !== null)
        lines.push(`${s} STOPPED (exit ${c.proc.exitCode}, signal ${c.proc.signalCode}): ${c.stderr().slice(-600)}`);
      const seen = new Map<string, number>();
      for (const l of c.stderr().split('\n')) {
        const m = /"level":(\d+).*"msg":"([^"]*)"/.exec(l);
        if (m && Number(m[1]) >= 40) seen.set(m[2]!, (seen.get(m[2]!) ?? 0) + 1);
        else if (/FATAL|out of memory/i.test(l)) seen.set(l.slice(0, 200), (seen.get(l.slice(0, 200)) ?? 0) + 1);
      }
      for (const [msg, n] of seen) {
        const first =
          c
            .stderr()
            .split('\n')
            .find((l) => l.includes(msg)) ?? msg;
        lines.push(`${s} logged ${n}× ${first.slice(0, 500)}`);
      }
    }
    return lines.join('\n');
  };

  const alive = (): string[] =>
    SERVICES.filter((s) => {
      const c = p.children.get(s)!;
      return c.proc.exitCode !== null || c.proc.signalCode !== null;
    }).map((s) => `the ${s} stopped (exit ${p.children.get(s)!.proc.exitCode}, signal ${p.children.get(s)!.proc.signalCode})`);

  /** Waits; on a timeout, says so in `problems` instead of throwing (the checks after it say what is missing). */
  const settle = async (what: string, probe: () => Promise<boolean>, timeoutMs: number, problems: string[]): Promise<boolean> => {
    try {
      await waitUntil(what, async () => (await probe()) || undefined, timeoutMs, 500);
      return true;
    } catch (err) {
      problems.push(`${(err as Error).message}\n${diagnose()}`);
      return false;
    }
  };

  const counters = async () => ({
    enricher: await counterByLabel(ports.enricher, 'netmon_enricher_dlq_total', 'reason'),
    archiver: await counterByLabel(ports.archiver, 'netmon_archiver_decode_errors_total', 'reason'),
  });

  /** The archived events of the raw host by `${run_id}/${seq}`, and of the events host by cookie. */
  const archivedMine = () => {
    const raw = new Map<string, Array<{ key: string; event: NetworkEvent }>>();
    const direct = new Map<number, Array<{ key: string; event: NetworkEvent }>>();
    for (const a of archive.events) {
      if (a.event.host?.id === rawHost) {
        const k = `${a.event.source.run_id}/${a.event.source.seq}`;
        raw.set(k, [...(raw.get(k) ?? []), a]);
      } else if (a.event.host?.id === eventsHost) {
        const c = a.event.network_event.cookie;
        direct.set(c, [...(direct.get(c) ?? []), a]);
      }
    }
    return { raw, direct };
  };

  /** Dead letters read so far, by source, the test's barriers left out. */
  const lettersBySource = () => {
    const out = new Map<string, DeadLetter[]>();
    for (const l of dlq.letters) if (l.barrier === undefined) out.set(letterKey(l), [...(out.get(letterKey(l)) ?? []), l]);
    return out;
  };

  /** The records' dead letters and events, as `problems`. */
  const check = (items: Item[], problems: string[]): void => {
    const letters = lettersBySource();
    const mine = archivedMine();
    for (const it of items) {
      const topic = topics[it.topic];
      const where = `#${it.n} ${it.topic} ${it.kind} (${it.value === null ? 'null' : `${it.value.length} bytes`}, sha ${sha(it.value)}) at ${key(topic, it.partition, it.offset!)}`;
      if (it.reason !== undefined) {
        const got = letters.get(key(topic, it.partition, it.offset!)) ?? [];
        if (got.length !== 1)
          problems.push(`${where}: ${got.length} dead letters, expected 1 (reason ${it.reason})${got.map((l) => `\n    ${l.reason}: ${l.detail}`).join('')}`);
        for (const l of got) {
          if (l.reason !== it.reason) problems.push(`${where}: dead-lettered as "${l.reason}", expected "${it.reason}" (${l.detail})`);
          // A record larger than a dead letter carries goes in cut, saying its length.
          const cut = it.value !== null && it.value.length > DLQ_MAX_VALUE_BYTES;
          const kept = cut ? it.value!.subarray(0, DLQ_MAX_VALUE_BYTES) : it.value;
          if (sha(Buffer.from(l.value_base64, 'base64')) !== sha(kept))
            problems.push(`${where}: the dead letter's value is not the record's bytes${cut ? ' (cut)' : ''}`);
          if (cut && l.original_bytes !== it.value!.length) problems.push(`${where}: the cut dead letter says ${l.original_bytes} original bytes`);
          if (l.detail === '') problems.push(`${where}: the dead letter has no detail`);
        }
      }
      for (const [k, expected] of it.events ?? []) {
        const got = mine.raw.get(k) ?? [];
        if (got.length !== 1) problems.push(`${where}: the event of ${k} archived ${got.length} times, expected once`);
        else
          try {
            assert.deepStrictEqual(got[0]!.event, expected);
          } catch (err) {
            problems.push(`${where}: the event of ${k} differs from what the record says:\n${(err as Error).message.slice(0, 1500)}`);
          }
      }
      for (const run of it.deadRuns ?? []) {
        const passed = [...mine.raw.keys()].filter((k) => k.startsWith(`${run}/`));
        if (passed.length > 0) problems.push(`${where}: dead-lettered whole, yet ${passed.join(', ')} became events`);
      }
      if (it.archived) {
        const got = mine.direct.get(it.archived.network_event.cookie) ?? [];
        if (got.length !== 1) problems.push(`${where}: archived ${got.length} times, expected once`);
        else
          try {
            assert.deepStrictEqual(got[0]!.event, it.archived);
          } catch (err) {
            problems.push(`${where}: archived differently from what was written:\n${(err as Error).message.slice(0, 1500)}`);
          }
      }
      if (it.badCookie !== undefined) {
        for (const a of mine.direct.get(it.badCookie) ?? [])
          problems.push(`${where}: a bad record was archived, as ${a.key}: ${JSON.stringify(a.event).slice(0, 300)}`);
      }
    }
  };

  const finish = (problems: string[]): void => {
    problems.push(...alive());
    assert.deepEqual(problems, [], `${problems.length} problems:\n${problems.join('\n')}`);
  };

  /** A fresh pipeline and its readers. */
  const open = async (): Promise<void> => {
    const t0 = Date.now();
    p = await startPipeline();
    const config = loadConfig(p.config);
    topics = config.topics;
    groups = { enricher: config.enricher.groupId, archiver: config.archiver.groupId };
    ports = {
      enricher: await metricsPortOf(p.children.get('enricher')!, 'enricher'),
      archiver: await metricsPortOf(p.children.get('archiver')!, 'archiver'),
    };
    dlq = await DlqReader.open(topics.dlq, `netmon-it-fuzz-dlq-${seed}-${Date.now()}`);
    archive = new ArchiveReader(p.prefix);
    openedMs = Date.now() - t0;
  };

  before(async () => {
    producer = kafka.producer();
    await producer.connect();
    builder = new MixBuilder(rng, { rawPartitions: 2, eventsPartitions: 2, rawHost, eventsHost, extra: 60, maxLarge: MAX_LARGE });
    await open();
  });

  after(async () => {
    await producer?.disconnect();
    await dlq?.close();
    await stopPipelines();
  });

  test(
    'a seeded mix: each bad record dead-lettered once with its reason and source, the valid ones pass, old writers read as before, counters agree',
    seeded(async (t) => {
      t.diagnostic(`the pipeline started in ${openedMs} ms`);
      const items = builder.build();
      for (const it of items) it.offset = await send(topics[it.topic], it.partition, it.value);
      const bad = items.filter((i) => i.reason !== undefined);
      const kinds = (topic: string) => mapText(tally(items.filter((i) => i.topic === topic).map((i) => i.kind)));
      t.diagnostic(`sent ${items.length} records: raw ${kinds('raw')}; events ${kinds('events')}; ${bad.length} bad`);
      t.diagnostic(`largest ${Math.max(...items.map((i) => i.value?.length ?? 0))} bytes`);

      const problems: string[] = [];
      const past = (topic: 'raw' | 'events') => {
        const m = new Map<number, number>();
        for (const i of items) if (i.topic === topic) m.set(i.partition, Math.max(m.get(i.partition) ?? 0, i.offset! + 1));
        return m;
      };
      // The enricher commits a raw record's events and dead letters with its offset.
      await settle(
        'the enricher to commit past the mix',
        async () => {
          const c = await committedOffsets(kafka, groups.enricher, topics.raw);
          return [...past('raw')].every(([part, o]) => (c.get(part) ?? -1) >= o);
        },
        45_000,
        problems,
      );
      // So its events are below these offsets of the events topic.
      const enriched = await highWatermarks(kafka, topics.events);
      const expectedRaw = items.reduce((n, i) => n + (i.events?.size ?? 0), 0);
      const expectedDirect = items.filter((i) => i.archived).length;
      // The archiver commits past a record once its dead letter is acknowledged or its flush stored; it may not
      // commit past dead-lettered records at the end of a partition (no flush covers them): their letters say it.
      await settle(
        `${expectedRaw} events of raw records archived, and the events topic's records dead-lettered or archived`,
        async () => {
          await archive.refresh();
          const c = await committedOffsets(kafka, groups.archiver, topics.events);
          const at = (part: number, o: number) => (c.get(part) ?? -1) >= o;
          const mine = archivedMine();
          const letters = lettersBySource();
          const rawDone =
            [...enriched].every(([part, o]) => o === 0 || at(part, o)) || items.every((i) => [...(i.events?.keys() ?? [])].every((k) => mine.raw.has(k)));
          const eventsDone = [...past('events')].every(
            ([part, o]) =>
              at(part, o) ||
              items.every(
                (i) =>
                  i.topic !== 'events' ||
                  i.partition !== part ||
                  // decided: dead-lettered or archived, rightly or not (the checks below say which)
                  letters.has(key(topics.events, part, i.offset!)) ||
                  (i.archived !== undefined && mine.direct.has(i.archived.network_event.cookie)) ||
                  (i.badCookie !== undefined && mine.direct.has(i.badCookie)),
              ),
          );
          return rawDone && eventsDone;
        },
        30_000,
        problems,
      );
      t.diagnostic(`expected: ${expectedRaw} events of raw records, ${expectedDirect} written events archived`);
      const archiverAt = await committedOffsets(kafka, groups.archiver, topics.events);
      t.diagnostic(
        `events topic: the archiver committed ${mapText(new Map([...archiverAt].map(([k, v]) => [String(k), v])))}, the mix ends at ${mapText(new Map([...past('events')].map(([k, v]) => [String(k), v])))}`,
      );
      await dlq.barrier(producer, topics.dlq, `barrier-${seed}-${++barriers}`, 20_000);
      await archive.refresh();

      check(items, problems);
      // Dead letters of nothing sent: the sensor's own records, or a valid record of the mix.
      const wanted = new Set(bad.map((i) => key(topics[i.topic], i.partition, i.offset!)));
      for (const [k, ls] of lettersBySource()) {
        if (!wanted.has(k)) for (const l of ls) problems.push(`an unexpected dead letter from ${k}: ${l.reason}: ${l.detail.slice(0, 300)}`);
      }
      const got = await counters();
      const want = {
        enricher: tally(bad.filter((i) => i.topic === 'raw').map((i) => i.reason!)),
        archiver: tally(bad.filter((i) => i.topic === 'events').map((i) => i.reason!)),
      };
      for (const s of ['enricher', 'archiver'] as const) {
        const nonzero = new Map([...got[s]].filter(([, v]) => v !== 0));
        if (mapText(nonzero) !== mapText(want[s])) problems.push(`${s} dead-letter counters by reason ${mapText(nonzero)}, sent ${mapText(want[s])}`);
      }
      t.diagnostic(`dead letters read: ${dlq.letters.filter((l) => !l.barrier).length}; enricher ${mapText(got.enricher)}; archiver ${mapText(got.archiver)}`);
      t.diagnostic(`archived: ${archive.events.length} events in all, of them ${[...archivedMine().raw.values()].length} of raw records of the mix`);
      finish(problems);
    }),
  );

  test(
    'max.message.bytes: the broker refuses a record over it; one at it is dead-lettered and its partition goes on (the dead-letter topic takes what its sources take)',
    seeded(async (t) => {
      const problems: string[] = [];
      const limits = await messageLimits(kafka, [topics.raw, topics.events, topics.dlq]);
      const limit = (topic: string) => limits.topics.get(topic)!;
      t.diagnostic(
        `broker message.max.bytes ${limits.broker}; max.message.bytes raw ${limit(topics.raw)}, events ${limit(topics.events)}, dlq ${limit(topics.dlq)}`,
      );
      for (const source of [topics.raw, topics.events]) {
        if (!(limit(topics.dlq) >= limit(source)))
          problems.push(`the dead-letter topic takes ${limit(topics.dlq)} bytes, its source ${source} ${limit(source)}`);
      }
      // Over the limit: the topic itself refuses it.
      for (const alias of ['raw', 'events'] as const) {
        const value = rng.bytes(limit(topics[alias]) + 1);
        value[0] = 0;
        const refused = await send(topics[alias], 0, value).then(
          (offset) => `taken at offset ${offset}`,
          (err: Error) => err.message,
        );
        t.diagnostic(`${alias}: a record of ${value.length} bytes: ${refused}`);
        if (!/too large|larger than the max message size/i.test(refused))
          problems.push(`${alias}: a record over max.message.bytes (${value.length} bytes) was not refused as too large: ${refused}`);
      }
      // At the limit (a one-record batch's framing is under 100 bytes): the broker takes it, so the pipeline must handle it.
      const before = await counters();
      const items: Item[] = [];
      for (const alias of ['raw', 'events'] as const) {
        const value = rng.bytes(limit(topics[alias]) - 100);
        value[0] = 0;
        items.push({ n: items.length, topic: alias, kind: 'at max.message.bytes', partition: 0, value, reason: 'bad-magic' });
      }
      // Valid records after them on the same partitions must pass.
      const { records, events } = builder.rawMessage('current');
      items.push({ n: items.length, topic: 'raw', kind: 'valid, after it', partition: 0, value: Buffer.concat(records), events });
      const ev = builder.event();
      items.push({ n: items.length, topic: 'events', kind: 'valid, after it', partition: 0, value: encodeEvent(ev), archived: JSON.parse(JSON.stringify(ev)) });
      for (const it of items) it.offset = await send(topics[it.topic], it.partition, it.value);
      const done = await settle(
        'the records at max.message.bytes dead-lettered and the ones after them through',
        async () => {
          await archive.refresh();
          const letters = lettersBySource();
          const mine = archivedMine();
          return items.every(
            (i) =>
              (i.reason === undefined || letters.has(key(topics[i.topic], i.partition, i.offset!))) &&
              [...(i.events?.keys() ?? [])].every((k) => mine.raw.has(k)) &&
              (!i.archived || mine.direct.has(i.archived.network_event.cookie)),
          );
        },
        15_000,
        problems,
      );
      if (done) await dlq.barrier(producer, topics.dlq, `barrier-${seed}-${++barriers}`, 20_000);
      check(items, problems);
      const after = await counters();
      for (const [s, reason] of [
        ['enricher', 'bad-magic'],
        ['archiver', 'bad-magic'],
      ] as const) {
        const delta = (after[s].get(reason) ?? 0) - (before[s].get(reason) ?? 0);
        if (delta !== 1) problems.push(`${s}: its ${reason} counter went up by ${delta}, expected 1`);
      }
      finish(problems);
    }),
  );

  test(
    `a ${hugeArrayRecord(HUGE_COUNT).length}-byte raw record claiming ${HUGE_COUNT} args is dead-lettered as corrupt, and the enricher goes on`,
    seeded(async (t) => {
      // A pipeline of its own: the one before may be left stalled by the record at max.message.bytes.
      const t0 = Date.now();
      await dlq.close();
      for (const s of SERVICES) {
        const c = p.children.get(s)!;
        const t1 = Date.now();
        void c.stop('SIGTERM');
        // A stalled service may not stop on SIGTERM (the Kubernetes grace period is 30 s): say so, and kill it.
        const stopped = await waitUntil(`the ${s} to stop on SIGTERM`, () => c.proc.exitCode !== null || c.proc.signalCode !== null, 10_000).catch(() => false);
        if (!stopped) await c.stop('SIGKILL');
        t.diagnostic(
          `the ${s} of the pipeline before ${stopped ? `stopped on SIGTERM in ${Date.now() - t1} ms` : 'did not stop on SIGTERM within 10 s: killed'}`,
        );
      }
      await p.stop();
      const t1 = Date.now();
      await open();
      t.diagnostic(`the pipeline before gone in ${t1 - t0} ms, a new one started in ${openedMs} ms`);
      const problems: string[] = [];
      const before = await counters();
      const { records, events } = builder.rawMessage('current');
      const items: Item[] = [
        { n: 0, topic: 'raw', kind: 'huge array count', partition: 1, value: hugeArrayRecord(HUGE_COUNT), reason: 'corrupt-body' },
        { n: 1, topic: 'raw', kind: 'valid, after it', partition: 1, value: Buffer.concat(records), events },
      ];
      for (const it of items) it.offset = await send(topics.raw, it.partition, it.value);
      t.diagnostic(`sent ${items[0]!.value!.length} bytes at ${key(topics.raw, 1, items[0]!.offset!)}`);
      const enricher = p.children.get('enricher')!;
      const done = await settle(
        'the crafted record dead-lettered and the record after it through (or the enricher gone)',
        async () => {
          if (enricher.proc.exitCode !== null || enricher.proc.signalCode !== null) return true;
          await archive.refresh();
          return lettersBySource().has(key(topics.raw, 1, items[0]!.offset!)) && [...events.keys()].every((k) => archivedMine().raw.has(k));
        },
        45_000,
        problems,
      );
      if (enricher.proc.exitCode !== null || enricher.proc.signalCode !== null) problems.push(`the enricher died on the record:\n${diagnose()}`);
      else if (done) await dlq.barrier(producer, topics.dlq, `barrier-${seed}-${++barriers}`, 20_000);
      check(items, problems);
      const after = await counters().catch(() => undefined);
      const delta = after ? (after.enricher.get('corrupt-body') ?? 0) - (before.enricher.get('corrupt-body') ?? 0) : Number.NaN;
      if (delta !== 1) problems.push(`enricher: its corrupt-body counter went up by ${delta}, expected 1`);
      finish(problems);
    }),
  );
});
