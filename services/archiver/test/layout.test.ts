import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { dataKey, hourOf, manifestKey, parseDataKey } from '../src/layout';

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
    assert.deepEqual(parseDataKey(key), { dt: '2025-05-31', hour: '07', topic: 'netmon.events.v1', partition: 3, firstOffset: 1234 });
    assert.equal(parseDataKey('netmon/events/_flushes/x+1/0001.json'), undefined);
  });

  test('keys sort by offset within a partition', () => {
    const a = dataKey('p', 't', 0, { dt: '2025-01-01', hour: '00' }, 9);
    const b = dataKey('p', 't', 0, { dt: '2025-01-01', hour: '00' }, 10);
    assert.ok(a < b);
    assert.ok(manifestKey('p', 't', 0, 9) < manifestKey('p', 't', 0, 10));
    assert.equal(manifestKey('p', 't', 2, 10), 'p/_flushes/t+2/00000000000000000010.json');
  });
});
