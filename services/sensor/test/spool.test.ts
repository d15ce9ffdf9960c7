import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { runOf } from '../src/service/runs';
import { Spool } from '../src/service/spool';

const tmp = () => mkdtempSync(path.join(tmpdir(), 'netmon-spool-'));
const rec = (i: number) => runOf(Buffer.from(`record-${String(i).padStart(6, '0')}`));
const text = (r: { bytes: Buffer }) => String(r.bytes);

function drain(spool: Spool, batch = 7): string[] {
  const out: string[] = [];
  for (let b = spool.peek(batch, 1 << 20); b; b = spool.peek(batch, 1 << 20)) {
    out.push(...b.runs.map(text));
    spool.commit(b);
  }
  return out;
}

test('records come out in order, across segments', () => {
  const spool = new Spool(tmp(), 1 << 20, 200);
  spool.append(Array.from({ length: 100 }, (_, i) => rec(i)));
  assert.equal(spool.records, 100);
  assert.deepEqual(
    drain(spool),
    Array.from({ length: 100 }, (_, i) => text(rec(i))),
  );
  assert.ok(spool.isEmpty);
  assert.equal(spool.bytes, 0);
});

test('past the bound, records are dropped and counted', () => {
  const spool = new Spool(tmp(), 10 * (4 + rec(0).bytes.length), 1 << 20);
  const dropped = spool.append(Array.from({ length: 25 }, (_, i) => rec(i)));
  assert.equal(dropped, 15);
  assert.equal(spool.records, 10);
  assert.deepEqual(
    drain(spool),
    Array.from({ length: 10 }, (_, i) => text(rec(i))),
  );
});

test('a restart resumes where sending stopped: nothing lost, nothing resent', () => {
  const dir = tmp();
  const first = new Spool(dir, 1 << 20, 300);
  first.append(Array.from({ length: 50 }, (_, i) => rec(i)));
  const batch = first.peek(12, 1 << 20)!;
  first.commit(batch);
  first.close();
  const second = new Spool(dir, 1 << 20, 300);
  assert.equal(second.records, 38);
  second.append([rec(50)]);
  assert.deepEqual(
    drain(second),
    Array.from({ length: 39 }, (_, i) => text(rec(i + 12))),
  );
  assert.deepEqual(readdirSync(dir), []);
});

test('a torn record at the end of a crash is ignored', () => {
  const dir = tmp();
  const spool = new Spool(dir, 1 << 20);
  spool.append([rec(1), rec(2)]);
  spool.close();
  const seg = readdirSync(dir).find((f) => f.endsWith('.seg'))!;
  appendFileSync(path.join(dir, seg), Buffer.from([200, 0, 0, 0, 1, 2])); // length 200, 2 bytes
  const again = new Spool(dir, 1 << 20);
  assert.equal(again.records, 2);
  assert.deepEqual(drain(again), [text(rec(1)), text(rec(2))]);
});

test('prepend puts older records before the spooled ones, and survives a restart', () => {
  const dir = tmp();
  const spool = new Spool(dir, 1 << 20, 200);
  spool.append(Array.from({ length: 30 }, (_, i) => rec(100 + i)));
  spool.commit(spool.peek(5, 1 << 20)!);
  spool.prepend([rec(1), rec(2), rec(3)]);
  spool.close();
  const again = new Spool(dir, 1 << 20, 200);
  assert.deepEqual(drain(again), [rec(1), rec(2), rec(3), ...Array.from({ length: 25 }, (_, i) => rec(105 + i))].map(text));
});

test('runs of several records count as their records, are dropped whole past the bound, and survive a restart', () => {
  const dir = tmp();
  const run = (first: number, count: number) => ({ bytes: Buffer.from(Array.from({ length: count }, (_, k) => String(first + k)).join(',')), count });
  const spool = new Spool(dir, 200, 1 << 20);
  const big = run(1000, 60); // 60 × 5 bytes: past the bound alone
  assert.equal(spool.append([run(0, 3), rec(9), run(10, 4), big]), 60, 'the run that does not fit is dropped whole');
  assert.equal(spool.records, 8);
  spool.close();
  const again = new Spool(dir, 200, 1 << 20);
  assert.equal(again.records, 8, 'counted in records after a restart');
  const first = again.peek(4, 1 << 20)!;
  assert.deepEqual(first.runs.map(text), ['0,1,2', String(rec(9).bytes)], 'a run is never split; the batch stops before the limit');
  assert.equal(first.records, 4);
  again.commit(first);
  assert.equal(again.records, 4);
  assert.deepEqual(drain(again), ['10,11,12,13']);
});

test('a record longer than a message is read whole', () => {
  const spool = new Spool(tmp(), 4 << 20);
  const long = runOf(Buffer.alloc(600_000, 'a'));
  spool.append([long, rec(1)]);
  const batch = spool.peek(10, 1000)!;
  assert.equal(batch.runs.length, 1);
  assert.ok(batch.runs[0]!.bytes.equals(long.bytes));
  spool.commit(batch);
  assert.deepEqual(drain(spool), [text(rec(1))]);
});
