import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { NetworkEvent, ProcessFilter, RawRecord } from '@netmon/common';
import { ContractError, Enricher, type EnricherOptions, formatSecureExec } from '../src/lib';
import { HOST, T0, exec, exit, socket, status, task } from './helpers';

const CID = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

function harness(options: Partial<EnricherOptions> = {}) {
  const events: NetworkEvent[] = [];
  const statuses: RawRecord[] = [];
  const e = new Enricher({ processWaitMs: 0, filter: null, ...options }, { event: (ev) => events.push(ev), status: (r) => statuses.push(r) });
  let pos = 0;
  const push = (r: RawRecord, now = 0) => e.push(r, pos++, now);
  return { e, events, statuses, push };
}

test('join: creds from the socket record, program from the process record, container from the cgroup', () => {
  const { events, push } = harness();
  const start = 123_456_789_012;
  push(exec(task(2538344, start, { uid: 1000, euid: 1000 }), '/usr/bin/curl', ['-6', 'google.com'], ['SETUID', 'FILE_CAPS']));
  // Creds changed after exec (setuid helper dropped privileges, caps raised): the socket's own count.
  const t = task(2538344, start, {
    tid: 2538345,
    ppid: 9425,
    uid: 1001,
    euid: 0,
    auid: 1000,
    cap_inheritable: 1,
    cap_permitted: 0x1ffffffffff,
    cap_effective: 0x3000,
    comm: 'curl-worker',
    cgroup_path: `/system.slice/docker-${CID}.scope`,
  });
  push(
    socket(
      t,
      'ESTABLISH',
      { time_us: T0, seq: 77 },
      {
        family: 'INET6',
        saddr: Buffer.from('fe80000000000000d49736b616bfd97b', 'hex'),
        daddr: Buffer.from('2a00145040100c08000000000000008b', 'hex'),
        sport: 33340,
        dport: 80,
        cookie: 4109,
        netns: 4026531840,
      },
    ),
  );
  assert.equal(events.length, 1);
  const ev = events[0]!;
  assert.deepEqual(ev, {
    type: 'NetworkEvent',
    process: {
      pid: 2538344,
      tid: 2538345,
      ppid: 9425,
      uid: 1001,
      euid: 0,
      auid: 1000,
      cap_inheritable: 1,
      cap_permitted: 0x1ffffffffff,
      cap_effective: 0x3000,
      secureexec: 'SETUID | FILE_CAPS',
      filename: 'curl',
      binary_path: '/usr/bin/curl',
      args: '-6 google.com',
      container_id: CID,
    },
    network_event: {
      type: 'TcpConnectionEstablish',
      saddr: 'fe80::d497:36b6:16bf:d97b',
      daddr: '2a00:1450:4010:c08::8b',
      sport: 33340,
      dport: 80,
      cookie: 4109,
    },
    timestamp: '2025-05-31T10:05:51.282Z',
    host: { hostname: HOST.hostname, id: HOST.id },
    source: { run_id: '0b6f2c1e-6a53-4c6e-9d36-1d0f0f5a7c11', seq: 77 },
    connection: { outcome: '', duration_ms: 0, bytes_sent: 0, bytes_received: 0, remote_name: '', netns: 4026531840 },
    process_key: `${HOST.id}:2538344:${start}`,
  });
  // Field order is the spec's.
  assert.deepEqual(Object.keys(ev), ['type', 'process', 'network_event', 'timestamp', 'host', 'source', 'connection', 'process_key']);
  assert.deepEqual(Object.keys(ev.process), [
    'pid',
    'tid',
    'ppid',
    'uid',
    'euid',
    'auid',
    'cap_inheritable',
    'cap_permitted',
    'cap_effective',
    'secureexec',
    'filename',
    'binary_path',
    'args',
    'container_id',
  ]);
});

test('join: event types, IPv4 and v4-mapped addresses', () => {
  const { events, push } = harness();
  const t = task(10, 1_000_000);
  push(exec(t, '/usr/sbin/nginx', ['-g', 'daemon off;']));
  push(socket(t, 'ACCEPT'));
  push(
    socket(
      t,
      'CLOSE',
      {},
      { family: 'INET6', saddr: Buffer.from('00000000000000000000ffff0a000001', 'hex'), daddr: Buffer.from('00000000000000000000ffffc0a80001', 'hex') },
    ),
  );
  assert.deepEqual(
    events.map((e) => [e.network_event.type, e.network_event.saddr, e.network_event.daddr, e.process.args]),
    [
      ['TcpConnectionAccept', '10.0.0.1', '93.184.216.34', '-g daemon off;'],
      ['TcpConnectionClose', '10.0.0.1', '192.168.0.1', '-g daemon off;'],
    ],
  );
});

