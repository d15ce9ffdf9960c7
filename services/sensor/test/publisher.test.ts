// The publisher's ordering and accounting, with a send function standing in
// for the broker (the real-broker outage test is in sensor-service.test.ts).
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { Publisher } from '../src/service/publisher';
import { type RecordRun, runOf } from '../src/service/runs';
import { Spool } from '../src/service/spool';

const rec = (i: number) => runOf(Buffer.from(String(i)));

async function until(cond: () => boolean, ms = 10_000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('an outage spills to the spool and everything arrives once, in order', async () => {
  const delivered: number[] = [];
  let down = true;
  const publisher = new Publisher({
    send: async (values) => {
      if (down) throw new Error('broker down');
      delivered.push(...values.map((v) => Number(String(v.bytes))));
    },
    spool: new Spool(mkdtempSync(path.join(tmpdir(), 'netmon-pub-')), 1 << 20),
    maxBatchRecords: 50,
    maxBatchBytes: 1 << 20,
    lingerMs: 1,
    maxMemoryRecords: 100,
  });
  for (let i = 0; i < 1000; i += 10) publisher.enqueue(Array.from({ length: 10 }, (_, k) => rec(i + k)));
  assert.ok(publisher.counters.spooled >= 900, `spooled ${publisher.counters.spooled}`);
  down = false;
  for (let i = 1000; i < 1100; i++) publisher.enqueue([rec(i)]);
  await until(() => delivered.length >= 1100);
  await publisher.close(1000);
  assert.deepEqual(
    delivered,
    Array.from({ length: 1100 }, (_, i) => i),
  );
  assert.equal(publisher.counters.dropped, 0);
  assert.equal(publisher.counters.sent, 1100);
});

test('past the spool bound, the drop counter equals the records missing', async () => {
  const delivered: number[] = [];
  let down = true;
  const publisher = new Publisher({
    send: async (values) => {
      if (down) throw new Error('broker down');
      delivered.push(...values.map((v) => Number(String(v.bytes))));
    },
    spool: new Spool(mkdtempSync(path.join(tmpdir(), 'netmon-pub-')), 200 * 8),
    maxBatchRecords: 50,
    maxBatchBytes: 1 << 20,
    lingerMs: 1,
    maxMemoryRecords: 100,
  });
  for (let i = 0; i < 1000; i++) publisher.enqueue([rec(1000 + i)]);
  down = false;
  await until(() => publisher.queued === 0 && delivered.length + publisher.counters.dropped >= 1000);
  await publisher.close(1000);
  assert.ok(publisher.counters.dropped > 0);
  assert.equal(1000 - delivered.length, publisher.counters.dropped);
  assert.deepEqual(
    [...delivered].sort((a, b) => a - b),
    delivered,
    'still in order',
  );
});

test('closing while the broker is away keeps memory and spool in order for the next run', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'netmon-pub-'));
  const options = {
    spool: new Spool(dir, 1 << 20),
    maxBatchRecords: 50,
    maxBatchBytes: 1 << 20,
    lingerMs: 1,
    maxMemoryRecords: 100,
  };
  const down = new Publisher({ ...options, send: async () => Promise.reject(new Error('broker down')) });
  for (let i = 0; i < 300; i++) down.enqueue([rec(i)]);
  await down.close(300);
  assert.equal(down.counters.sent, 0);
  const delivered: number[] = [];
  const up = new Publisher({ ...options, spool: new Spool(dir, 1 << 20), send: async (v) => void delivered.push(...v.map((b) => Number(String(b.bytes)))) });
  up.enqueue([rec(300)]);
  await until(() => delivered.length === 301);
  await up.close(1000);
  assert.deepEqual(
    delivered,
    Array.from({ length: 301 }, (_, i) => i),
  );
});

test('runs of several records: bounds and counters in records, every run released once', async () => {
  const delivered: string[] = [];
  const released: RecordRun[] = [];
  let down = true;
  const run = (first: number, count: number): RecordRun => ({ bytes: Buffer.from(`${first}+${count}`), count });
  const publisher = new Publisher({
    send: async (runs) => {
      if (down) throw new Error('broker down');
      delivered.push(...runs.map((r) => String(r.bytes)));
    },
    spool: new Spool(mkdtempSync(path.join(tmpdir(), 'netmon-pub-')), 1 << 20),
    maxBatchRecords: 25,
    maxBatchBytes: 1 << 20,
    lingerMs: 1,
    maxMemoryRecords: 40,
    onReleased: (runs) => released.push(...runs),
  });
  const runs = Array.from({ length: 20 }, (_, i) => run(i * 10, 10));
  publisher.enqueue(runs.slice(0, 10));
  assert.equal(publisher.queued, 40, 'memory takes runs while below its bound');
  assert.equal(publisher.counters.spooled, 60);
  down = false;
  publisher.enqueue(runs.slice(10));
  await until(() => publisher.counters.sent === 200);
  await publisher.close(1000);
  assert.deepEqual(
    delivered,
    runs.map((r) => String(r.bytes)),
    'in order',
  );
  assert.equal(publisher.counters.spooled, 160, 'the spool was not empty: later runs went behind it');
  assert.deepEqual(
    [...released].sort((a, b) => runs.indexOf(a) - runs.indexOf(b)),
    runs,
    'each run released exactly once',
  );
});
