import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type FlushFigures, backoffMs, overHardLimit, sealReason } from '../src/policy';

const limits = { records: 100, bytes: 10_000, spanMs: 60_000, idleMs: 5_000 };
const fig = (o: Partial<FlushFigures> = {}): FlushFigures => ({
  records: 10,
  rawBytes: 1000,
  lastOffset: 50,
  firstTimeMs: 0,
  maxTimeMs: 1000,
  lastAppendAt: 0,
  ...o,
});

describe('seal policy', () => {
  test('nothing to seal when empty or while the manifest lookup is pending', () => {
    assert.equal(sealReason(fig({ records: 0 }), limits, null, 1e9), undefined);
    assert.equal(sealReason(fig({ records: 1000 }), limits, undefined, 1e9), undefined);
  });

  test('size, span and idleness cut when no manifest exists', () => {
    assert.equal(sealReason(fig({ records: 100 }), limits, null, 0), 'records');
    assert.equal(sealReason(fig({ rawBytes: 10_000 }), limits, null, 0), 'bytes');
    assert.equal(sealReason(fig({ maxTimeMs: 60_000 }), limits, null, 0), 'span');
    assert.equal(sealReason(fig(), limits, null, 4_999), undefined);
    assert.equal(sealReason(fig(), limits, null, 5_000), 'idle');
  });

  test('an existing manifest forces the cut at its last offset, whatever the limits say', () => {
    assert.equal(sealReason(fig({ records: 1000, lastOffset: 49 }), limits, 50, 1e9), undefined);
    assert.equal(sealReason(fig({ lastOffset: 50 }), limits, 50, 0), 'aligned');
  });

  test('hard limit pauses only well past the limits', () => {
    assert.equal(overHardLimit(fig({ records: 150 }), limits), false);
    assert.equal(overHardLimit(fig({ records: 200 }), limits), true);
    assert.equal(overHardLimit(fig({ rawBytes: 20_000 }), limits), true);
  });

  test('backoff grows, is capped and jittered', () => {
    assert.equal(
      backoffMs(0, 200, 30_000, () => 0),
      100,
    );
    assert.equal(
      backoffMs(0, 200, 30_000, () => 1),
      200,
    );
    assert.equal(
      backoffMs(3, 200, 30_000, () => 1),
      1600,
    );
    assert.equal(
      backoffMs(50, 200, 5_000, () => 1),
      5000,
    );
  });
});