test('secureexec: the spec order whatever the record order', () => {
  assert.equal(formatSecureExec([]), '');
  assert.equal(formatSecureExec(['FILELESS_EXEC']), 'FILELESS_EXEC');
  assert.equal(formatSecureExec(['FILELESS_EXEC', 'SETGID', 'SETUID', 'FILE_CAPS']), 'SETUID | SETGID | FILE_CAPS | FILELESS_EXEC');
});

test('snapshot records (start in ticks) join kernel records (start in µs)', () => {
  const { events, push } = harness();
  // /proc knows 1234567 ticks; the kernel knows the µs.
  push(exec(task(77, 1234567 * 10_000), '/usr/sbin/sshd', ['-D'], [], true));
  push(socket(task(77, 1234567 * 10_000 + 9_999)));
  assert.equal(events[0]!.process.binary_path, '/usr/sbin/sshd');
});

test('pid reuse: same pid, different start time → the right program', () => {
  const { events, push, e } = harness();
  const old = task(4242, 1_000_000_000);
  const reused = task(4242, 2_000_000_000);
  push(exec(old, '/usr/bin/old-daemon'));
  push(socket(old, 'ESTABLISH'));
  push(exit(4242, 1_000_000_000));
  push(exec(reused, '/usr/bin/curl', ['example.com']));
  push(socket(reused, 'ESTABLISH'));
  // A late close of the old process (within the exit grace) still names it.
  push(socket(old, 'CLOSE'));
  assert.deepEqual(
    events.map((ev) => ev.process.binary_path),
    ['/usr/bin/old-daemon', '/usr/bin/curl', '/usr/bin/old-daemon'],
  );
  assert.equal(e.counters.unknown, 0);
});

test('exec in a running process: the program changes, records before keep the old one', () => {
  const { events, push } = harness();
  const t = task(500, 3_000_000);
  push(exec(t, '/bin/sh', ['-c', 'exec curl x']));
  push(socket(t));
  push(exec({ ...t, ktime_us: t.ktime_us + 10 }, '/usr/bin/curl', ['x']));
  push(socket(t));
  assert.deepEqual(
    events.map((ev) => [ev.process.filename, ev.process.args]),
    [
      ['sh', '-c exec curl x'],
      ['curl', 'x'],
    ],
  );
});

test('unknown process without waiting: filename from comm, counted', () => {
  const { events, push, e } = harness({ processWaitMs: 0 });
  push(socket(task(9, 1, { comm: 'mystery' })));
  assert.equal(events[0]!.process.filename, 'mystery');
  assert.equal(events[0]!.process.binary_path, '');
  assert.equal(events[0]!.process.args, '');
  assert.equal(e.counters.unknown, 1);
});

test('late process record: the socket record waits for it, then goes out joined', () => {
  const { events, push, e } = harness({ processWaitMs: 2000 });
  const t = task(31, 5_000_000, { comm: 'java' });
  push(socket(t), 100);
  assert.equal(events.length, 0, 'held while waiting');
  assert.equal(e.oldestHeld(), 0);
  e.expire(1000);
  assert.equal(events.length, 0, 'still within the wait');
  push(exec(t, '/usr/lib/jvm/bin/java', ['-jar', 'app.jar'], [], true), 1500);
  assert.equal(events.length, 1);
  assert.equal(events[0]!.process.binary_path, '/usr/lib/jvm/bin/java');
  assert.equal(e.counters.waited, 1);
  assert.equal(e.counters.waitResolved, 1);
  assert.equal(e.counters.unknown, 0);
  assert.equal(e.oldestHeld(), undefined);
  assert.deepEqual(e.takeDone(), [[HOST.id, 1]]);
});

