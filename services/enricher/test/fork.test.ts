// Fork without exec: a child runs its parent's program until it execs.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NetworkEvent, ProcessFilter, RawRecord } from '@netmon/common';
import { Enricher, type EnricherOptions, type TableChange } from '../src/lib';
import { HOST, exec, exit, fork, socket, task } from './helpers';

function harness(options: Partial<EnricherOptions> = {}) {
  const events: NetworkEvent[] = [];
  const e = new Enricher({ processWaitMs: 0, filter: null, ...options }, { event: (ev) => events.push(ev) });
  let pos = 0;
  const push = (r: RawRecord, now = 0) => e.push(r, pos++, now);
  return { e, events, push };
}

const MASTER_START = 1_000_000;
const WORKER_START = 9_000_000;
/** The nginx master (pid 100, root) and a worker it forks (pid 101, www-data). */
const master = task(100, MASTER_START, { uid: 0, euid: 0, auid: 4294967295, comm: 'nginx', ktime_us: 1_000_000 });
const worker = task(101, WORKER_START, { ppid: 100, uid: 33, euid: 33, auid: 4294967295, comm: 'nginx', ktime_us: 9_000_000 });
const masterExec = () => exec(master, '/usr/sbin/nginx', ['-g', 'daemon off;'], ['SETUID']);

test('fork: the child carries its parent program (filename, path, args, secureexec) with its own pid, tid, ppid and creds', () => {
  const { events, push, e } = harness();
  push(masterExec());
  push(fork(worker, 100, MASTER_START));
  // A thread of the worker, with capabilities dropped.
  push(socket({ ...worker, tid: 102, cap_effective: 0, ktime_us: 9_500_000 }, 'ACCEPT'));
  assert.equal(events.length, 1);
  assert.deepEqual(events[0]!.process, {
    pid: 101,
    tid: 102,
    ppid: 100,
    uid: 33,
    euid: 33,
    auid: 4294967295,
    cap_inheritable: 0,
    cap_permitted: 0,
    cap_effective: 0,
    secureexec: 'SETUID',
    filename: 'nginx',
    binary_path: '/usr/sbin/nginx',
    args: '-g daemon off;',
    container_id: '',
  });
  assert.equal(e.counters.fork, 1);
  assert.equal(e.counters.unknown, 0);
  // The parent's own entry is untouched.
  push(socket({ ...master, ktime_us: 9_600_000 }));
  assert.deepEqual([events[1]!.process.pid, events[1]!.process.uid, events[1]!.process.binary_path], [100, 0, '/usr/sbin/nginx']);
});

test('fork: a fork of a fork child (pre-fork worker pools) still carries the original program', () => {
  const { events, push } = harness();
  push(masterExec());
  push(fork(worker, 100, MASTER_START));
  const grandchild = task(205, 12_000_000, { ppid: 101, comm: 'nginx', ktime_us: 12_000_000 });
  push(fork(grandchild, 101, WORKER_START));
  push(socket({ ...grandchild, ktime_us: 12_000_001 }));
  assert.deepEqual([events[0]!.process.pid, events[0]!.process.ppid, events[0]!.process.binary_path], [205, 101, '/usr/sbin/nginx']);
});

test('fork: a waiting socket record of the child goes out on the fork record, before any expire()', () => {
  const { events, push, e } = harness({ processWaitMs: 2000 });
  push(masterExec(), 0);
  // The worker's connection comes before its fork record (and holds back a record of the master behind it).
  push(socket({ ...worker, ktime_us: 9_000_050 }), 10);
  push(socket({ ...master, ktime_us: 9_000_060 }, 'CLOSE'), 20);
  assert.equal(events.length, 0, 'held while waiting');
  assert.equal(e.nextDeadline(), 2010);
  push(fork(worker, 100, MASTER_START), 30); // no expire() call in this test
  assert.deepEqual(
    events.map((ev) => [ev.process.pid, ev.process.binary_path, ev.network_event.type]),
    [
      [101, '/usr/sbin/nginx', 'TcpConnectionEstablish'],
      [100, '/usr/sbin/nginx', 'TcpConnectionClose'],
    ],
  );
  assert.equal(e.counters.waited, 1);
  assert.equal(e.counters.waitResolved, 1);
  assert.equal(e.counters.unknown, 0);
  assert.equal(e.heldCount, 0);
  assert.equal(e.oldestHeld(), undefined);
  assert.equal(e.nextDeadline(), undefined);
  assert.deepEqual(e.takeDone(), [[HOST.id, 3]]);
});

