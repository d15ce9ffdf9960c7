// The per-partition protocol (partition.ts) without a broker: batches in,
// commands out. A tiny in-memory "broker" applies committed transactions, so
// a restart can be restored from what was committed, as the real one is.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DLQ_HEADERS, type NetworkEvent, type RawRecord, type SensorStatusRecord, networkEventCodec, rawRecordCodec, sensorStatusCodec } from '@netmon/common';
import { type StateSink, applyStateMessage } from '../src/changelog';
import { Enricher } from '../src/lib';
import {
  type ChunkLimits,
  type Command,
  type OutMessage,
  PartitionMachine,
  type RawMessage,
  type TopicBatch,
  chunks,
  partitionContext,
} from '../src/partition';
import { exec, socket, status, task } from './helpers';

const TOPICS = { raw: 'raw', events: 'events', dlq: 'dlq', state: 'state', status: 'status' };
const P = 3;
const GEN = 1;
const NOW = 1_000_000;
const rawCodec = rawRecordCodec();
const eventCodec = networkEventCodec();
const statusCodec = sensorStatusCodec();
const A = { host_id: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', hostname: 'host-a' };
const B = { host_id: 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb', hostname: 'host-b' };

function machine(over: { exactlyOnce?: boolean; processWaitMs?: number; chunk?: ChunkLimits } = {}): PartitionMachine {
  const ctx = partitionContext({
    exactlyOnce: over.exactlyOnce ?? true,
    topics: TOPICS,
    enricher: { processWaitMs: over.processWaitMs ?? 0, filter: null },
    ...(over.chunk ? { chunk: over.chunk } : {}),
  });
  return new PartitionMachine(P, ctx);
}

/** A raw message at `offset` packing `records` (kafkajs gives offsets as strings). */
function msg(offset: number, ...records: RawRecord[]): RawMessage {
  return { offset: String(offset), value: Buffer.concat(records.map((r) => rawCodec.encode(r))) };
}

type Tx = Extract<Command, { kind: 'transaction' }>;

function kinds(cmds: Command[]): string[] {
  return cmds.map((c) => c.kind);
}

function txOf(cmds: Command[]): Tx {
  const txs = cmds.filter((c): c is Tx => c.kind === 'transaction');
  assert.equal(txs.length, 1, `one transaction in ${JSON.stringify(kinds(cmds))}`);
  return txs[0]!;
}

/** The messages of one topic across the transaction's requests, in order. */
function messagesOf(tx: Tx, topic: string): OutMessage[] {
  return tx.requests.flat().flatMap((b) => (b.topic === topic ? b.messages : []));
}

function eventsOf(tx: Tx): NetworkEvent[] {
  return messagesOf(tx, TOPICS.events).map((m) => eventCodec.decode(m.value as Buffer));
}

function statusesOf(tx: Tx): SensorStatusRecord[] {
  return messagesOf(tx, TOPICS.status).map((m) => statusCodec.decode(m.value as Buffer));
}

/** The commands' events as "host/seq" strings. */
function seqs(events: NetworkEvent[]): string[] {
  return events.map((e) => `${e.host.hostname}/${e.source.seq}`);
}

/** What committed transactions left on the topics and the group's offset. */
class Broker {
  events: NetworkEvent[] = [];
  statuses: SensorStatusRecord[] = [];
  changelog: OutMessage[] = [];
  committed = 0;

  apply(tx: Tx): void {
    assert.equal(tx.commit.topic, TOPICS.raw);
    assert.equal(tx.commit.partition, P);
    this.events.push(...eventsOf(tx));
    this.statuses.push(...statusesOf(tx));
    this.changelog.push(...messagesOf(tx, TOPICS.state));
    this.committed = tx.commit.offset;
  }

  restoreInto(sink: StateSink): void {
    for (const m of this.changelog) {
      assert.equal(m.partition, P, 'a changelog record goes to the raw partition’s number');
      const value = m.value === null || m.value === undefined ? null : Buffer.from(m.value);
      assert.ok(applyStateMessage({ key: Buffer.from(m.key as string), value }, sink));
    }
  }
}

/** Assignment → prepare → restore from the broker → prepared(committed): the commands after the prepare. */
function ready(m: PartitionMachine, broker: Broker, messages: RawMessage[], gen = GEN, now = NOW): Command[] {
  const first = m.batch(gen, messages, now);
  assert.deepEqual(first, [{ kind: 'prepare', fence: true, restore: true }]);
  broker.restoreInto(m.restoreSink());
  return m.prepared(broker.committed, now);
}

/** The library alone over the same records: what must come out, once each. */
function expected(records: RawRecord[]): string[] {
  const out: NetworkEvent[] = [];
  const e = new Enricher({ processWaitMs: 0, filter: null }, { event: (ev) => out.push(ev) });
  for (const [i, r] of records.entries()) e.push(r, i, 0);
  return seqs(out);
}

const curl = task(4242, 987_650_000, { comm: 'curl' });
const at = (h: typeof A, seq: number) => ({ ...h, seq, run_id: `run-${h.hostname}`, time_us: 1748685951282000 + seq * 1000 });

test('a batch in → one transaction: events keyed by host id, changelog, the offset after the batch; then consumed', () => {
  const m = machine();
  const broker = new Broker();
  const cmds = ready(m, broker, [
    msg(0, exec(curl, '/usr/bin/curl', ['-v'], [], false, at(A, 0)), socket(curl, 'ESTABLISH', at(A, 1))),
    msg(1, socket(curl, 'CLOSE', at(A, 2))),
  ]);
  assert.deepEqual(kinds(cmds), ['transaction']);
  const tx = txOf(cmds);
  assert.deepEqual(tx.commit, { topic: TOPICS.raw, partition: P, offset: 2 });
  assert.equal(tx.events, 2);
  assert.equal(tx.deadLetters, 0);
  assert.deepEqual(
    tx.requests.map((r) => r.map((b) => [b.topic, b.messages.length])),
    [
      [
        [TOPICS.events, 2],
        [TOPICS.state, 2],
      ],
    ],
  );
  const events = eventsOf(tx);
  assert.deepEqual(seqs(events), ['host-a/1', 'host-a/2']);
  assert.equal(events[0]!.process.binary_path, '/usr/bin/curl');
  for (const e of messagesOf(tx, TOPICS.events)) assert.deepEqual(e.key, Buffer.from(A.host_id));
  const state = messagesOf(tx, TOPICS.state);
  assert.deepEqual(
    state.map((s) => s.key),
    [`t\u0000${A.host_id}\u00004242\u0000${Math.floor(987_650_000 / 10_000)}`, `d\u0000${A.host_id}`],
  );
  assert.equal(state[1]!.value, String(1 * 65536 + 0), 'host a is done up to record 0 of offset 1');
  // Nothing is consumed before the transaction commits.
  assert.deepEqual(m.flushDone(), [{ kind: 'consumed', offset: 1 }]);
  assert.equal(m.committed, 2);
});

test('at least once: no fence, the same transaction command', () => {
  const m = machine({ exactlyOnce: false });
  assert.deepEqual(m.batch(GEN, [msg(0, socket(curl, 'ESTABLISH', at(A, 0)))], NOW), [{ kind: 'prepare', fence: false, restore: true }]);
  const tx = txOf(m.prepared(0, NOW));
  assert.deepEqual(tx.commit, { topic: TOPICS.raw, partition: P, offset: 1 });
  assert.equal(tx.events, 1);
});

test('nothing to write and the offset unchanged → no transaction, only consumed', () => {
  const m = machine();
  const broker = new Broker();
  broker.committed = 5;
  // A stale batch from before the committed offset: every record is below it.
  const cmds = ready(m, broker, [msg(3, socket(curl, 'ESTABLISH', at(A, 0))), msg(4, socket(curl, 'CLOSE', at(A, 1)))]);
  assert.deepEqual(cmds, [{ kind: 'consumed', offset: 4 }]);
  assert.equal(m.lastRead, 4);
  assert.equal(m.counters.records, 0, 'records below the committed offset are not read');
});

test('a record waiting for its process holds the commit offset back; the tick after its deadline lets it out', () => {
  const m = machine({ processWaitMs: 100 });
  const broker = new Broker();
  const stranger = task(7, 1, { comm: 'stranger' });
  const tx1 = txOf(
    ready(m, broker, [
      msg(0, socket(stranger, 'ACCEPT', at(A, 0))),
      msg(1, exec(curl, '/usr/bin/curl', [], [], false, at(B, 0)), socket(curl, 'ESTABLISH', at(B, 1))),
    ]),
  );
  assert.deepEqual(seqs(eventsOf(tx1)), ['host-b/1'], 'host b is not held back by host a');
  assert.equal(tx1.commit.offset, 0, 'the offset of the oldest held record');
  broker.apply(tx1);
  assert.deepEqual(m.flushDone(), [{ kind: 'consumed', offset: 1 }]);
  assert.equal(m.due(NOW + 99, GEN), false);
  assert.equal(m.due(NOW + 100, GEN + 1), false, 'not ready for another generation');
  assert.deepEqual(m.tick(NOW + 100, GEN + 1), []);
  assert.equal(m.due(NOW + 100, GEN), true);
  const tx2 = txOf(m.tick(NOW + 100, GEN));
  assert.deepEqual(seqs(eventsOf(tx2)), ['host-a/0']);
  assert.equal(eventsOf(tx2)[0]!.process.filename, 'stranger');
  assert.equal(tx2.commit.offset, 2);
  assert.deepEqual(m.flushDone(), [], 'a tick resolves no batch');
  assert.equal(m.due(NOW + 1000, GEN), false, 'nothing is held any more');
});

test('a failed flush → close, seek back to the committed offset; a new machine enriches each record exactly once', () => {
  const records = [
    exec(curl, '/usr/bin/curl', [], [], false, at(A, 0)),
    socket(curl, 'ESTABLISH', at(A, 1)),
    socket(curl, 'ESTABLISH', at(B, 0)),
    socket(curl, 'CLOSE', at(A, 2)),
    socket(curl, 'CLOSE', at(B, 1)),
  ];
  const broker = new Broker();
  const a = machine();
  const tx1 = txOf(ready(a, broker, [msg(0, records[0]!, records[1]!), msg(1, records[2]!)]));
  broker.apply(tx1);
  a.flushDone();
  const tx2 = txOf(a.batch(GEN, [msg(2, records[3]!), msg(3, records[4]!)], NOW));
  assert.deepEqual(seqs(eventsOf(tx2)), ['host-a/2', 'host-b/1']);
  // The transaction aborts: nothing of it reaches the broker.
  assert.deepEqual(a.flushFailed(), [{ kind: 'close' }, { kind: 'seek', offset: 2, reason: 'retry' }]);
  assert.equal(a.closed, true);
  assert.deepEqual(a.batch(GEN, [msg(2, records[3]!)], NOW), [], 'a finished machine ignores its input');
  assert.deepEqual(a.tick(NOW + 1e9, GEN), []);

  // The partition is read again from offset 2 into a new machine: fenced,
  // restored from the changelog (curl's exec is known), then the records.
  const b = machine();
  const tx3 = txOf(ready(b, broker, [msg(2, records[3]!), msg(3, records[4]!)]));
  assert.equal(b.counters.exec, 0, 'the exec of offset 0 is not read again: it comes from the changelog');
  assert.equal(eventsOf(tx3)[0]!.process.binary_path, '/usr/bin/curl');
  assert.deepEqual(seqs(eventsOf(tx3)), seqs(eventsOf(tx2)));
  broker.apply(tx3);
  assert.deepEqual(seqs(broker.events), expected(records));
  assert.equal(broker.committed, 4);
});

test('restore after a restart: records at or below their host’s done position are skipped', () => {
  const broker = new Broker();
  const first = machine({ processWaitMs: 1000 });
  const stranger = task(7, 1, { comm: 'stranger' });
  const input = [
    msg(0, socket(stranger, 'ACCEPT', at(A, 0))), // waits for its process
    msg(1, exec(curl, '/usr/bin/curl', [], [], false, at(B, 0)), socket(curl, 'CLOSE', at(B, 1))),
    msg(2, socket(curl, 'ACCEPT', at(B, 2))),
  ];
  const tx1 = txOf(ready(first, broker, input));
  assert.deepEqual(seqs(eventsOf(tx1)), ['host-b/1', 'host-b/2']);
  assert.equal(tx1.commit.offset, 0, 'held back by host a');
  broker.apply(tx1);
  // Killed here. The next instance reads from offset 0 again.
  const next = machine({ processWaitMs: 1000 });
  const cmds = ready(next, broker, [...input, msg(3, socket(curl, 'CLOSE', at(B, 3)))]);
  assert.deepEqual(
    cmds.filter((c) => c.kind === 'skipped'),
    [{ kind: 'skipped', count: 3 }],
  );
  const tx2 = txOf(cmds);
  assert.deepEqual(seqs(eventsOf(tx2)), ['host-b/3'], 'host b’s records up to its done position are not sent again');
  assert.equal(tx2.commit.offset, 0, 'host a’s record waits again');
  broker.apply(tx2);
  next.flushDone();
  broker.apply(txOf(next.tick(NOW + 1000, GEN)));
  assert.equal(tx2.events, 1);
  assert.equal(eventsOf(tx2)[0]!.process.binary_path, '/usr/bin/curl', 'host b’s table is restored');
  assert.deepEqual(seqs(broker.events), ['host-b/1', 'host-b/2', 'host-b/3', 'host-a/0']);
  assert.equal(broker.committed, 4);
});

test('the consumer past the committed offset → seek back once; the batch from there is read after a light prepare', () => {
  const m = machine();
  const broker = new Broker();
  broker.committed = 3;
  const late = [msg(5, socket(curl, 'ESTABLISH', at(A, 5)))];
  assert.deepEqual(ready(m, broker, late), [{ kind: 'seek', offset: 3, reason: 'rewind', from: 5 }]);
  assert.equal(m.due(NOW + 1e9, GEN), false, 'not ready until the next batch');
  // The next batch: prepared again without fence or restore.
  assert.deepEqual(m.batch(GEN, [msg(3, socket(curl, 'ESTABLISH', at(A, 3))), msg(4, socket(curl, 'CLOSE', at(A, 4)))], NOW), [
    { kind: 'prepare', fence: false, restore: false },
  ]);
  const tx = txOf(m.prepared(3, NOW));
  assert.deepEqual(seqs(eventsOf(tx)), ['host-a/3', 'host-a/4']);
  assert.equal(tx.commit.offset, 5);
});

test('a batch still fetched from past the committed offset after a rewind is accepted as it is', () => {
  const m = machine();
  const broker = new Broker();
  broker.committed = 3;
  const late = [msg(5, socket(curl, 'ESTABLISH', at(A, 5)))];
  assert.equal(ready(m, broker, late)[0]!.kind, 'seek');
  assert.deepEqual(kinds(m.batch(GEN, late, NOW)), ['prepare']);
  assert.deepEqual(kinds(m.prepared(3, NOW)), ['transaction'], 'no second seek');
  m.flushDone();
  // Later, after another rebalance, the consumer is past the committed offset again: a seek again.
  assert.deepEqual(kinds(m.batch(GEN + 1, [msg(9, socket(curl, 'CLOSE', at(A, 9)))], NOW)), ['prepare']);
  assert.deepEqual(m.prepared(6, NOW), [{ kind: 'seek', offset: 6, reason: 'rewind', from: 9 }]);
});

test('prepared at assignment, before any batch: the first batch is read, or rewound once when past the committed offset', () => {
  const m = machine();
  const broker = new Broker();
  assert.deepEqual(m.assigned(GEN), [{ kind: 'prepare', fence: true, restore: true }]);
  assert.deepEqual(m.assigned(GEN), [], 'one prepare at a time');
  broker.restoreInto(m.restoreSink());
  assert.deepEqual(m.prepared(0, NOW), [], 'no batch waits');
  assert.deepEqual(m.assigned(GEN), [], 'ready for this generation already');
  const tx = txOf(m.batch(GEN, [msg(0, socket(curl, 'ESTABLISH', at(A, 0)))], NOW));
  assert.equal(tx.commit.offset, 1);
  broker.apply(tx);
  m.flushDone();

  // The next generation keeps the partition, and the consumer is past what is committed.
  assert.deepEqual(m.assigned(GEN + 1), [{ kind: 'prepare', fence: false, restore: false }]);
  assert.deepEqual(m.prepared(1, NOW), []);
  assert.deepEqual(m.batch(GEN + 1, [msg(4, socket(curl, 'CLOSE', at(A, 4)))], NOW), [{ kind: 'seek', offset: 1, reason: 'rewind', from: 4 }]);
  assert.deepEqual(kinds(m.batch(GEN + 1, [msg(1, socket(curl, 'CLOSE', at(A, 1)))], NOW)), ['prepare']);
  assert.deepEqual(seqs(eventsOf(txOf(m.prepared(1, NOW)))), ['host-a/1']);
});

test('a prepare at assignment that failed: the first batch prepares again', () => {
  const m = machine();
  assert.deepEqual(kinds(m.assigned(GEN)), ['prepare']);
  // (the adapter's prepare threw: prepared() never came)
  assert.deepEqual(m.batch(GEN, [msg(0, socket(curl, 'ESTABLISH', at(A, 0)))], NOW), [{ kind: 'prepare', fence: true, restore: true }]);
  assert.deepEqual(kinds(m.prepared(0, NOW)), ['transaction']);
});

test('a rebalance that keeps the partition: held records are dropped and read again, the table stays', () => {
  const m = machine({ processWaitMs: 1000 });
  const broker = new Broker();
  const stranger = task(7, 1, { comm: 'stranger' });
  const tx1 = txOf(ready(m, broker, [msg(0, exec(curl, '/usr/bin/curl', [], [], false, at(A, 0))), msg(1, socket(stranger, 'ACCEPT', at(A, 1)))]));
  assert.equal(tx1.commit.offset, 1);
  broker.apply(tx1);
  m.flushDone();
  assert.equal(m.enricher.heldCount, 1);
  // Generation 2: the same partition, from the committed offset 1.
  assert.deepEqual(m.batch(GEN + 1, [msg(1, socket(stranger, 'ACCEPT', at(A, 1)))], NOW), [{ kind: 'prepare', fence: false, restore: false }]);
  const cmds = m.prepared(1, NOW);
  assert.equal(m.enricher.heldCount, 1, 'the record held before is gone; the same record is held once again');
  assert.equal(m.enricher.table.size, 1, 'curl stays known; no placeholder for the stranger yet');
  assert.deepEqual(kinds(cmds), ['consumed']);
  broker.apply(txOf(m.tick(NOW + 1000, GEN + 1)));
  assert.deepEqual(seqs(broker.events), ['host-a/1']);
});

test('a revoke releases the partition: close, then every input is ignored', () => {
  const m = machine({ processWaitMs: 1000 });
  const broker = new Broker();
  assert.equal(txOf(ready(m, broker, [msg(0, socket(task(7, 1), 'ACCEPT', at(A, 0)), exec(curl, '/usr/bin/curl', [], [], false, at(B, 0)))])).commit.offset, 0);
  assert.equal(m.enricher.heldCount, 1);
  assert.deepEqual(m.revoked(), [{ kind: 'close' }]);
  assert.equal(m.closed, true);
  assert.deepEqual(m.revoked(), []);
  assert.deepEqual(m.flushDone(), [], 'a transaction that ends after the revoke resolves nothing');
  assert.deepEqual(m.batch(GEN, [msg(2, socket(curl, 'CLOSE', at(B, 1)))], NOW), []);
  assert.equal(m.due(NOW + 1e9, GEN), false);
  assert.deepEqual(m.tick(NOW + 1e9, GEN), []);
  assert.deepEqual(m.flushFailed(), []);
});

test('dead letters: undecodable, empty and contract-breaking records carry the original bytes, headers and the reason', () => {
  const m = machine();
  const broker = new Broker();
  const garbage = Buffer.from('this is not avro');
  const bad = socket(task(1, 1), 'ESTABLISH', at(B, 0), { family: 'INET6' }); // 4-byte addresses on INET6
  const cmds = ready(m, broker, [
    { offset: '0', value: garbage, headers: { trace: 'abc' } },
    { offset: '1', value: null },
    msg(2, bad),
    msg(3, socket(curl, 'ESTABLISH', at(A, 0))),
  ]);
  const notes = cmds.filter((c) => c.kind === 'rejected');
  assert.deepEqual(
    notes.map((n) => [n.reason, n.offset]),
    [
      ['bad-magic', 0],
      ['empty', 1],
      ['contract', 2],
    ],
  );
  const tx = txOf(cmds);
  assert.equal(tx.deadLetters, 3);
  assert.equal(tx.commit.offset, 4, 'dead letters do not stop the partition');
  assert.deepEqual(seqs(eventsOf(tx)), ['host-a/0']);
  const dl = messagesOf(tx, TOPICS.dlq);
  assert.deepEqual(
    dl.map((d) => [
      d.headers![DLQ_HEADERS.reason],
      d.headers![DLQ_HEADERS.sourceTopic],
      d.headers![DLQ_HEADERS.sourcePartition],
      d.headers![DLQ_HEADERS.sourceOffset],
    ]),
    [
      ['bad-magic', TOPICS.raw, String(P), '0'],
      ['empty', TOPICS.raw, String(P), '1'],
      ['contract', TOPICS.raw, String(P), '2'],
    ],
  );
  assert.deepEqual(dl[0]!.value, garbage);
  assert.equal(dl[0]!.headers!.trace, 'abc', 'the original headers are kept');
  assert.deepEqual(dl[1]!.value, Buffer.alloc(0));
  assert.equal(rawCodec.decode(dl[2]!.value as Buffer).seq, 0);
  assert.match(String(dl[2]!.headers![DLQ_HEADERS.detail]), /record 0: .*INET6 addresses of 4 and 4 bytes, expected 16/);
});

test('a sensor status record → a status note, and one status message in the transaction, keyed by host id', () => {
  const m = machine();
  const s = status({ ...at(A, 0) });
  (s.payload as { 'netmon.raw.SensorStatus': { lost_kernel: number; dropped: number } })['netmon.raw.SensorStatus'].lost_kernel = 3;
  const cmds = ready(m, new Broker(), [msg(0, s, socket(curl, 'ESTABLISH', at(A, 1)))]);
  const notes = cmds.filter((c) => c.kind === 'status');
  assert.deepEqual(
    notes.map((n) => [n.host, n.status.seen]),
    [['host-a', 10]],
  );
  const tx = txOf(cmds);
  assert.equal(tx.statuses, 1);
  assert.equal(tx.events, 1);
  assert.deepEqual(
    tx.requests.flat().map((b) => [b.topic, b.messages.length]),
    [
      [TOPICS.events, 1],
      [TOPICS.status, 1],
      [TOPICS.state, 1],
    ],
    'events, statuses and the changelog in one transaction with the offset',
  );
  assert.deepEqual(messagesOf(tx, TOPICS.status)[0]!.key, Buffer.from(A.host_id));
  assert.deepEqual(JSON.parse(JSON.stringify(statusesOf(tx))), [
    {
      timestamp: '2025-05-31T10:05:51.282Z',
      host: { hostname: 'host-a', id: A.host_id },
      source: { run_id: 'run-host-a', seq: 0 },
      seen: 10,
      lost_kernel: 3,
      spooled: 0,
      dropped: 0,
      spool_bytes: 0,
    },
  ]);
});

test('status records exactly once: one behind a held record of its host waits for it, and is not published again after a restart', () => {
  const broker = new Broker();
  const first = machine({ processWaitMs: 1000 });
  const stranger = task(7, 1, { comm: 'stranger' });
  const input = [
    msg(0, socket(stranger, 'ACCEPT', at(A, 0))), // waits for its process
    msg(1, status(at(A, 1)), status(at(B, 0))),
    msg(2, status(at(B, 1))),
  ];
  const tx1 = txOf(ready(first, broker, input));
  assert.deepEqual(
    statusesOf(tx1).map((x) => `${x.host.hostname}/${x.source.seq}`),
    ['host-b/0', 'host-b/1'],
    "host a's status waits behind its held record; host b's go out",
  );
  assert.equal(tx1.commit.offset, 0, 'held back by host a');
  broker.apply(tx1);
  // Killed here. The next instance reads from offset 0 again.
  const next = machine({ processWaitMs: 1000 });
  const tx2 = txOf(ready(next, broker, [...input, msg(3, status(at(B, 2)))]));
  assert.deepEqual(
    statusesOf(tx2).map((x) => `${x.host.hostname}/${x.source.seq}`),
    ['host-b/2'],
    "host b's statuses up to its done position are not sent again",
  );
  broker.apply(tx2);
  next.flushDone();
  const tx3 = txOf(next.tick(NOW + 1000, GEN));
  assert.deepEqual(seqs(eventsOf(tx3)), ['host-a/0']);
  assert.deepEqual(
    statusesOf(tx3).map((x) => `${x.host.hostname}/${x.source.seq}`),
    ['host-a/1'],
    "host a's status after its event",
  );
  broker.apply(tx3);
  assert.deepEqual(
    broker.statuses.map((x) => `${x.host.hostname}/${x.source.seq}`),
    ['host-b/0', 'host-b/1', 'host-b/2', 'host-a/1'],
    'every status once',
  );
  assert.equal(broker.committed, 4);
});

test('a stopping consumer: the batch is not read, the flush still runs and resolves what was read', () => {
  const m = machine();
  const broker = new Broker();
  broker.committed = 2;
  assert.deepEqual(kinds(m.batch(GEN, [msg(2, socket(curl, 'ESTABLISH', at(A, 0)))], NOW)), ['prepare']);
  assert.deepEqual(m.prepared(2, NOW, false), [{ kind: 'consumed', offset: 1 }]);
  assert.equal(m.counters.records, 0);
  assert.deepEqual(m.batch(GEN, [msg(2, socket(curl, 'ESTABLISH', at(A, 0)))], NOW, false), [{ kind: 'consumed', offset: 1 }]);
  assert.equal(m.counters.records, 0);
});

test('a batch read ahead in parts gives the one transaction, notes and offsets of the batch read at once', () => {
  const bad: RawMessage = { offset: '3', value: Buffer.from('not avro') };
  const batch = (base: number): RawMessage[] => [
    msg(base, exec(curl, '/usr/bin/curl', ['-v'], [], false, at(A, base)), socket(curl, 'ESTABLISH', at(A, base + 1))),
    msg(base + 1, socket(curl, 'CLOSE', at(B, base))), // process unknown on host b: waits (processWaitMs 10)
    msg(base + 2, status(at(A, base + 2))),
    { ...bad, offset: String(base + 3) },
    msg(base + 4, socket(curl, 'ACCEPT', at(A, base + 3))),
  ];
  const run = (parts: number[]) => {
    const m = machine({ processWaitMs: 10 });
    const broker = new Broker();
    assert.deepEqual(kinds(m.assigned(GEN)), ['prepare']);
    broker.restoreInto(m.restoreSink());
    m.prepared(0, NOW);
    assert.equal(m.readsAhead(GEN), false, 'not before the first batch (it may have to rewind)');
    const first = txOf(m.batch(GEN, batch(0), NOW));
    broker.apply(first);
    assert.equal(m.readsAhead(GEN), false, 'not while a transaction is in flight');
    m.flushDone();
    assert.equal(m.readsAhead(GEN + 1), false, 'not for another generation');
    const messages = batch(5);
    let from = 0;
    for (const n of parts) {
      assert.equal(m.readsAhead(GEN), true);
      m.readAhead(GEN, messages.slice(from, from + n), NOW + 20);
      from += n;
    }
    const cmds = m.batch(GEN, messages.slice(from), NOW + 20);
    const tx = txOf(cmds);
    return {
      notes: cmds.filter((c) => c.kind !== 'transaction'),
      commit: tx.commit,
      events: seqs(eventsOf(tx)),
      statuses: statusesOf(tx).length,
      dlq: messagesOf(tx, TOPICS.dlq).length,
      consumed: m.flushDone(),
    };
  };
  const whole = run([]);
  // The first batch's record of host b waited past its deadline (NOW + 10) and goes out now.
  assert.deepEqual(whole.events, ['host-b/0', 'host-a/6', 'host-b/5', 'host-a/8']);
  assert.deepEqual(whole.commit.offset, 10);
  assert.deepEqual(whole.consumed, [{ kind: 'consumed', offset: 9 }]);
  assert.equal(whole.statuses, 1);
  assert.equal(whole.dlq, 1);
  assert.deepEqual(kinds(whole.notes), ['status', 'rejected']);
  for (const parts of [[1], [2, 2], [1, 1, 1, 1]]) assert.deepEqual(run(parts), whole, `parts ${parts.join(',')}`);
  // Finished (revoked): no reading ahead.
  const m = machine();
  m.assigned(GEN);
  m.prepared(0, NOW);
  m.revoked();
  assert.equal(m.readsAhead(GEN), false);
  assert.throws(() => m.readAhead(GEN, batch(0), NOW), /not ready/);
});

function out(topic: string, sizes: number[]): TopicBatch {
  return { topic, messages: sizes.map((n, i) => ({ key: null, value: Buffer.alloc(n, i) })) };
}

test('chunks: at most `messages` messages and about `bytes` bytes per request, order kept, none empty', () => {
  const input = [out('events', [10, 10, 10, 10, 10, 10, 10]), out('dlq', [10]), out('state', [500, 10, 10])];
  const limits = { bytes: 200, messages: 3 };
  const got = chunks(input, limits);
  // Each message counts 32 bytes more than its value.
  assert.deepEqual(
    got.map((c) => c.map((b) => [b.topic, b.messages.length])),
    [
      [['events', 3]],
      [['events', 3]],
      [
        ['events', 1],
        ['dlq', 1],
      ],
      [['state', 1]], // alone over the bytes bound: a request of its own
      [['state', 2]],
    ],
  );
  for (const c of got) {
    const ms = c.flatMap((b) => b.messages);
    assert.ok(ms.length > 0 && ms.length <= limits.messages);
    if (ms.length > 1) assert.ok(ms.reduce((n, x) => n + 32 + (x.value as Buffer).length, 0) <= limits.bytes);
  }
  assert.deepEqual(
    got.flat().flatMap((b) => b.messages),
    input.flatMap((b) => b.messages),
  );
  assert.deepEqual(chunks([]), []);
});

test('a transaction of many events is split into requests within the chunk limits', () => {
  const m = machine({ chunk: { bytes: 1 << 20, messages: 4 } });
  const records = Array.from({ length: 10 }, (_, i) => socket(curl, 'ESTABLISH', at(A, i)));
  const tx = txOf(
    ready(
      m,
      new Broker(),
      records.map((r, i) => msg(i, r)),
    ),
  );
  assert.deepEqual(
    tx.requests.map((r) => r.map((b) => [b.topic, b.messages.length])),
    [
      [[TOPICS.events, 4]],
      [[TOPICS.events, 4]],
      [
        [TOPICS.events, 2],
        [TOPICS.state, 1],
      ],
    ],
  );
  assert.equal(tx.events, 10);
});