test('late process record that never comes: the record goes out unknown after the wait', () => {
  const { events, push, e } = harness({ processWaitMs: 2000 });
  const t = task(32, 6_000_000, { comm: 'ghost' });
  push(socket(t), 0);
  assert.equal(e.nextDeadline(), 2000);
  e.expire(1999);
  assert.equal(events.length, 0);
  e.expire(2000);
  assert.equal(events.length, 1);
  assert.equal(events[0]!.process.filename, 'ghost');
  assert.equal(e.counters.unknown, 1);
  // The process is now known as unknown: its next record does not wait.
  push(socket(t), 2100);
  assert.equal(events.length, 2);
  assert.equal(e.counters.waited, 1);
  // And when its record finally comes, it is used.
  push(exec(t, '/opt/ghost/bin/ghost'), 2200);
  push(socket(t), 2300);
  assert.equal(events[2]!.process.binary_path, '/opt/ghost/bin/ghost');
});

test('late process record: an exec later than the socket event is another program', () => {
  const { events, push, e } = harness({ processWaitMs: 2000 });
  const t = task(33, 7_000_000, { comm: 'bash', ktime_us: 100 });
  push(socket(t), 0);
  push(exec({ ...t, ktime_us: 200 }, '/usr/bin/wget'), 10);
  assert.equal(events.length, 1);
  assert.equal(events[0]!.process.filename, 'bash');
  assert.equal(e.counters.unknown, 1);
});

test('order per host: a waiting record holds back its host only, its status records too', () => {
  const { events, statuses, push, e } = harness({ processWaitMs: 1000 });
  const other = { host_id: 'other-host', hostname: 'db-1' };
  const known = task(1, 100);
  const late = task(2, 200);
  push(exec(known, '/bin/known'), 0); // 0
  push(exec(known, '/bin/known-on-other', [], [], false, other), 0); // 1
  push(socket(late, 'ESTABLISH', { seq: 1000 }), 0); // 2: waits
  push(socket(known, 'ESTABLISH', { seq: 1001 }), 0); // 3: held behind it
  push(socket(known, 'ESTABLISH', { seq: 2000, ...other }), 0); // 4: other host flows
  assert.deepEqual(
    events.map((ev) => ev.source.seq),
    [2000],
  );
  assert.equal(e.oldestHeld(), 2);
  assert.equal(e.heldCount, 2);
  push(status({ seq: 1002 }), 0); // 5: a status record, queued too
  assert.equal(statuses.length, 0, 'the status waits behind the held records of its host');
  assert.equal(e.statuses()[0]!.status.seen, 10, 'the latest status is known at once');
  assert.deepEqual(
    new Map(e.takeDone()),
    new Map([
      [HOST.id, 0],
      ['other-host', 4],
    ]),
  );
  push(exec(late, '/bin/late', [], [], false, { seq: 1003 }), 0); // 6
  assert.deepEqual(
    events.map((ev) => [ev.source.seq, ev.process.binary_path]),
    [
      [2000, '/bin/known-on-other'],
      [1000, '/bin/late'],
      [1001, '/bin/known'],
    ],
  );
  assert.deepEqual(
    statuses.map((r) => r.seq),
    [1002],
    'then the status, after the events before it',
  );
  assert.equal(e.oldestHeld(), undefined);
  assert.deepEqual(e.takeDone(), [[HOST.id, 6]]);
});

test('filter applies to the enriched fields; filtered records count', () => {
  const f: ProcessFilter = { denyList: false, uid: [], euid: [], auid: [], binary: { name: ['curl'], path: [], prefix: [] } };
  const { events, push, e } = harness({ filter: f });
  const a = task(1, 100, { comm: 'not-curl' });
  const b = task(2, 200, { comm: 'curl' });
  push(exec(a, '/usr/bin/curl'));
  push(exec(b, '/usr/bin/wget'));
  push(socket(a));
  push(socket(b));
  assert.deepEqual(
    events.map((ev) => ev.process.pid),
    [1],
  );
  assert.equal(e.counters.filtered, 1);
  e.setFilter({ ...f, denyList: true });
  push(socket(a));
  push(socket(b));
  assert.deepEqual(
    events.map((ev) => ev.process.pid),
    [1, 2],
  );
});

test('a record a sensor sent twice (same run and sequence number) goes out once', () => {
  const { events, push, e } = harness();
  const t = task(4242, 1_000_000);
  push(exec(t, '/usr/bin/curl'));
  const first = socket(t, 'ESTABLISH');
  push(first);
  push(first);
  push({ ...first, run_id: 'a-new-run', seq: 0 });
  assert.equal(events.length, 2, 'the duplicate is dropped, a new run starts afresh');
  assert.equal(e.counters.duplicates, 1);
});

