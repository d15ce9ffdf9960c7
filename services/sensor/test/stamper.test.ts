import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NO_SOCKET_FACTS, type RawPayloadOf, rawRecordCodec, wrapPayload } from '@netmon/common';
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

test('the hand-written socket writer matches avsc byte for byte over 5000 random records', () => {
  const stamper = new RecordStamper(host);
  const codec = rawRecordCodec();
  let seed = 42;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  // small, around the 32-bit and 7-bit boundaries, and up to 2^52
  const num = (max: number) =>
    [0, 1, 63, 64, 127, 128, 0x3fffffff, 0x40000000, 0xffffffff, 2 ** 52 - 1][Math.floor(rand() * 10)]! % (max + 1) || Math.floor(rand() * max);
  const text = () => ['', 'curl', 'é€😀', 'x'.repeat(Math.floor(rand() * 300))][Math.floor(rand() * 4)]!;
  for (let seq = 0; seq < 5000; seq++) {
    const v6 = rand() < 0.5;
    const payload: RawPayloadOf = {
      kind: 'socket',
      value: {
        kind: (['ESTABLISH', 'ACCEPT', 'CLOSE', 'LISTEN'] as const)[seq % 4]!,
        task: {
          pid: num(2 ** 31 - 1),
          tid: num(2 ** 31 - 1),
          ppid: num(2 ** 31 - 1),
          uid: num(0xffffffff),
          euid: num(0xffffffff),
          auid: num(0xffffffff),
          cap_inheritable: num(2 ** 52 - 1),
          cap_permitted: num(2 ** 52 - 1),
          cap_effective: num(2 ** 52 - 1),
          comm: text(),
          cgroup_id: num(2 ** 52 - 1),
          cgroup_path: text(),
          start_time_us: num(2 ** 52 - 1),
          ktime_us: num(2 ** 52 - 1),
        },
        family: v6 ? 'INET6' : 'INET',
        saddr: Buffer.alloc(v6 ? 16 : 4, seq & 0xff),
        daddr: Buffer.alloc(v6 ? 16 : 4, 7),
        sport: num(65535),
        dport: num(65535),
        cookie: num(2 ** 52 - 1),
        netns: num(0xffffffff),
        opened_ktime_us: num(2 ** 52 - 1),
        handshake: rand() < 0.5,
        error: num(0xffff),
        state: num(12),
        bytes_acked: num(2 ** 52 - 1),
        bytes_received: num(2 ** 52 - 1),
      },
    };
    const time_us = num(2 ** 52 - 1);
    const fast = stamper.stamp(payload, time_us);
    const reference = codec.encode({ host_id: host.id, hostname: host.hostname, run_id: stamper.runId, seq, time_us, payload: wrapPayload(payload) });
    assert.ok(fast.equals(reference), `record ${seq}: ${JSON.stringify(payload.value)}`);
  }
});
