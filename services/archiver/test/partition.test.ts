// The per-partition state machine, without a broker or S3: records in,
// commands out, every I/O outcome fed back by hand.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ArchiveRecord, ObjectBody } from '../src/batch';
import { manifestKey } from '../src/layout';
import type { Manifest } from '../src/manifest';
import { type Command, type InMessage, type IoCommand, type OpenFlush, PartitionMachine, type PartitionOptions, Undecodable } from '../src/partition';

const TOPIC = 'events';
const PREFIX = 'archive';
const key = (offset: number) => manifestKey(PREFIX, TOPIC, 0, offset);

/** Counts what is appended; 100 bytes a record; event time = offset seconds. */
class FakeFlush implements OpenFlush {
  lastOffset: number;
  nextOffset: number;
  records = 0;
  rawBytes = 0;
  firstTimeMs = Number.NaN;
  maxTimeMs = Number.NaN;
  lastAppendAt: number;
  discarded = false;
  readonly offsets: number[] = [];
  constructor(
    readonly firstOffset: number,
    now: number,
  ) {
    this.lastOffset = firstOffset - 1;
    this.nextOffset = firstOffset;
    this.lastAppendAt = now;
  }
  append(rec: ArchiveRecord, now: number): void {
    this.offsets.push(rec.offset);
    if (this.records === 0) this.firstTimeMs = rec.timeMs;
    this.records++;
    this.rawBytes += 100;
    this.lastOffset = rec.offset;
    this.nextOffset = rec.offset + 1;
    if (!(rec.timeMs <= this.maxTimeMs)) this.maxTimeMs = rec.timeMs;
    this.lastAppendAt = now;
  }
  coverThrough(offset: number): void {
    if (offset + 1 > this.nextOffset) this.nextOffset = offset + 1;
  }
  discard(): void {
    this.discarded = true;
  }
}

type Cmd = Command<FakeFlush>;
const limits = { records: 10, bytes: 1_000_000, spanMs: 3_600_000, idleMs: 5_000 };

function machine(o: Partial<PartitionOptions<FakeFlush>> = {}): PartitionMachine<FakeFlush> {
  return new PartitionMachine<FakeFlush>({
    topic: TOPIC,
    partition: 0,
    prefix: PREFIX,
    limits,
    maxQueuedFlushes: 2,
    writer: { host: 'test', pid: 1, memberId: 'm1' },
    openFlush: (first, now) => new FakeFlush(first, now),
    decode: (m, offset) =>
      m.value?.toString() === 'bad'
        ? new Undecodable('bad-avro', new Error('not Avro'))
        : { offset, line: `{"o":${offset}}`, part: { dt: '2025-05-31', hour: '10' }, timeMs: offset * 1000 },
    random: () => 1,
    ...o,
  });
}

/** Messages with offsets from..to (inclusive). */
function msgs(from: number, to: number): InMessage[] {
  const out: InMessage[] = [];
  for (let o = from; o <= to; o++) out.push({ offset: o, key: null, value: Buffer.from('ok') });
  return out;
}

const end = (lastOffset: number) => ({ lastOffset, highWatermark: lastOffset + 1 });
const kinds = (cmds: Cmd[]) => cmds.map((c) => c.kind);

function only<K extends Cmd['kind']>(cmds: Cmd[], kind: K): Extract<Cmd, { kind: K }> {
  const found = cmds.filter((c) => c.kind === kind);
  assert.equal(found.length, 1, `one ${kind} in ${JSON.stringify(kinds(cmds))}`);
  return found[0] as Extract<Cmd, { kind: K }>;
}

function none(cmds: Cmd[], kind: Cmd['kind']): void {
  assert.ok(!cmds.some((c) => c.kind === kind), `no ${kind} in ${JSON.stringify(kinds(cmds))}`);
}

const body = (k: string, firstOffset: number, records: number): ObjectBody => ({
  key: k,
  part: { dt: '2025-05-31', hour: '10' },
  firstOffset,
  records,
  rawBytes: records * 100,
  body: Buffer.alloc(records),
});

