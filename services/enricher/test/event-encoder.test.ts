// The hand-written NetworkEvent encoder against avsc's encoding of the schema:
// byte for byte over many varied events' parts, the same refusals.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type SocketEvent, networkEventCodec } from '@netmon/common';
import { EventEncodeError, type EventParts, NetworkEventEncoder, eventOf } from '../src/lib';
import { task } from './helpers';
import { prng } from './prng';

const codec = networkEventCodec();

const INTS = [0, 1, -1, 63, 64, -64, -65, 127, 128, 8191, 8192, 1 << 20, -(1 << 20), 2 ** 30 - 1, 2 ** 30, -(2 ** 30), -(2 ** 30) - 1, 2 ** 31 - 1, -(2 ** 31)];
const LONGS = [...INTS, 2 ** 31, 2 ** 32, 4294967295, 2 ** 35 + 7, -(2 ** 40) - 3, 2 ** 52, 2 ** 53 - 2, -(2 ** 53) + 2, 9007199254740990, -9007199254740990];
const PIECES = [
  '',
  'a',
  'worker-7',
  'é',
  'ß',
  '中文',
  'Ω≈ç',
  '😀',
  'a😀b',
  '\u0000',
  '\u007f',
  '\u0080',
  '\u07ff',
  '\u0800',
  '\uffff',
  '/usr/bin/python3',
  '…',
  ' | ',
];

function pick<T>(rnd: () => number, xs: readonly T[]): T {
  return xs[Math.floor(rnd() * xs.length)]!;
}

function text(rnd: () => number): string {
  const shape = rnd();
  if (shape < 0.1) return '';
  if (shape < 0.15) return 'x'.repeat(Math.floor(rnd() * 3) + 62); // around the one-byte length bound
  if (shape < 0.2) return 'y'.repeat(Math.floor(rnd() * 300)); // and the char-by-char bound (256)
  if (shape < 0.25) return 'é'.repeat(Math.floor(rnd() * 70));
  if (shape < 0.3) return 'long argument '.repeat(Math.floor(rnd() * 400));
  let s = '';
  const n = Math.floor(rnd() * 8);
  for (let i = 0; i < n; i++) s += pick(rnd, PIECES);
  return s;
}

/** Random parts of a socket record's event: every kind, both families, closes with and without facts. */
function parts(rnd: () => number): EventParts {
  const int = () => pick(rnd, INTS);
  const long = () => pick(rnd, LONGS);
  const family = rnd() < 0.5 ? 'INET' : 'INET6';
  const address = () => Buffer.from(Array.from({ length: family === 'INET' ? 4 : 16 }, () => (rnd() < 0.5 ? 0 : Math.floor(rnd() * 256))));
  const socket: SocketEvent = {
    kind: pick(rnd, ['ESTABLISH', 'ACCEPT', 'CLOSE', 'LISTEN'] as const),
    task: {
      ...task(int(), long(), {
        tid: int(),
        ppid: int(),
        uid: long(),
        euid: long(),
        auid: long(),
        cap_inheritable: long(),
        cap_permitted: long(),
        cap_effective: long(),
        ktime_us: long(),
      }),
    },
    family,
    saddr: address(),
    daddr: address(),
    sport: int(),
    dport: int(),
    cookie: long(),
    netns: rnd() < 0.2 ? 0 : long(),
    opened_ktime_us: rnd() < 0.3 ? 0 : long(),
    handshake: rnd() < 0.5,
    error: pick(rnd, [0, 111, 110, 113, 101, 112, 64, 104, 32, 5]),
    state: int(),
    bytes_acked: long(),
    bytes_received: long(),
  };
  return {
    socket,
    filename: text(rnd),
    binaryPath: text(rnd),
    args: text(rnd),
    secureexec: text(rnd),
    containerId: text(rnd),
    timeUs: pick(rnd, [0, 1748685951282123, -1000, 2 ** 52, 253402300799999999]),
    host: { hostname: text(rnd), id: text(rnd) },
    runId: text(rnd),
    seq: long(),
    remoteName: text(rnd),
    processKey: text(rnd),
  };
}

test('an event written from its parts is byte for byte avsc’s encoding of eventOf(parts), across slabs', () => {
  const rnd = prng(3011);
  const encoder = new NetworkEventEncoder(codec.header);
  const views: Array<[Buffer, Buffer]> = [];
  let bytes = 0;
  for (let i = 0; i < 20_000; i++) {
    const p = parts(rnd);
    const ev = eventOf(p);
    const ours = encoder.encodeParts(p);
    const theirs = codec.encode(ev);
    assert.ok(ours.equals(theirs), `parts ${i} differ: ${JSON.stringify(ev)}\n${ours.toString('hex')}\n${theirs.toString('hex')}`);
    views.push([ours, theirs]);
    bytes += ours.length;
  }
  assert.ok(bytes > 3 << 20, `${bytes} bytes: several slabs filled`);
  // A slab is never reused under a view handed out earlier.
  for (const [ours, theirs] of views) assert.ok(ours.equals(theirs));
  // An event larger than a slab, and decoding back.
  const big = { ...parts(rnd), args: 'é'.repeat(700_000) };
  const written = encoder.encodeParts(big);
  assert.ok(written.equals(codec.encode(eventOf(big))));
  assert.equal(codec.decode(written).process.args, big.args);
});

test('parts avsc would refuse are refused, and the encoder goes on', () => {
  const encoder = new NetworkEventEncoder(codec.header);
  const base = parts(prng(11));
  const bad: Array<(p: EventParts) => void> = [
    (p) => (p.socket.task.pid = 1.5),
    (p) => (p.socket.task.pid = 2 ** 31),
    (p) => (p.socket.task.uid = 2 ** 53),
    (p) => (p.socket.task.uid = Number.NaN),
    (p) => (p.socket.sport = 2 ** 31),
    (p) => (p.socket.cookie = Number.NaN),
    (p) => (p.socket.cookie = '7' as unknown as number),
    (p) => (p.socket.kind = 'Udp' as SocketEvent['kind']),
    (p) => (p.seq = 0.5),
    (p) => (p.host.id = 42 as unknown as string),
    (p) => (p.remoteName = null as unknown as string),
    (p) => (p.socket.kind = 'toString' as SocketEvent['kind']),
  ];
  for (const spoil of bad) {
    const p = { ...base, socket: { ...base.socket, task: { ...base.socket.task } }, host: { ...base.host } };
    spoil(p);
    assert.throws(() => encoder.encodeParts(p), EventEncodeError);
    // avsc looks enum symbols up in a plain object and would write garbage for an inherited name.
    if (p.socket.kind !== ('toString' as SocketEvent['kind'])) assert.throws(() => codec.encode(eventOf(p)), `avsc refuses ${JSON.stringify(eventOf(p))}`);
  }
  assert.ok(encoder.encodeParts(base).equals(codec.encode(eventOf(base))));
});
