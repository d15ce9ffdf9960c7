import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NO_SOCKET_FACTS, type RawPayloadOf, rawRecordCodec, wrapPayload } from '@netmon/common';
import { AF_INET, AF_INET6, COMM_LEN, EXIT, HDR, Kind, MAX_CGROUP_PATH, SOCK, TASK, TUPLE, decodeBatch } from '../src/index';
import { type RecordRun, recordsIn } from '../src/service/runs';
import { RecordStamper } from '../src/service/stamper';

const host = { id: '4c4c4544004e3510804bb4c04f4a3332', hostname: 'web-17' };
const task = {
  pid: 4242,
  tid: 4243,
  ppid: 1,
  uid: 1000,
  euid: 0,
  auid: 4294967295,
  cap_inheritable: 0,
  cap_permitted: 0x1ffffffffff,
  cap_effective: 0,
  comm: 'curl',
  cgroup_id: 77,
  cgroup_path: 'docker-abc.scope',
  start_time_us: 123456789,
  ktime_us: 987654321,
};
const payloads: RawPayloadOf[] = [
  {
    kind: 'socket',
    value: {
      kind: 'ACCEPT',
      task,
      family: 'INET6',
      saddr: Buffer.alloc(16, 1),
      daddr: Buffer.alloc(16, 2),
      sport: 443,
      dport: 50000,
      cookie: 2 ** 40,
      ...NO_SOCKET_FACTS,
    },
  },
  {
    kind: 'exec',
    value: { task, snapshot: false, binary_path: '/usr/bin/curl', args: ['-x', 'a'.repeat(70_000)], args_truncated: true, secureexec: ['SETUID'] },
  },
  { kind: 'exit', value: { pid: 1, tid: 1, start_time_us: 5, exit_code: 256 } },
  { kind: 'status', value: { seen: 1, lost_kernel: 2, spooled: 3, dropped: 4, spool_bytes: 5 } },
];

test('the stamper writes exactly what the codec writes, seq counting from 0', () => {
  const stamper = new RecordStamper(host);
  const codec = rawRecordCodec();
  payloads.forEach((payload, seq) => {
    const time_us = 1_795_890_000_000_000 + seq;
    const fast = stamper.stamp(payload, time_us);
    const reference = codec.encode({ host_id: host.id, hostname: host.hostname, run_id: stamper.runId, seq, time_us, payload: wrapPayload(payload) });
    assert.ok(fast.equals(reference), `payload ${payload.kind}`);
    assert.equal(codec.decode(fast).seq, seq);
  });
  assert.equal(stamper.stamped, payloads.length);
});

/** A seeded generator, so a failure replays. */
function random(seed: number) {
  const rand = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  // small, around the 32-bit and 7-bit boundaries, and up to 2^52
  const num = (max: number) =>
    [0, 1, 63, 64, 127, 128, 0x3fffffff, 0x40000000, 0xffffffff, 2 ** 52 - 1][Math.floor(rand() * 10)]! % (max + 1) || Math.floor(rand() * max);
  return { rand, num };
}

function u64At(b: Buffer, at: number, v: number): void {
  b.writeBigUInt64LE(BigInt(v), at);
}