function manifest(firstOffset: number, lastOffset: number): Manifest {
  return {
    version: 1,
    topic: TOPIC,
    partition: 0,
    firstOffset,
    lastOffset,
    nextOffset: lastOffset + 1,
    records: lastOffset - firstOffset + 1,
    objects: [],
    writer: { host: 'earlier', pid: 2, memberId: 'm0' },
    createdAt: '2025-05-31T10:00:00.000Z',
  };
}

/** Feeds `first` alone, answers its lookup with "no manifest", then feeds the rest. */
function start(m: PartitionMachine<FakeFlush>, from: number, to: number, now = 0): Cmd[] {
  const lookup = only(m.records(msgs(from, from), end(from), now), 'readManifest');
  assert.deepEqual([lookup.why, lookup.key], ['align', key(from)]);
  const out = m.manifestRead(lookup.op, undefined, now);
  return to > from ? [...out, ...m.records(msgs(from + 1, to), end(to), now)] : out;
}

/** Takes a sealed flush from seal to commit, answering every step; returns the commit's offset. */
function archive(m: PartitionMachine<FakeFlush>, seal: IoCommand<FakeFlush>, now = 0): number {
  assert.equal(seal.kind, 'seal');
  if (seal.kind !== 'seal') return -1;
  let out = m.sealed(seal.op, [body(`obj-${seal.firstOffset}`, seal.firstOffset, seal.records)], now);
  const create = out.find((c) => c.kind === 'createManifest');
  if (create) out = m.manifestCreated(create.op, 'created', now);
  const put = only(out, 'put');
  const commit = only(m.uploaded(put.op, now), 'commit');
  const done = m.committed(commit.op, now);
  assert.equal(only(done, 'archived').range.firstOffset, seal.firstOffset);
  return commit.offset;
}

