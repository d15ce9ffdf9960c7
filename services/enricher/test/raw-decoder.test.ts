// The hand-written raw decoder against the codec (avsc): the same records from
// every branch of the payload, the same DecodeError (reason and message) for
// corrupt messages, and the codec used only for what the fast path leaves.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DecodeError, type RawRecord, type SocketEvent, rawRecordCodec } from '@netmon/common';
import { RawDecoder } from '../src/raw-decoder';
import { exec, exit, fork, record, socket, status, task } from './helpers';
import { prng } from './prng';

const codec = rawRecordCodec();

/** Counts the messages the decoder hands to the codec. */
function decoder(): { d: RawDecoder; fallbacks: () => number } {
  let n = 0;
  const d = new RawDecoder({
    header: codec.header,
    decodeAll: (b) => {
      n++;
      return codec.decodeAll(b);
    },
  });
  return { d, fallbacks: () => n };
}

/** Plain data (avsc's record classes and Buffers compared by content). */
function plain(v: unknown): unknown {
  if (Buffer.isBuffer(v)) return `bytes:${v.toString('hex')}`;
  if (Array.isArray(v)) return v.map(plain);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

function varied(): RawRecord[] {
  const t = task(4242, 1_234_567_890_123, {
    comm: 'wörker😀',
    cgroup_path: `/system.slice/docker-${'ab'.repeat(32)}.scope`,
    uid: 4294967295,
    cap_effective: 2 ** 40 + 1,
    ppid: -1,
  });
  const v6 = {
    family: 'INET6',
    saddr: Buffer.from('20010db8000000000000000000000001', 'hex'),
    daddr: Buffer.from('00000000000000000000ffff5db8d822', 'hex'),
  } as Partial<SocketEvent>;
  return [
    socket(t),
    socket(t, 'ACCEPT', { hostname: '', run_id: 'ü'.repeat(70) }, v6),
    socket(
      t,
      'CLOSE',
      { seq: 2 ** 52, time_us: -5 },
      { netns: 4026531840, opened_ktime_us: 99, handshake: true, error: 111, state: 7, bytes_acked: 2 ** 45, bytes_received: 3 },
    ),
    socket(t, 'LISTEN', {}, { sport: 65535, dport: 0, cookie: 2 ** 53 - 2 }),
    exec(t, '/usr/bin/ünïcode', ['--a', '', 'β'.repeat(100), '😀'], ['SETUID', 'FILELESS_EXEC'], true),
    exec(t, '', [], []),
    fork(task(7, 8), 6, 2 ** 33),
    exit(9, 10),
    status(),
    record({ 'netmon.raw.DnsResponse': { netns: 1, transport: 'TCP', payload: Buffer.from([0, 3, 1, 2, 3]), truncated: true } }),
    record({ 'netmon.raw.DnsResponse': { netns: 0, transport: 'UDP', payload: Buffer.alloc(0), truncated: false } }),
  ];
}

function pack(records: readonly RawRecord[]): Buffer {
  return Buffer.concat(records.map((r) => codec.encode(r)));
}

test('the decoder reads every branch as the codec does, without the codec', () => {
  const { d, fallbacks } = decoder();
  const records = varied();
  for (const r of records) assert.deepEqual(plain(d.decodeAll(pack([r]))), plain(codec.decodeAll(pack([r]))));
  const packed = pack([...records, ...records]);
  const ours = d.decodeAll(packed);
  assert.equal(ours.length, records.length * 2);
  assert.deepEqual(plain(ours), plain(codec.decodeAll(packed)));
  assert.equal(fallbacks(), 0);
  // Addresses are interned: never views of the message, one Buffer per
  // address across records and messages. A DNS payload is a copy of its own.
  const socketOf = (r: RawRecord) => (r.payload as { 'netmon.raw.SocketEvent': SocketEvent })['netmon.raw.SocketEvent'];
  const s = socketOf(ours[0]!);
  assert.equal(socketOf(ours[records.length]!).saddr, s.saddr);
  assert.equal(socketOf(d.decodeAll(pack([records[0]!])).at(0)!).daddr, s.daddr);
  assert.notEqual(s.saddr, s.daddr);
  const before = Buffer.from(s.saddr);
  packed.fill(0);
  assert.deepEqual(s.saddr, before);
  const dns = ours.find((r) => 'netmon.raw.DnsResponse' in r.payload)!.payload as { 'netmon.raw.DnsResponse': { payload: Buffer } };
  assert.notEqual(dns['netmon.raw.DnsResponse'].payload.buffer, packed.buffer);
});

/** What decoding gives: the records, or the DecodeError's reason and message. */
function outcome(decode: () => RawRecord[]): unknown {
  try {
    return plain(decode());
  } catch (err) {
    assert.ok(err instanceof DecodeError, `a DecodeError, not ${String(err)}`);
    return { reason: err.reason, message: err.message };
  }
}

test('a corrupt message gives what the codec gives: the same records or the same DecodeError', () => {
  const { d, fallbacks } = decoder();
  const good = pack(varied());
  const rnd = prng(424242);
  let failures = 0;
  for (let i = 0; i < 5000; i++) {
    let bad = Buffer.from(good);
    const how = rnd();
    if (how < 0.6) {
      for (let k = 1 + Math.floor(rnd() * 3); k > 0; k--) bad[Math.floor(rnd() * bad.length)] = Math.floor(rnd() * 256);
    } else if (how < 0.8) {
      bad = bad.subarray(0, Math.floor(rnd() * bad.length));
    } else {
      bad = Buffer.concat([bad, Buffer.from([Math.floor(rnd() * 256), Math.floor(rnd() * 256)])]);
    }
    const theirs = outcome(() => codec.decodeAll(bad));
    assert.deepEqual(
      outcome(() => d.decodeAll(bad)),
      theirs,
      `corruption ${i}: ${bad.toString('hex')}`,
    );
    if ('reason' in (theirs as object)) failures++;
  }
  assert.ok(failures > 1000, `${failures} corruptions refused`);
  assert.ok(fallbacks() >= failures, 'every refused message went to the codec');
  assert.ok(fallbacks() < 5000, 'corruptions the fast path reads stayed on it');
});