/** One socket record in the kernel's layout, fields at random (the kernel's strings: ASCII, UTF-8, invalid UTF-8). */
function socketRecord(r: ReturnType<typeof random>): Buffer {
  const { rand, num } = r;
  const b = Buffer.alloc(SOCK.size);
  u64At(b, HDR.ts_ns, num(2 ** 52 - 1));
  b.writeUInt16LE([Kind.ESTABLISH, Kind.ACCEPT, Kind.CLOSE, Kind.LISTEN][Math.floor(rand() * 4)]!, HDR.kind);
  b.writeUInt16LE(SOCK.size, HDR.recsize);
  const t = SOCK.task;
  u64At(b, t + TASK.start_time_ns, num(2 ** 52 - 1));
  u64At(b, t + TASK.cgroup_id, num(2 ** 52 - 1));
  for (const f of [TASK.cap_inheritable, TASK.cap_permitted, TASK.cap_effective]) u64At(b, t + f, num(2 ** 52 - 1));
  for (const f of [TASK.pid, TASK.tid, TASK.ppid]) b.writeUInt32LE(num(2 ** 31 - 1), t + f); // Avro ints: pid_max is 2^22
  for (const f of [TASK.uid, TASK.euid, TASK.auid]) b.writeUInt32LE(num(0xffffffff), t + f);
  const text = (max: number) =>
    [Buffer.from(''), Buffer.from('curl'), Buffer.from('é€😀'), Buffer.from([0x61, 0xff, 0xc3]), Buffer.alloc(Math.floor(rand() * max), 'x')][
      Math.floor(rand() * 5)
    ]!;
  text(COMM_LEN - 1).copy(b, t + TASK.comm);
  text(MAX_CGROUP_PATH - 1).copy(b, t + TASK.cgroup_path);
  const tuple = SOCK.tuple;
  b.writeUInt16LE(rand() < 0.5 ? AF_INET : AF_INET6, tuple + TUPLE.family);
  for (let i = 0; i < 32; i++) b[tuple + TUPLE.saddr + i] = num(255);
  b.writeUInt16LE(num(65535), tuple + TUPLE.sport);
  b.writeUInt16LE(num(65535), tuple + TUPLE.dport);
  b[tuple + TUPLE.flags] = num(7);
  b[tuple + TUPLE.state] = num(12);
  u64At(b, SOCK.cookie, num(2 ** 52 - 1));
  u64At(b, SOCK.open_ns, rand() < 0.3 ? 0 : num(2 ** 52 - 1));
  u64At(b, SOCK.bytes_acked, num(2 ** 52 - 1));
  u64At(b, SOCK.bytes_received, num(2 ** 52 - 1));
  b.writeUInt32LE(num(0xffffffff), SOCK.netns);
  b.writeUInt16LE(num(0xffff), SOCK.err);
  return b;
}

function exitRecord(pid: number): Buffer {
  const b = Buffer.alloc(EXIT.size);
  b.writeUInt16LE(Kind.EXIT, HDR.kind);
  b.writeUInt16LE(EXIT.size, HDR.recsize);
  b.writeUInt32LE(pid, EXIT.pid);
  return b;
}

test('kernel batches are written exactly as the decoder + avsc write them, in order, in runs', () => {
  const stamper = new RecordStamper(host);
  const codec = rawRecordCodec();
  const r = random(42);
  const decode = { clockOffsetNs: 1_795_890_000_000_000_000, startedKtimeUs: 777 };
  let seq = 0;
  for (let n = 0; n < 50; n++) {
    // socket records, now and then another kind between them
    const records = Array.from({ length: 100 }, (_, i) => (r.rand() < 0.03 ? exitRecord(i) : socketRecord(r)));
    const batch = Buffer.concat(records);
    const runs: RecordRun[] = [];
    const added = stamper.stampKernelBatch(batch, decode, runs);
    const reference = decodeBatch(batch, decode).map((p) =>
      codec.encode({ host_id: host.id, hostname: host.hostname, run_id: stamper.runId, seq: seq++, time_us: p.timeUs, payload: wrapPayload(p.payload) }),
    );
    assert.equal(added, reference.length);
    assert.equal(recordsIn(runs), reference.length);
    const fast = Buffer.concat(runs.map((run) => run.bytes));
    assert.ok(fast.equals(Buffer.concat(reference)), `batch ${n}`);
    assert.ok(runs.length < reference.length / 4, `${runs.length} runs for ${reference.length} records`);
    stamper.release(runs);
  }
  assert.equal(stamper.stamped, seq);
});

test('runs not yet released keep their bytes while later batches reuse the released slabs', () => {
  const stamper = new RecordStamper(host);
  const r = random(7);
  const batch = Buffer.concat(Array.from({ length: 2000 }, () => socketRecord(r)));
  const decode = { clockOffsetNs: 0 };
  const kept: Array<{ run: RecordRun; copy: Buffer }> = [];
  for (let n = 0; n < 40; n++) {
    const runs: RecordRun[] = [];
    stamper.stampKernelBatch(batch, decode, runs);
    // every third batch waits (Kafka slow); the others are sent
    if (n % 3 === 0) kept.push(...runs.map((run) => ({ run, copy: Buffer.from(run.bytes) })));
    else stamper.release(runs);
  }
  for (const { run, copy } of kept) assert.ok(run.bytes.equals(copy));
});
