import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type RawPayloadOf, rawRecordCodec, wrapPayload } from '@netmon/common';
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
    value: { kind: 'ACCEPT', task, family: 'INET6', saddr: Buffer.alloc(16, 1), daddr: Buffer.alloc(16, 2), sport: 443, dport: 50000, cookie: 2 ** 40 },
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