test('fork: the kernel-time rule: a socket record older than the fork that resolves it is not given the program', () => {
  const { events, push, e } = harness({ processWaitMs: 2000 });
  push(masterExec(), 0);
  push(socket({ ...worker, ktime_us: 8_999_999, comm: 'odd' }), 0);
  push(fork(worker, 100, MASTER_START), 0); // ktime 9_000_000, later than the socket event
  assert.equal(events.length, 1);
  assert.equal(events[0]!.process.filename, 'odd');
  assert.equal(events[0]!.process.binary_path, '');
  assert.equal(e.counters.unknown, 1);
});

test('fork: an unknown parent gives the child a placeholder: its records go out at once, with its comm', () => {
  const { events, push, e } = harness({ processWaitMs: 2000, trackChanges: true });
  const orphan = task(300, 20_000_000, { ppid: 299, comm: 'gunicorn', ktime_us: 20_000_000 });
  push(socket({ ...orphan, ktime_us: 20_000_100 }), 0); // waits
  push(fork(orphan, 299, 15_000_000), 5); // parent 299 never seen (lost, or evicted)
  assert.equal(events.length, 1, 'released by the fork record, not by a timeout');
  assert.deepEqual([events[0]!.process.filename, events[0]!.process.binary_path, events[0]!.process.args], ['gunicorn', '', '']);
  assert.equal(e.counters.unknown, 1);
  assert.equal(e.counters.waitResolved, 0);
  // Its next records do not wait either.
  push(socket({ ...orphan, ktime_us: 20_000_200 }), 10);
  assert.equal(events.length, 2);
  assert.equal(e.counters.waited, 1);
  // A placeholder is not durable state.
  assert.deepEqual(e.table.takeChanges(), []);
  // The child's exec replaces it.
  push(exec({ ...orphan, ktime_us: 21_000_000 }, '/usr/bin/python3', ['app.py']), 20);
  push(socket({ ...orphan, ktime_us: 21_000_100 }), 30);
  assert.deepEqual([events[2]!.process.filename, events[2]!.process.args], ['python3', 'app.py']);
});

test('fork: an unknown parent leaves an entry the child has already (its snapshot) as it is', () => {
  const { events, push } = harness();
  const child = task(400, 30_000_000, { comm: 'postgres', ktime_us: 30_000_000 });
  push(exec(child, '/usr/lib/postgresql/16/bin/postgres', ['-D', '/var/lib/pg'], [], true));
  push(fork(child, 399, 25_000_000));
  push(socket({ ...child, ktime_us: 30_000_100 }));
  assert.equal(events[0]!.process.binary_path, '/usr/lib/postgresql/16/bin/postgres');
  assert.equal(events[0]!.process.args, '-D /var/lib/pg');
});

