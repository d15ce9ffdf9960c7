// Runs of records, their slabs, and their packing into messages.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_MESSAGE_BYTES, MAX_RECORDS_PER_MESSAGE, type RecordRun, packRecords, recordsIn, runOf } from '../src/service/runs';
import { SlabPool } from '../src/service/slabs';

/** A run of `count` records of `size` bytes written into the pool, filled with `fill`. */
function write(pool: SlabPool, count: number, size: number, fill: number): RecordRun {
  const buf = pool.reserve(count * size);
  const start = pool.pos;
  buf.fill(fill, start, start + count * size);
  pool.pos = start + count * size;
  return { bytes: pool.lend(buf, start, pool.pos), count };
}

test('runs lying back to back go out as one message, a view of their memory', () => {
  const pool = new SlabPool(1 << 16);
  const runs = [write(pool, 3, 10, 1), write(pool, 2, 10, 2), write(pool, 1, 10, 3)];
  const [message, ...rest] = packRecords(runs);
  assert.equal(rest.length, 0);
  assert.equal(message!.buffer, runs[0]!.bytes.buffer, 'not copied');
  assert.deepEqual([...message!], [...Array(30).fill(1), ...Array(20).fill(2), ...Array(10).fill(3)]);
  assert.equal(recordsIn(runs), 6);
});

test('small runs apart in memory are copied into one message; big ones start a new message', () => {
  const small = Array.from({ length: 1000 }, (_, i) => runOf(Buffer.from(`${i},`)));
  const [message, ...rest] = packRecords(small);
  assert.equal(rest.length, 0);
  assert.equal(String(message), small.map((r) => String(r.bytes)).join(''));
  const pool = new SlabPool(MAX_MESSAGE_BYTES);
  const big = write(pool, 100, 1000, 1);
  const messages = packRecords([runOf(Buffer.from('x')), big, runOf(Buffer.from('y')), runOf(Buffer.from('z'))]);
  assert.deepEqual(
    messages.map((m) => m.length),
    [1, 100_000, 2],
  );
  assert.equal(messages[1]!.buffer, big.bytes.buffer, 'the big run is not copied');
});

test('a message ends at the record and byte limits', () => {
  const pool = new SlabPool(4 * MAX_MESSAGE_BYTES);
  const many = Array.from({ length: 3 }, () => write(pool, MAX_RECORDS_PER_MESSAGE / 2 + 1, 1, 7));
  assert.deepEqual(
    packRecords(many).map((m) => m.length),
    [MAX_RECORDS_PER_MESSAGE / 2 + 1, MAX_RECORDS_PER_MESSAGE / 2 + 1, MAX_RECORDS_PER_MESSAGE / 2 + 1],
    'two runs would pass the record limit',
  );
  const big = [write(pool, 1, MAX_MESSAGE_BYTES / 2 + 1, 1), write(pool, 1, MAX_MESSAGE_BYTES / 2 + 1, 2)];
  assert.equal(packRecords(big).length, 2, 'two runs would pass the byte limit');
});

test('a slab is reused only once every run lent from it is released', () => {
  const pool = new SlabPool(100, 1);
  const a = write(pool, 1, 60, 0xaa);
  const b = write(pool, 1, 60, 0xbb); // does not fit after a: a second slab
  assert.notEqual(a.bytes.buffer, b.bytes.buffer);
  const c = write(pool, 1, 30, 0xcc); // b's slab, after b
  assert.equal(c.bytes.buffer, b.bytes.buffer);
  pool.release([b]);
  const d = write(pool, 1, 60, 0xdd); // c still lends b's slab, a lends the first: a third
  assert.ok(![a.bytes.buffer, b.bytes.buffer].includes(d.bytes.buffer));
  assert.ok(
    a.bytes.every((x) => x === 0xaa),
    'a lent run is never written over',
  );
  assert.ok(
    c.bytes.every((x) => x === 0xcc),
    'a lent run is never written over',
  );
  pool.release([a, c, runOf(Buffer.alloc(3))]); // a view of other memory is ignored
  const e = write(pool, 1, 60, 0xee);
  assert.equal(e.bytes.buffer, a.bytes.buffer, 'a released slab is reused');
  assert.equal(pool.slabs, 2, 'one empty slab kept (keepFree 1), the other left to the collector');
  pool.release([e]);
  assert.throws(() => pool.release([e]), /released twice/);
});