test('sensor status records are not events', () => {
  const { events, statuses, push, e } = harness();
  push(status());
  assert.equal(events.length, 0);
  assert.equal(statuses.length, 1);
  assert.equal(e.statuses()[0]!.status.seen, 10);
});

test('contract: wrong address length or empty host id is a ContractError, before any change', () => {
  const { push, e } = harness();
  assert.throws(() => push(socket(task(1, 1), 'ESTABLISH', {}, { family: 'INET6' })), ContractError);
  assert.throws(() => push(socket(task(1, 1), 'ESTABLISH', { host_id: '' })), ContractError);
  assert.equal(e.counters.records, 0);
  assert.equal(e.hostCount, 0);
});

test('bounded memory: exited processes leave after the grace period (host time)', () => {
  const { push, e } = harness({ exitGraceUs: 10_000_000 });
  const t = task(3, 300);
  push(exec(t, '/bin/x', [], [], false, { time_us: T0 }));
  push(exit(3, 300, { time_us: T0 + 1_000_000 }));
  push(status({ time_us: T0 + 10_000_000 }));
  assert.equal(e.table.size, 1, 'within the grace');
  push(status({ time_us: T0 + 11_000_001 }));
  assert.equal(e.table.size, 0);
  assert.equal(e.table.expired, 1);
});

test('bounded memory: at most maxEntries, exited first, then the least recently used', () => {
  const { push, e } = harness({ maxEntries: 3 });
  push(exec(task(1, 1), '/bin/a'));
  push(exec(task(2, 2), '/bin/b'));
  push(exec(task(3, 3), '/bin/c'));
  push(exit(2, 2));
  push(exec(task(4, 4), '/bin/d')); // evicts the exited 2
  assert.equal(e.table.size, 3);
  assert.equal(e.table.evicted, 1);
  assert.equal(e.table.host(HOST.id).lookup(2, 0), null);
  push(socket(task(1, 1))); // 1 is used: second chance
  push(exec(task(5, 5), '/bin/e')); // evicts 3 (oldest unused)
  assert.equal(e.table.evicted, 2);
  assert.ok(e.table.host(HOST.id).lookup(1, 0));
  assert.equal(e.table.host(HOST.id).lookup(3, 0), null);
});

test('bounded memory: bytes per entry', () => {
  // A full collection before and after (as the benchmarks do): the figure is what the table keeps.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const n = 100_000;
  const { push, e, events } = harness({ maxEntries: n });
  gc();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < n; i++) {
    const t = task(1000 + i, 1_000_000 + i * 10_000);
    push(exec(t, `/usr/lib/app/bin/worker-${i % 100}`, ['--config', `/etc/app/${i}.yaml`, '--verbose'], [], i % 3 === 0));
    // one event each: the entry keeps its process key
    push(socket(t));
    events.length = 0;
  }
  gc();
  const perEntry = (process.memoryUsage().heapUsed - before) / n;
  console.log(`process table: ${perEntry.toFixed(0)} bytes per entry`);
  assert.equal(e.table.size, n);
  assert.ok(perEntry < 600, `${perEntry} bytes per entry`);
});

test('dropHeld: the held records, read again, are not taken for a sensor resend', () => {
  const { e, events } = harness({ processWaitMs: 1000 });
  const known = task(300, 30_000_000);
  const late = task(301, 31_000_000, { comm: 'late' });
  e.push(exec(known, '/usr/bin/known'), 0, 0);
  const held = [socket(late, 'ESTABLISH'), socket(known, 'CLOSE')];
  e.push(held[0]!, 1, 0); // waits for its process
  e.push(held[1]!, 2, 0); // queued behind it
  assert.equal(e.heldCount, 2);
  e.dropHeld();
  assert.equal(e.heldCount, 0);
  // The same records from the committed offset, as after a rebalance.
  e.push(held[0]!, 1, 10);
  e.push(held[1]!, 2, 10);
  assert.equal(e.counters.duplicates, 0);
  e.expire(1010);
  assert.deepEqual(
    events.map((ev) => [ev.source.seq, ev.process.filename]),
    [
      [held[0]!.seq, 'late'],
      [held[1]!.seq, 'known'],
    ],
  );
});