test('fork then exec: the exec replaces the parent program; records in between keep it', () => {
  const { events, push, e } = harness();
  push(masterExec());
  const child = task(500, 40_000_000, { ppid: 100, comm: 'nginx', ktime_us: 40_000_000 });
  push(fork(child, 100, MASTER_START));
  push(socket({ ...child, ktime_us: 40_000_010 }));
  push(exec({ ...child, comm: 'logrotate', ktime_us: 40_000_020 }, '/usr/sbin/logrotate', ['/etc/logrotate.conf']));
  push(socket({ ...child, comm: 'logrotate', ktime_us: 40_000_030 }));
  assert.deepEqual(
    events.map((ev) => [ev.process.filename, ev.process.binary_path, ev.process.args, ev.process.secureexec]),
    [
      ['nginx', '/usr/sbin/nginx', '-g daemon off;', 'SETUID'],
      ['logrotate', '/usr/sbin/logrotate', '/etc/logrotate.conf', ''],
    ],
  );
  // A duplicate (or late) fork record after the exec does not bring the old program back.
  push(fork(child, 100, MASTER_START));
  push(socket({ ...child, comm: 'logrotate', ktime_us: 40_000_040 }));
  assert.equal(events[2]!.process.binary_path, '/usr/sbin/logrotate');
  assert.equal(e.counters.fork, 2);
});

test('fork: the changelog keeps a fork entry: a restarted enricher still names the child', () => {
  const { push, e } = harness({ trackChanges: true });
  push(masterExec());
  e.table.takeChanges();
  push(fork(worker, 100, MASTER_START));
  const changes = e.table.takeChanges();
  assert.equal(changes.length, 1);
  assert.deepEqual(changes[0], {
    hostId: HOST.id,
    pid: 101,
    ticks: 900,
    state: { pid: 101, ticks: 900, binary_path: '/usr/sbin/nginx', args: '-g daemon off;', secureexec: 'SETUID', exec_ktime_us: 9_000_000, exit_us: -1 },
  });
  // Through the durable (JSON) form into a new enricher, without the parent.
  const durable = JSON.parse(JSON.stringify(changes)) as TableChange[];
  const restarted = harness({ processWaitMs: 2000, trackChanges: true });
  for (const c of durable) restarted.e.table.restore(c.hostId, c.state!);
  restarted.push(socket({ ...worker, ktime_us: 9_900_000 }), 0);
  assert.equal(restarted.events.length, 1, 'known at once: no wait');
  assert.deepEqual(
    [
      restarted.events[0]!.process.pid,
      restarted.events[0]!.process.filename,
      restarted.events[0]!.process.binary_path,
      restarted.events[0]!.process.secureexec,
    ],
    [101, 'nginx', '/usr/sbin/nginx', 'SETUID'],
  );
  // Its exit is tracked too.
  push(exit(101, WORKER_START));
  assert.equal(e.table.takeChanges()[0]!.state!.exit_us >= 0, true);
});

test('fork: process_filter matches a fork child by its parent binary (name, path, prefix)', () => {
  const rules: Array<ProcessFilter['binary']> = [
    { name: ['nginx'], path: [], prefix: [] },
    { name: [], path: ['/usr/sbin/nginx'], prefix: [] },
    { name: [], path: [], prefix: ['/usr/sbin/'] },
  ];
  for (const binary of rules) {
    const { events, push, e } = harness({ filter: { denyList: false, uid: [], euid: [], auid: [], binary } });
    push(masterExec());
    push(fork(worker, 100, MASTER_START));
    push(socket({ ...worker, ktime_us: 9_000_100 }));
    // Same comm, another binary: not a match.
    const impostor = task(600, 50_000_000, { comm: 'nginx' });
    push(exec(impostor, '/tmp/x/evil'));
    push(socket(impostor));
    assert.deepEqual(
      events.map((ev) => ev.process.pid),
      [101],
      JSON.stringify(binary),
    );
    assert.equal(e.counters.filtered, 1);
  }
  // Deny list: the child is dropped with its parent.
  const { events, push } = harness({ filter: { denyList: true, uid: [], euid: [], auid: [], binary: { name: [], path: [], prefix: ['/usr/sbin/'] } } });
  push(masterExec());
  push(fork(worker, 100, MASTER_START));
  push(socket({ ...worker, ktime_us: 9_000_100 }));
  assert.equal(events.length, 0);
});