describe('partition state machine: sealing', () => {
  test('seals at the record limit once S3 says no manifest exists, and each new flush looks its first offset up', () => {
    const m = machine();
    const out = start(m, 0, 14);
    const seal = only(out, 'seal');
    assert.deepEqual([seal.firstOffset, seal.lastOffset, seal.nextOffset, seal.records, seal.reason], [0, 9, 10, 10, 'records']);
    assert.deepEqual(seal.flush.offsets, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const lookup = only(out, 'readManifest');
    assert.equal(lookup.key, key(10), 'the next flush asks about its own first offset');
    assert.equal(m.openFlush?.firstOffset, 10);
    assert.equal(m.openFlush?.records, 5);
  });

  test('no seal while the lookup is pending, whatever the limits say; then the flush is cut at once', () => {
    const m = machine();
    const lookup = only(m.records(msgs(0, 14), end(14), 0), 'readManifest');
    assert.equal(m.openFlush?.records, 15);
    none(m.tick(60_000), 'seal');
    const seal = only(m.manifestRead(lookup.op, undefined, 60_000), 'seal');
    assert.deepEqual([seal.firstOffset, seal.lastOffset, seal.reason], [0, 14, 'records']);
  });

  test('the byte limit and the idle limit cut too; idleness is measured on the clock passed in', () => {
    const m = machine({ limits: { ...limits, bytes: 300 } });
    const bySize = only(start(m, 0, 4, 1000), 'seal');
    assert.deepEqual([bySize.lastOffset, bySize.reason], [2, 'bytes']);
    const idle = machine();
    start(idle, 0, 3, 1000);
    none(idle.tick(5_999), 'seal');
    const seal = only(idle.tick(6_000), 'seal');
    assert.deepEqual([seal.lastOffset, seal.reason], [3, 'idle']);
  });

  test('string offsets (as kafkajs hands them over) are read as numbers', () => {
    const m = machine();
    const str = (from: number, to: number): InMessage[] => msgs(from, to).map((x) => ({ ...x, offset: String(x.offset) }));
    const lookup = only(m.records(str(0, 0), end(0), 0), 'readManifest');
    assert.equal(lookup.key, key(0));
    m.manifestRead(lookup.op, undefined, 0);
    const seal = only(m.records(str(1, 12), end(12), 0), 'seal');
    assert.deepEqual([seal.firstOffset, seal.lastOffset, seal.nextOffset], [0, 9, 10]);
    assert.deepEqual(seal.flush.offsets, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  test('a flush ending in control records commits past them', () => {
    const m = machine();
    start(m, 0, 3);
    m.records(msgs(4, 4), { lastOffset: 6, highWatermark: 7 }, 0);
    const seal = only(m.tick(10_000), 'seal');
    assert.deepEqual([seal.lastOffset, seal.nextOffset], [4, 7]);
    assert.equal(archive(m, seal, 10_000), 7);
  });
});

describe('partition state machine: uploading', () => {
  test('manifest first, then the objects, then the commit; one flush at a time', () => {
    const m = machine();
    const first = only(start(m, 0, 9), 'seal');
    const ready = m.sealed(first.op, [body('a', 0, 6), body('b', 6, 4)], 0);
    const create = only(ready, 'createManifest');
    assert.equal(create.key, key(0));
    assert.deepEqual(
      [create.manifest.firstOffset, create.manifest.lastOffset, create.manifest.nextOffset, create.manifest.records, create.manifest.writer.memberId],
      [0, 9, 10, 10, 'm1'],
    );
    assert.deepEqual(
      create.manifest.objects.map((o) => [o.key, o.firstOffset, o.records, o.bytes]),
      [
        ['a', 0, 6, 6],
        ['b', 6, 4, 4],
      ],
    );
    // A second flush sealed meanwhile waits for the first one's commit.
    const lookup = m.records(msgs(10, 10), end(10), 0);
    const second = only([...m.manifestRead(only(lookup, 'readManifest').op, undefined, 0), ...m.records(msgs(11, 19), end(19), 0)], 'seal');
    none(m.sealed(second.op, [body('c', 10, 10)], 0), 'createManifest');
    const put = only(m.manifestCreated(create.op, 'created', 0), 'put');
    assert.deepEqual(
      put.objects.map((o) => o.key),
      ['a', 'b'],
    );
    none(m.manifestCreated(create.op, 'created', 0), 'put');
    const commit = only(m.uploaded(put.op, 0), 'commit');
    assert.equal(commit.offset, 10);
    assert.equal(m.lastCommitted, undefined, 'not committed before the commit answers');
    const next = m.committed(commit.op, 0);
    assert.equal(m.lastCommitted, 10);
    assert.equal(only(next, 'archived').range.records, 10);
    assert.equal(only(next, 'createManifest').key, key(10), 'the second flush starts once the first is committed');
  });

  test('a failed upload is issued again after the backoff, and again with a longer one', () => {
    const m = machine();
    const seal = only(start(m, 0, 9), 'seal');
    const create = only(m.sealed(seal.op, [body('a', 0, 10)], 0), 'createManifest');
    const put = only(m.manifestCreated(create.op, 'created', 0), 'put');
    const wake = only(m.failed(put.op, 1000), 'wake');
    assert.equal(wake.at, 1200, 'attempt 0: 200 ms (jitter fixed at the top)');
    none(m.tick(1199), 'put');
    none(m.uploaded(put.op, 1199), 'commit');
    const again = only(m.tick(1200), 'put');
    assert.deepEqual([again.op, again.attempt], [put.op, 1]);
    assert.equal(only(m.failed(again.op, 2000), 'wake').at, 2400, 'attempt 1: 400 ms');
    const third = only(m.tick(2400), 'put');
    assert.equal(third.attempt, 2);
    assert.equal(only(m.uploaded(third.op, 2500), 'commit').offset, 10);
  });

  test('a failed manifest lookup is retried; the flush stays open meanwhile', () => {
    const m = machine();
    const lookup = only(m.records(msgs(0, 3), end(3), 0), 'readManifest');
    only(m.failed(lookup.op, 0), 'wake');
    const again = only(m.tick(500), 'readManifest');
    assert.deepEqual([again.key, again.attempt], [key(0), 1]);
    assert.equal(m.openFlush?.records, 4);
  });

  test('S3 down: sealed flushes queue up to the limit, then the partition pauses, and resumes after a commit', () => {
    const m = machine();
    const first = only(start(m, 0, 9), 'seal');
    const create = only(m.sealed(first.op, [body('a', 0, 10)], 0), 'createManifest');
    only(m.failed(create.op, 0), 'wake');
    assert.equal(m.paused, false);
    const l2 = only(m.records(msgs(10, 10), end(10), 0), 'readManifest');
    const out = [...m.manifestRead(l2.op, undefined, 0), ...m.records(msgs(11, 19), end(19), 0)];
    only(out, 'seal');
    only(out, 'pause');
    assert.equal(m.paused, true);
    const retried = only(m.tick(1000), 'createManifest');
    const put = only(m.manifestCreated(retried.op, 'created', 1000), 'put');
    const commit = only(m.uploaded(put.op, 1000), 'commit');
    only(m.committed(commit.op, 1000), 'resume');
    assert.equal(m.paused, false);
  });

  test('a lookup that cannot reach S3 pauses the partition at twice the limits', () => {
    const m = machine();
    none(m.records(msgs(0, 18), end(18), 0), 'pause');
    only(m.records(msgs(19, 19), end(19), 0), 'pause');
  });

  test('a failed seal (compression) drops what is held and reads again from the first offset', () => {
    const m = machine();
    const seal = only(start(m, 0, 12), 'seal');
    const out = m.failed(seal.op, 0);
    assert.equal(only(out, 'seek').offset, 0);
    assert.equal(m.idle, true);
    assert.equal(seal.flush.discarded, false, 'the sealed flush belongs to the adapter now');
    none(m.sealed(seal.op, [body('a', 0, 10)], 0), 'createManifest');
  });

  test('an undecodable record is dead-lettered, and nothing past it is committed before the dead letter is acknowledged', () => {
    const m = machine();
    start(m, 0, 3);
    const bad: InMessage = { offset: 4, key: Buffer.from('k'), value: Buffer.from('bad') };
    const out = m.records([bad, ...msgs(5, 10)], end(10), 0);
    const dl = only(out, 'deadLetter');
    assert.deepEqual([dl.offset, dl.reason, dl.value?.toString()], [4, 'bad-avro', 'bad']);
    const seal = only(out, 'seal');
    assert.deepEqual(seal.flush.offsets, [0, 1, 2, 3, 5, 6, 7, 8, 9, 10]);
    const create = only(m.sealed(seal.op, [body('a', 0, 10)], 0), 'createManifest');
    const put = only(m.manifestCreated(create.op, 'created', 0), 'put');
    none(m.uploaded(put.op, 0), 'commit');
    only(m.failed(dl.op, 0), 'wake');
    const resend = only(m.tick(1000), 'deadLetter');
    assert.equal(only(m.deadLettered(resend.op, 1000), 'commit').offset, 11);
  });
});

describe('partition state machine: restarts and realignment', () => {
  test('restart with a manifest at the committed offset: the flush ends exactly there and is put again without a new manifest', () => {
    const m = machine();
    const lookup = only(m.records(msgs(100, 104), end(104), 0), 'readManifest');
    const out = m.manifestRead(lookup.op, manifest(100, 124), 0);
    assert.deepEqual(only(out, 'replay'), { kind: 'replay', key: key(100), firstOffset: 100, lastOffset: 124 });
    none(out, 'seal');
    none(m.records(msgs(105, 123), end(123), 0), 'seal');
    none(m.tick(1e9), 'seal');
    const seal = only(m.records(msgs(124, 130), end(130), 0), 'seal');
    assert.deepEqual([seal.firstOffset, seal.lastOffset, seal.reason], [100, 124, 'aligned']);
    const ready = m.sealed(seal.op, [body('a', 100, 25)], 0);
    none(ready, 'createManifest');
    const put = only(ready, 'put');
    assert.equal(only(m.uploaded(put.op, 0), 'commit').offset, 125);
  });

  test("a replay longer than twice this run's limits is not paused (it would wait forever for its end); it seals there, then limits apply", () => {
    const m = machine(); // records limit 10: hard limit 20
    const lookup = only(m.records(msgs(0, 24), end(24), 0), 'readManifest');
    const out = m.manifestRead(lookup.op, manifest(0, 114), 0);
    only(out, 'replay');
    // Paused at 20 while the lookup was pending; the replay resumes it.
    only(out, 'resume');
    none(m.records(msgs(25, 113), end(113), 0), 'pause');
    const seal = only(m.records(msgs(114, 114), end(114), 0), 'seal');
    assert.deepEqual([seal.firstOffset, seal.lastOffset, seal.reason], [0, 114, 'aligned']);
  });

  test('read past the end an earlier writer fixed: drop, seek back to the first offset, and end there on the second reading', () => {
    const m = machine();
    const lookup = only(m.records(msgs(100, 115), end(115), 0), 'readManifest');
    const open = m.openFlush!;
    const out = m.manifestRead(lookup.op, manifest(100, 110), 0);
    assert.deepEqual(kinds(out), ['realigned', 'seek']);
    assert.equal(only(out, 'seek').offset, 100);
    assert.equal(open.discarded, true);
    assert.equal(m.openFlush, undefined);
    const again = m.records(msgs(100, 115), end(115), 0);
    assert.equal(only(again, 'readManifest').key, key(111), 'no lookup for the known manifest, one for the flush after it');
    const seal = only(again, 'seal');
    assert.deepEqual([seal.firstOffset, seal.lastOffset, seal.reason], [100, 110, 'aligned']);
    none(m.sealed(seal.op, [body('a', 100, 11)], 0), 'createManifest');
  });

  test('a record past the manifest end when its last offset never came (a transaction marker): the flush ends before that record', () => {
    const m = machine();
    const lookup = only(m.records(msgs(100, 105), end(105), 0), 'readManifest');
    m.manifestRead(lookup.op, manifest(100, 107), 0);
    const seal = only(m.records([...msgs(106, 106), ...msgs(108, 109)], end(109), 0), 'seal');
    assert.deepEqual([seal.firstOffset, seal.lastOffset, seal.reason], [100, 106, 'aligned']);
    assert.deepEqual(m.openFlush?.offsets, [108, 109]);
  });

  test('the manifest create finds another range: seek back to the flush first offset', () => {
    const m = machine();
    const seal = only(start(m, 0, 9), 'seal');
    const create = only(m.sealed(seal.op, [body('a', 0, 10)], 0), 'createManifest');
    const verify = only(m.manifestCreated(create.op, 'exists', 0), 'readManifest');
    assert.deepEqual([verify.why, verify.key], ['verify', key(0)]);
    const out = m.manifestRead(verify.op, manifest(0, 6), 0);
    assert.equal(only(out, 'realigned').cause, 'mismatch');
    assert.equal(only(out, 'seek').offset, 0);
    none(m.uploaded(create.op, 0), 'commit');
  });

  test('the manifest create finds the same range (a zombie wrote it): the objects are put all the same', () => {
    const m = machine();
    const seal = only(start(m, 0, 9), 'seal');
    const create = only(m.sealed(seal.op, [body('a', 0, 10)], 0), 'createManifest');
    const verify = only(m.manifestCreated(create.op, 'exists', 0), 'readManifest');
    assert.deepEqual(
      only(m.manifestRead(verify.op, manifest(0, 9), 0), 'put').objects.map((o) => o.key),
      ['a'],
    );
  });

  test('a rewind past what is held seeks back to the first held offset; a rewind to it just starts over', () => {
    const m = machine();
    start(m, 0, 7);
    const held = m.openFlush!;
    const out = m.records(msgs(5, 9), end(9), 0);
    assert.deepEqual(kinds(out), ['rewound', 'seek']);
    assert.equal(only(out, 'seek').offset, 0);
    assert.equal(held.discarded, true);
    assert.equal(m.openFlush, undefined, 'the rest of the batch is not read');
    const m2 = machine();
    start(m2, 0, 7);
    const out2 = m2.records(msgs(0, 2), end(2), 0);
    none(out2, 'seek');
    assert.equal(only(out2, 'readManifest').key, key(0));
    assert.deepEqual(m2.openFlush?.offsets, [0, 1, 2]);
  });

  test('outcomes of a reading that was dropped are ignored', () => {
    const m = machine();
    const seal = only(start(m, 0, 9), 'seal');
    only(m.records(msgs(3, 3), end(3), 0), 'seek');
    assert.deepEqual(m.sealed(seal.op, [body('a', 0, 10)], 0), []);
    assert.deepEqual(m.failed(seal.op, 0), []);
  });
});

describe('partition state machine: revoke and shutdown', () => {
  test('revoked mid-upload: what is held is dropped, a paused partition is resumed, the upload outcome commits nothing', () => {
    const m = machine();
    const first = only(start(m, 0, 9), 'seal');
    const create = only(m.sealed(first.op, [body('a', 0, 10)], 0), 'createManifest');
    const put = only(m.manifestCreated(create.op, 'created', 0), 'put');
    const l2 = only(m.records(msgs(10, 10), end(10), 0), 'readManifest');
    m.manifestRead(l2.op, undefined, 0);
    only(m.records(msgs(11, 19), end(19), 0), 'pause');
    m.records(msgs(20, 22), end(22), 0);
    const open = m.openFlush!;
    const out = m.revoked();
    assert.deepEqual(kinds(out), ['resume']);
    assert.equal(open.discarded, true);
    assert.equal(m.idle, true);
    assert.deepEqual(m.uploaded(put.op, 0), []);
    assert.deepEqual(m.records(msgs(23, 30), end(30), 0), [], 'a revoked machine reads nothing more');
    assert.equal(m.lastCommitted, undefined);
  });

  test('stop seals what is held, pauses, uploads, commits, and only then is idle', () => {
    const m = machine();
    start(m, 0, 4);
    const out = m.stop(0);
    const seal = only(out, 'seal');
    only(out, 'pause');
    assert.deepEqual([seal.firstOffset, seal.lastOffset, seal.reason], [0, 4, 'shutdown']);
    assert.equal(m.idle, false);
    const create = only(m.sealed(seal.op, [body('a', 0, 5)], 0), 'createManifest');
    const put = only(m.manifestCreated(create.op, 'created', 0), 'put');
    const commit = only(m.uploaded(put.op, 0), 'commit');
    assert.equal(m.idle, false, 'not idle before the commit answers');
    const done = m.committed(commit.op, 0);
    none(done, 'resume');
    assert.equal(m.idle, true);
    assert.equal(m.lastCommitted, 5);
  });

  test('stop short of an earlier run flush end: the flush is left to the next run; with the lookup pending, stop waits for it', () => {
    const short = machine();
    const lookup = only(short.records(msgs(100, 104), end(104), 0), 'readManifest');
    short.manifestRead(lookup.op, manifest(100, 124), 0);
    const open = short.openFlush!;
    const out = short.stop(0);
    none(out, 'seal');
    assert.equal(open.discarded, true);
    assert.equal(short.idle, true);

    const pending = machine();
    const l = only(pending.records(msgs(0, 4), end(4), 0), 'readManifest');
    none(pending.stop(0), 'seal');
    assert.equal(pending.idle, false);
    const seal = only(pending.manifestRead(l.op, undefined, 0), 'seal');
    assert.deepEqual([seal.lastOffset, seal.reason], [4, 'shutdown']);
  });

  test('a whole run: flush after flush, every commit at the next flush first offset', () => {
    const m = machine();
    const commits: number[] = [];
    let out = start(m, 0, 0);
    for (let from = 1; from < 40; from += 5) {
      out = [...out, ...m.records(msgs(from, from + 4), end(from + 4), 0)];
      for (const c of out) {
        if (c.kind === 'readManifest') out = [...out, ...m.manifestRead(c.op, undefined, 0)];
      }
      for (const c of out) if (c.kind === 'seal') commits.push(archive(m, c));
      out = [];
    }
    assert.deepEqual(commits, [10, 20, 30, 40]);
    assert.equal(m.lastCommitted, 40);
  });
});
