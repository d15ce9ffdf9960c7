import assert from 'node:assert/strict';
import { gunzipSync } from 'node:zlib';
import { describe, test } from 'node:test';
import { FlushBuilder } from '../src/batch';
import { hourOf } from '../src/layout';
import { assertSpecOrder, sampleEvent } from './samples';

function record(offset: number, timestamp: string) {
  const ev = sampleEvent({ timestamp, seq: offset });
  return { offset, line: JSON.stringify(ev), part: hourOf(timestamp)!, timeMs: Date.parse(timestamp) };
}

describe('FlushBuilder', () => {
  test('splits by UTC hour, names each object by its first offset, lines in offset order', async () => {
    const b = new FlushBuilder('pfx', 'topic.a', 2, 100, 6, 0);
    const times = ['2025-05-31T10:59:59.000Z', '2025-05-31T11:00:00.000Z', '2025-05-31T10:59:59.500Z', '2025-05-31T11:30:00.000Z'];
    for (const [i, t] of times.entries()) b.append(record(100 + i, t), 0);
    assert.equal(b.records, 4);
    assert.equal(b.lastOffset, 103);
    assert.equal(b.nextOffset, 104);
    b.coverThrough(105);
    assert.equal(b.nextOffset, 106);
    const { objects } = await b.seal();
    assert.deepEqual(
      objects.map((o) => [o.key, o.records, o.firstOffset]),
      [
        ['pfx/dt=2025-05-31/hour=10/topic.a+2+00000000000000000100.json.gz', 2, 100],
        ['pfx/dt=2025-05-31/hour=11/topic.a+2+00000000000000000101.json.gz', 2, 101],
      ],
    );
    const lines = gunzipSync(objects[0]!.body).toString('utf8').split('\n');
    assert.equal(lines.pop(), '', 'every line ends with a newline');
    assert.deepEqual(
      lines.map((l) => JSON.parse(l).source.seq),
      [100, 102],
    );
    for (const l of lines) assertSpecOrder(JSON.parse(l));
  });

  test('the same records give the same bytes (a replay rewrites identical objects)', async () => {
    const build = async () => {
      const b = new FlushBuilder('p', 't', 0, 0, 6, 0);
      for (let i = 0; i < 5000; i++) b.append(record(i, `2025-05-31T10:${String(Math.floor(i / 100) % 60).padStart(2, '0')}:00.000Z`), 0);
      return (await b.seal()).objects.map((o) => o.body.toString('base64'));
    };
    assert.deepEqual(await build(), await build());
  });

  test('large flushes stream through the compressor (many chunks) and stay exact', async () => {
    const b = new FlushBuilder('p', 't', 0, 0, 1, 0);
    const n = 20_000;
    for (let i = 0; i < n; i++) b.append(record(i, '2025-05-31T10:00:00.000Z'), 0);
    const { objects } = await b.seal();
    assert.equal(objects.length, 1);
    const text = gunzipSync(objects[0]!.body).toString('utf8');
    assert.equal(text.split('\n').length - 1, n);
    assert.equal(Buffer.byteLength(text), b.rawBytes);
    assert.ok(objects[0]!.body.length < b.rawBytes / 4, 'gzip actually compresses');
  });

  test('record-time span: first record to newest, clamped to the wall clock', () => {
    const b = new FlushBuilder('p', 't', 0, 0, 6, 0);
    const now = Date.parse('2025-05-31T12:00:00.000Z');
    b.append(record(0, '2025-05-31T10:00:00.000Z'), now);
    b.append(record(1, '2025-05-31T09:00:00.000Z'), now);
    assert.equal(b.maxTimeMs - b.firstTimeMs, 0);
    b.append(record(2, '2025-06-30T10:00:00.000Z'), now);
    assert.equal(b.maxTimeMs, now, 'a clock far ahead counts as now');
  });

  test('rejects records out of offset order', () => {
    const b = new FlushBuilder('p', 't', 0, 10, 6, 0);
    b.append(record(10, '2025-05-31T10:00:00.000Z'), 0);
    assert.throws(() => b.append(record(10, '2025-05-31T10:00:00.000Z'), 0), RangeError);
    b.discard();
  });
});
