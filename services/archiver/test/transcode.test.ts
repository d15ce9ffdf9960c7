import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { networkEventCodec, readSchema } from '@netmon/common';
import { JsonTranscoder, fastTime } from '../src/transcode';
import { sampleEvent } from './samples';

const codec = networkEventCodec();
const tx = new JsonTranscoder(readSchema('network-event.avsc'), codec.header, 'timestamp');

function line(bytes: Buffer): string | undefined {
  const r = tx.transcode(bytes);
  return r ? tx.out.toString('utf8', 0, r.end) : undefined;
}

let seed = 42;
const rnd = (n: number) => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed % n;
};

describe('Avro → JSON transcoder (the hot path)', () => {
  test('byte for byte JSON.stringify(codec.decode(bytes)) on varied records', () => {
    const big = [0, 1, -1, 63, 64, -64, -65, 127, 128, 8191, 8192, 2 ** 31 - 1, -(2 ** 31), 2 ** 32, 4294967295, 2 ** 52, -(2 ** 52), 1099511627775];
    let fast = 0;
    for (let i = 0; i < 3000; i++) {
      const ev = sampleEvent({
        seq: big[i % big.length]!,
        pid: [0, 1, 2 ** 31 - 1, -5][i % 4]!,
        cookie: big[(i * 7) % big.length]!,
        sport: rnd(65536),
        binary: `/usr/bin/x${rnd(1000)}`,
        type: (['TcpConnectionEstablish', 'TcpConnectionAccept', 'TcpConnectionClose'] as const)[i % 3],
        timestamp: new Date(1_700_000_000_000 + rnd(2 ** 30) * 1000).toISOString(),
      });
      ev.process.args = i % 5 === 0 ? '' : `--flag=${rnd(99999)} path/x`;
      ev.process.cap_effective = big[(i * 3) % big.length]!;
      ev.process.auid = 4294967295;
      const bytes = codec.encode(ev);
      const expected = JSON.stringify(codec.decode(bytes));
      const got = line(bytes);
      if (got !== undefined) {
        fast++;
        assert.equal(got, expected);
      }
    }
    assert.ok(fast > 2000, `the fast path took ${fast} of 3000 (2^52 itself falls back)`);
  });

  test('escapes, control characters and UTF-8 take the fast path, byte for byte JSON.stringify', () => {
    const nasty = [
      'say "hi"',
      'back\\slash \\"',
      'tab\there\r\n',
      '\b\f\u0000\u0001\u001f\u007f',
      'é 日本 \u2028\u2029 \u00a0',
      '😀 𝄞 \u{10ffff}',
      '-6 "google.com" \\ é',
      '',
    ];
    let fast = 0;
    for (const [i, text] of nasty.entries()) {
      const ev = sampleEvent({
        hostname: text,
        timestamp: new Date(1_700_000_000_000 + i * 3_600_123).toISOString(),
        // NetworkEvent v2's facts, non-default
        connection: {
          outcome: i % 2 ? 'refused' : 'established',
          duration_ms: 2 ** 40 + i,
          bytes_sent: i * 1000,
          bytes_received: 7,
          remote_name: `${text}.example`,
          netns: 4026531840,
        },
        processKey: text,
      });
      ev.process.args = text;
      const bytes = codec.encode(ev);
      const got = line(bytes);
      assert.equal(got, JSON.stringify(codec.decode(bytes)), JSON.stringify(text));
      if (got !== undefined) fast++;
    }
    assert.equal(fast, nasty.length);
  });

  test('bytes that are not well-formed UTF-8 fall back (decoding puts U+FFFD in: the codec decides)', () => {
    const marker = 'QQQQ';
    const ev = sampleEvent();
    ev.process.args = marker;
    const good = codec.encode(ev);
    const at = good.indexOf(marker);
    const cases: number[][] = [
      [0xff, 0x41, 0x41, 0x41], // never in UTF-8
      [0xc0, 0xaf, 0x41, 0x41], // overlong "/"
      [0xed, 0xa0, 0x80, 0x41], // a surrogate
      [0xe2, 0x82, 0x41, 0x41], // truncated sequence
      [0x41, 0x41, 0x41, 0xf0], // truncated at the end of the string
      [0xf4, 0x90, 0x80, 0x80], // past U+10FFFF
      [0x80, 0x41, 0x41, 0x41], // lone continuation byte
    ];
    for (const bad of cases) {
      const bytes = Buffer.from(good);
      Buffer.from(bad).copy(bytes, at);
      assert.equal(line(bytes), undefined, Buffer.from(bad).toString('hex'));
    }
    // The same 4 bytes as "éé": well-formed, fast, identical.
    const ok = Buffer.from(good);
    Buffer.from('éé', 'utf8').copy(ok, at);
    assert.equal(line(ok), JSON.stringify({ ...ev, process: { ...ev.process, args: 'éé' } }));
  });

  test("writes in place: at an offset of the caller's buffer, which must have room", () => {
    const bytes = codec.encode(sampleEvent());
    const into = Buffer.alloc(JsonTranscoder.maxOutput(bytes.length) + 100, 0x2e);
    const r = tx.transcode(bytes, into, 100)!;
    assert.equal(r.start, 100);
    assert.equal(into.toString('utf8', r.start, r.end), JSON.stringify(codec.decode(bytes)));
    assert.equal(into.toString('latin1', 0, 100), '.'.repeat(100));
    assert.equal(into.toString('utf8', r.markStart, r.markEnd), '2025-05-31T10:05:51.282Z');
    assert.throws(() => tx.transcode(bytes, into, 101), RangeError);
  });

  test('a schema with a type it does not know (a union, null, boolean) has no fast path', () => {
    for (const type of [['null', 'string'], 'null', 'boolean', 'double']) {
      const schema = { type: 'record', name: 'X', fields: [{ name: 'a', type }] };
      assert.throws(() => new JsonTranscoder(schema, codec.header, 'a'), /no fast path/);
    }
  });

  test('anything odd falls back: bad header, bad enum, truncated, trailing bytes, long past 2^53', () => {
    const plain = (o: Parameters<typeof sampleEvent>[0] = {}) => {
      const e = sampleEvent(o);
      e.process.args = '-s https://example.com';
      return e;
    };
    const good = codec.encode(plain());
    assert.ok(line(good));
    const badMagic = Buffer.from(good);
    badMagic[0] = 0;
    assert.equal(line(badMagic), undefined);
    const otherFingerprint = Buffer.from(good);
    otherFingerprint[5] ^= 0xff;
    assert.equal(line(otherFingerprint), undefined);
    assert.equal(line(good.subarray(0, good.length - 3)), undefined);
    assert.equal(line(Buffer.concat([good, Buffer.from([0])])), undefined);
    const ev = sampleEvent();
    ev.process.args = 'plain';
    ev.process.cap_effective = 2 ** 52 + 2;
    assert.equal(line(codec.encode(ev)), undefined);
    // Enum index 4 (past the 4 symbols): find the enum byte by encoding two types and diffing.
    const a = codec.encode(plain({ type: 'TcpConnectionEstablish' }));
    const b = codec.encode(plain({ type: 'TcpConnectionAccept' }));
    const at = a.findIndex((x, i) => x !== b[i]);
    const bad = Buffer.from(a);
    bad[at] = 8; // zigzag 4
    assert.equal(line(bad), undefined);
    assert.throws(() => codec.decode(bad));
  });

  test("mutated and truncated records: the native interpreter answers the codec's line or falls back, never anything else", () => {
    const base = sampleEvent({ hostname: 'web-"7"\\é' });
    base.process.args = '-c "print(1)"\t😀';
    const good = codec.encode(base);
    let fast = 0;
    for (let i = 0; i < 20_000; i++) {
      const bytes = Buffer.from(good.subarray(0, i % 7 === 0 ? rnd(good.length + 1) : good.length));
      for (let flips = 1 + rnd(3); flips > 0 && bytes.length > 10; flips--) bytes[10 + rnd(bytes.length - 10)] = rnd(256);
      const got = line(bytes);
      if (got === undefined) continue;
      fast++;
      assert.equal(got, JSON.stringify(codec.decode(bytes)), bytes.toString('hex'));
    }
    assert.ok(fast > 1000, `${fast} mutated records took the fast path`);
  });

  test('the native side checks its room itself', () => {
    const bytes = codec.encode(sampleEvent());
    const run = (tx as unknown as { run: ((s: Buffer, o: Buffer, at: number) => number) & { fixedBytes: number } }).run;
    const exact = Buffer.alloc(run.fixedBytes + 6 * bytes.length);
    assert.ok(run(bytes, exact, 0) > 0);
    assert.throws(() => run(bytes, exact, 1), RangeError);
    assert.throws(() => run(bytes, exact, -1), RangeError);
    assert.throws(() => run(bytes, Buffer.alloc(100), 0), RangeError);
    assert.throws(() => run('x' as unknown as Buffer, Buffer.alloc(10), 0), TypeError);
  });

  test('reports where the timestamp is; fastTime reads only the exact spec form', () => {
    const ev = sampleEvent({ timestamp: '2025-05-31T10:05:51.282Z' });
    ev.process.args = 'x';
    const r = tx.transcode(codec.encode(ev))!;
    assert.equal(tx.out.toString('utf8', r.markStart, r.markEnd), '2025-05-31T10:05:51.282Z');
    assert.equal(fastTime(tx.out, r.markStart, r.markEnd), Date.parse('2025-05-31T10:05:51.282Z'));
    for (const t of ['2025-05-31T10:05:51Z', '2025-05-31T10:05:51.282+00:00', '2025-13-31T10:05:51.282Z', 'x025-05-31T10:05:51.282Z']) {
      const b = Buffer.from(t);
      assert.equal(fastTime(b, 0, b.length), undefined, t);
    }
  });
});

test('fastTime refuses dates that do not exist, so the partition bytes always match the time', () => {
  for (const t of ['2026-02-30T10:00:00.000Z', '2026-04-31T10:00:00.000Z', '2026-11-29T23:59:60.000Z']) {
    const b = Buffer.from(t);
    assert.equal(fastTime(b, 0, b.length), undefined, t);
  }
  const ok = Buffer.from('2024-02-29T10:00:00.000Z');
  assert.equal(fastTime(ok, 0, ok.length), Date.UTC(2024, 1, 29, 10));
});
