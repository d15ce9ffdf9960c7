// EventDecoder on the hot path: lines written straight into the open flush's
// chunk (no copy), the hour partition and time read from the bytes with the
// last hour remembered. Whatever the order of hours and the odd timestamps
// among them, the archive holds exactly JSON.stringify(codec.decode(value)),
// and each record's partition and time are what a fresh decoder finds.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { networkEventCodec } from '@netmon/common';
import { type ArchiveRecord, FlushBuilder } from '../src/batch';
import { EventDecoder } from '../src/decode';
import { Undecodable } from '../src/partition';
import { sampleEvent } from './samples';

const codec = networkEventCodec();

const TIMES = [
  '2025-05-31T10:05:51.282Z',
  '2025-05-31T10:59:59.999Z',
  '2025-05-31T11:00:00.000Z',
  '2025-05-31T10:30:00.001Z', // back to the earlier hour
  '2025-05-31T10:61:00.000Z', // the hour repeats, the minutes are not a time
  '2025-05-31T10:05:51Z', // the hour repeats, another RFC 3339 form
  '2025-05-31T10:05:51.282+00:00',
  '2026-02-29T10:00:00.000Z', // no such day
  '2024-02-29T23:59:59.999Z',
  '2024-03-01T00:00:00.000Z',
];

test('in place and with the hour remembered: byte for byte the codec, and every partition and time a fresh decoder gives', async () => {
  const decoder = new EventDecoder();
  const flush = new FlushBuilder('pfx', 't', 0, 0, 3, 0);
  const expected = new Map<string, string[]>();
  let inPlace = 0;
  for (let i = 0; i < 600; i++) {
    const ev = sampleEvent({ timestamp: TIMES[(i * 7) % TIMES.length]!, seq: i, hostname: i % 3 ? `web-${i}` : `wëb "${i}"\t` });
    const value = codec.encode(ev);
    const m = { offset: i, key: null, value };
    const got = decoder.decode(m, i, flush);
    const fresh = new EventDecoder().decode(m, i);
    if (got instanceof Undecodable || fresh instanceof Undecodable) {
      assert.ok(got instanceof Undecodable && fresh instanceof Undecodable, ev.timestamp);
      assert.equal(got.reason, fresh.reason);
      continue;
    }
    assert.deepEqual([got.part, got.timeMs], [fresh.part, fresh.timeMs], ev.timestamp);
    if (got.bytes && got.bytes !== decoder['transcoder']?.out) inPlace++;
    flush.append(got as ArchiveRecord, 0);
    const key = `${got.part.dt}/${got.part.hour}`;
    expected.set(key, [...(expected.get(key) ?? []), JSON.stringify(codec.decode(value))]);
  }
  assert.ok(inPlace > 300, `${inPlace} of 600 written in place`);
  const lineBytes = [...expected.values()].flat().reduce((n, l) => n + Buffer.byteLength(l) + 1, 0);
  assert.equal(flush.rawBytes, lineBytes);
  const { objects } = await flush.seal();
  assert.deepEqual(objects.map((o) => `${o.part.dt}/${o.part.hour}`).sort(), [...expected.keys()].sort());
  for (const o of objects) {
    const lines = gunzipSync(o.body).toString('utf8').split('\n');
    assert.equal(lines.pop(), '');
    assert.deepEqual(lines, expected.get(`${o.part.dt}/${o.part.hour}`));
  }
});
