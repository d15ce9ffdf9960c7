// Single-host mode's feed (probes' payloads → enricher → printed events),
// without the kernel: no single record stops it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NO_SOCKET_FACTS, type NetworkEvent, type RawPayloadOf, type RawRecord, type TaskFacts } from '@netmon/common';
import type { TimedPayload } from '@netmon/sensor';
import { EmbeddedFeed } from '../src/run/embedded';

const HOST = { id: '4c4c4544004e3510804bb4c04f4a3332', hostname: 'web-17' };
const T0 = 1748685951282000;

function task(pid: number, startUs: number, over: Partial<TaskFacts> = {}): TaskFacts {
  return {
    pid,
    tid: pid,
    ppid: 1,
    uid: 1000,
    euid: 1000,
    auid: 1000,
    cap_inheritable: 0,
    cap_permitted: 0,
    cap_effective: 0,
    comm: 'curl',
    cgroup_id: 1,
    cgroup_path: '/user.slice',
    start_time_us: startUs,
    ktime_us: startUs + 1000,
    ...over,
  };
}

const at = (payload: RawPayloadOf, i = 0): TimedPayload => ({ payload, timeUs: T0 + i });
const execOf = (t: TaskFacts, path: string, args: string[] = []): TimedPayload =>
  at({ kind: 'exec', value: { task: t, snapshot: false, binary_path: path, args, args_truncated: false, secureexec: [] } });
const socketOf = (t: TaskFacts, family: 'INET' | 'INET6', saddr: number[], daddr: number[], dport = 443): TimedPayload =>
  at({
    kind: 'socket',
    value: { kind: 'ESTABLISH', task: t, family, saddr: Buffer.from(saddr), daddr: Buffer.from(daddr), sport: 40000, dport, cookie: 1, ...NO_SOCKET_FACTS },
  });

function feed(print?: (ev: NetworkEvent) => void) {
  const printed: NetworkEvent[] = [];
  const firsts: Array<{ reason: string; record: RawRecord | undefined }> = [];
  const f = new EmbeddedFeed({ processWaitMs: 0, filter: null }, print ?? ((ev) => printed.push(ev)), HOST, 'run-1', (reason, record) =>
    firsts.push({ reason, record }),
  );
  return { f, printed, firsts };
}

test('single-host: a record that breaks the contract is skipped, the next one still prints', () => {
  const { f, printed, firsts } = feed();
  const t = task(42, 5_000_000);
  f.push([
    execOf(t, '/usr/bin/curl', ['example.com']),
    // The reported failure: INET6 with 4-byte addresses.
    socketOf(t, 'INET6', [10, 0, 0, 1], [93, 184, 216, 34]),
    socketOf(t, 'INET', [10, 0, 0, 1], [93, 184, 216, 34], 80),
  ]);
  assert.equal(printed.length, 1);
  assert.deepEqual([printed[0]!.process.binary_path, printed[0]!.network_event.daddr, printed[0]!.network_event.dport], ['/usr/bin/curl', '93.184.216.34', 80]);
  assert.equal(f.skipped.total, 1);
  assert.equal(firsts.length, 1);
  assert.equal(firsts[0]!.reason, 'ContractError: INET6 addresses of 4 and 4 bytes, expected 16');
  assert.equal(firsts[0]!.record?.seq, 1);

  // A flood of the same reason: counted, not reported again.
  for (let i = 0; i < 1000; i++) f.push([socketOf(t, 'INET6', [10, 0, 0, 1], [10, 0, 0, 2])]);
  f.push([socketOf(t, 'INET', [10, 0, 0, 1], [10, 0, 0, 3], 22)]);
  assert.equal(printed.length, 2);
  assert.equal(printed[1]!.network_event.daddr, '10.0.0.3');
  assert.equal(printed[1]!.source.seq, 1003, 'every record has its own sequence number, skipped ones included');
  assert.equal(f.skipped.total, 1001);
  assert.equal(firsts.length, 1);
  // Another reason is reported once.
  f.push([socketOf(t, 'INET', [10, 0, 0, 1], [10, 0, 0, 3], 70000)]);
  assert.equal(firsts.length, 2);
  assert.match(firsts[1]!.reason, /port out of range/);

  const summary = f.summary();
  assert.match(summary, /^netmon run: 1002 records skipped/);
  assert.match(summary, /1001 × ContractError: INET6 addresses of 4 and 4 bytes, expected 16\n/);
  assert.match(summary, /1 × ContractError: port out of range \(40000, 70000\)\n/);
});

test('single-host: nothing skipped, nothing printed on exit', () => {
  const { f } = feed();
  f.push([]);
  assert.equal(f.summary(), '');
});

test('single-host: a fork child prints with its parent program; an exception while printing skips only that record', () => {
  let calls = 0;
  const printed: NetworkEvent[] = [];
  const { f, firsts } = feed((ev) => {
    if (calls++ === 0) throw new Error('EPIPE-like failure');
    printed.push(ev);
  });
  const master = task(100, 1_000_000, { comm: 'nginx', uid: 0, euid: 0 });
  const worker = task(101, 2_000_000, { comm: 'nginx', ppid: 100, uid: 33, euid: 33 });
  f.push([
    execOf(master, '/usr/sbin/nginx', ['-g', 'daemon off;']),
    at({ kind: 'fork', value: { task: worker, parent_pid: 100, parent_start_time_us: 1_000_000 } }),
    socketOf(worker, 'INET', [10, 0, 0, 1], [10, 0, 0, 9]),
    socketOf(worker, 'INET', [10, 0, 0, 1], [10, 0, 0, 9], 8080),
  ]);
  assert.equal(f.skipped.total, 1);
  assert.match(firsts[0]!.reason, /EPIPE-like failure/);
  assert.equal(printed.length, 1);
  assert.deepEqual(
    [printed[0]!.process.pid, printed[0]!.process.uid, printed[0]!.process.filename, printed[0]!.process.binary_path, printed[0]!.process.args],
    [101, 33, 'nginx', '/usr/sbin/nginx', '-g daemon off;'],
  );
  assert.equal(f.enricher.counters.fork, 1);
  f.expire(Number.POSITIVE_INFINITY);
});
