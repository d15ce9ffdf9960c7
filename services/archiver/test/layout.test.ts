import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { dataKey, dataPrefix, hourOf, manifestKey, parseDataKey } from '../src/layout';

describe('layout', () => {
  test('hour partition of spec timestamps is sliced, others converted to UTC', () => {
    assert.deepEqual(hourOf('2025-05-31T10:05:51.282Z'), { dt: '2025-05-31', hour: '10' });
    assert.deepEqual(hourOf('2025-05-31T23:59:59Z'), { dt: '2025-05-31', hour: '23' });
    assert.deepEqual(hourOf('2025-06-01T01:30:00.000+02:00'), { dt: '2025-05-31', hour: '23' });
    assert.equal(hourOf('yesterday'), undefined);
  });

  test('data keys: prefix, Hive partitions, topic+partition+padded first offset', () => {
    const key = dataKey('netmon/events', 'netmon.events.v1', 3, { dt: '2025-05-31', hour: '07' }, 1234);
    assert.equal(key, 'netmon/events/dt=2025-05-31/hour=07/netmon.events.v1+3+00000000000000001234.json.gz');
    assert.deepEqual(parseDataKey(key), { dt: '2025-05-31', hour: '07', topic: 'netmon.events.v1', partition: 3, firstOffset: 1234, format: 'json' });
    assert.equal(parseDataKey('netmon/events/_flushes/x+1/0001.json'), undefined);
  });

  test('Parquet keys: their own prefix beside s3.prefix (never inside it), same partitions and names, .parquet', () => {
    const key = dataKey('netmon/events', 'netmon.events.v1', 3, { dt: '2025-05-31', hour: '07' }, 1234, 'parquet');
    assert.equal(key, 'netmon/events-parquet/dt=2025-05-31/hour=07/netmon.events.v1+3+00000000000000001234.parquet');
    assert.ok(!key.startsWith('netmon/events/'));
    assert.deepEqual(parseDataKey(key), { dt: '2025-05-31', hour: '07', topic: 'netmon.events.v1', partition: 3, firstOffset: 1234, format: 'parquet' });
    assert.equal(dataPrefix('netmon/events', 'json'), 'netmon/events');
    assert.equal(dataPrefix('netmon/events', 'parquet'), 'netmon/events-parquet');
    // One manifest place for both formats.
    assert.equal(manifestKey('netmon/events', 't', 0, 5), 'netmon/events/_flushes/t+0/00000000000000000005.json');
  });

  test('keys sort by offset within a partition', () => {
    const a = dataKey('p', 't', 0, { dt: '2025-01-01', hour: '00' }, 9);
    const b = dataKey('p', 't', 0, { dt: '2025-01-01', hour: '00' }, 10);
    assert.ok(a < b);
    assert.ok(manifestKey('p', 't', 0, 9) < manifestKey('p', 't', 0, 10));
    assert.equal(manifestKey('p', 't', 2, 10), 'p/_flushes/t+2/00000000000000000010.json');
  });
});

test('a timestamp of the right shape but no real date or hour has no partition (Athena could never find it)', () => {
  for (const t of [
    '2026-13-45T99:99:99.000Z',
    '2026-11-31T25:61:00Z',
    '2026-02-30T24:00:00.000Z',
    '2026-00-00T00:00:00.000Z',
    '2023-02-29T10:00:00.000Z',
    '2026-11-29T23:59:60.000Z',
  ])
    assert.equal(hourOf(t), undefined, t);
  assert.deepEqual(hourOf('2024-02-29T10:00:00.000Z'), { dt: '2024-02-29', hour: '10' });
});
