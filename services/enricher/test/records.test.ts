// Args truncation, the record contract (what push refuses), IPv4-mapped
// addresses, and records whose enrichment fails: none stops the stream.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NetworkEvent, RawRecord } from '@netmon/common';
import { ContractError, EnrichError, Enricher, type EnricherOptions, RejectTally, formatArgs, reasonOf } from '../src/lib';
import { exec, record, socket, task } from './helpers';

function harness(options: Partial<EnricherOptions> = {}) {
  const events: NetworkEvent[] = [];
  const rejected: Array<{ record: RawRecord; position: number; error: EnrichError }> = [];
  const e = new Enricher(
    { processWaitMs: 0, filter: null, ...options },
    { event: (ev) => events.push(ev), rejected: (r, position, error) => rejected.push({ record: r, position, error }) },
  );
  let pos = 0;
  const push = (r: RawRecord, now = 0) => e.push(r, pos++, now);
  return { e, events, rejected, push };
}

function truncatedExec(t: ReturnType<typeof task>, args: string[], snapshot = false): RawRecord {
  const r = exec(t, '/usr/bin/java', args, [], snapshot);
  (r.payload as { 'netmon.raw.ProcessExec': { args_truncated: boolean } })['netmon.raw.ProcessExec'].args_truncated = true;
  return r;
}

test('args: joined by single spaces; cut args end with "…" (U+2026)', () => {
  assert.equal(formatArgs(['-jar', 'app.jar'], false), '-jar app.jar');
  assert.equal(formatArgs(['-cp', 'a.jar:b.j'], true), '-cp a.jar:b.j\u2026');
  assert.equal(formatArgs([], true), '\u2026');
  assert.equal(Buffer.byteLength('\u2026'), 3);

  const { events, push } = harness();
  const kernel = task(700, 70_000_000);
  const snap = task(701, 71_000_000);
  const whole = task(702, 72_000_000);
  push(truncatedExec(kernel, ['-cp', 'lib/a.jar:lib/b.j']));
  push(truncatedExec(snap, ['-Xmx4g', '-Dx=éé'], true));
  push(exec(whole, '/usr/bin/java', ['-version']));
  push(socket(kernel));
  push(socket(snap));
  push(socket(whole));
  assert.deepEqual(
    events.map((ev) => ev.process.args),
    ['-cp lib/a.jar:lib/b.j…', '-Xmx4g -Dx=éé…', '-version'],
  );
});

test('args: the changelog form keeps the "…" marker', () => {
  const { e, push } = harness({ trackChanges: true });
  const t = task(710, 73_000_000);
  push(truncatedExec(t, ['--very-long']));
  const [change] = e.table.takeChanges();
  assert.equal(change!.state!.args, '--very-long…');
  const restarted = harness({ processWaitMs: 1000 });
  restarted.e.table.restore(change!.hostId, JSON.parse(JSON.stringify(change!.state)));
  restarted.push(socket(t));
  assert.equal(restarted.events[0]!.process.args, '--very-long…');
});

test('addresses: a 16-byte IPv4-mapped INET6 address prints as IPv4; IPv4 (mapped or not) in 4 bytes as INET', () => {
  const { events, push } = harness();
  const t = task(720, 74_000_000);
  push(exec(t, '/usr/bin/node'));
  push(
    socket(
      t,
      'ACCEPT',
      {},
      { family: 'INET6', saddr: Buffer.from('00000000000000000000ffffac110002', 'hex'), daddr: Buffer.from('00000000000000000000ffff5db8d822', 'hex') },
    ),
  );
  push(socket(t, 'ESTABLISH', {}, { family: 'INET', saddr: Buffer.from([172, 17, 0, 2]), daddr: Buffer.from([93, 184, 216, 34]) }));
  // Not mapped: stays IPv6 (::ffff:0:a.b.c.d and ::a.b.c.d are other things).
  push(
    socket(
      t,
      'CLOSE',
      {},
      { family: 'INET6', saddr: Buffer.from('0000000000000000ffff0000ac110002', 'hex'), daddr: Buffer.from('000000000000000000000000ac110002', 'hex') },
    ),
  );
  assert.deepEqual(
    events.map((ev) => [ev.network_event.saddr, ev.network_event.daddr]),
    [
      ['172.17.0.2', '93.184.216.34'],
      ['172.17.0.2', '93.184.216.34'],
      ['::ffff:0:ac11:2', '::ac11:2'],
    ],
  );
});

test('contract: strict address lengths (4 for INET, 16 for INET6), counted, before any change', () => {
  const { e, push } = harness();
  const t = task(730, 75_000_000);
  // The reported failure: IPv4-mapped addresses cut to 4 bytes but left INET6.
  assert.throws(
    () => push(socket(t, 'ESTABLISH', {}, { family: 'INET6', saddr: Buffer.from([10, 0, 0, 1]), daddr: Buffer.from([10, 0, 0, 2]) })),
    (err: unknown) => err instanceof ContractError && err.message === 'INET6 addresses of 4 and 4 bytes, expected 16',
  );
  assert.throws(
    () => push(socket(t, 'ESTABLISH', {}, { family: 'INET', saddr: Buffer.alloc(16), daddr: Buffer.alloc(16) })),
    /INET addresses of 16 and 16 bytes, expected 4/,
  );
  assert.equal(e.counters.rejected, 2);
  assert.equal(e.counters.records, 0);
  assert.equal(e.hostCount, 0);
});

test('contract: a record malformed in any way is a ContractError, never another error', () => {
  const { e, events, push } = harness();
  const t = task(740, 76_000_000);
  const good = socket(t);
  const sock = good.payload['netmon.raw.SocketEvent' as keyof typeof good.payload] as unknown as Record<string, unknown>;
  const bad: Array<[string, RawRecord]> = [
    ['no payload', { ...good, payload: null as unknown as RawRecord['payload'] }],
    ['unknown branch', { ...good, payload: { 'netmon.raw.Nope': {} } as unknown as RawRecord['payload'] }],
    ['no addresses', record({ 'netmon.raw.SocketEvent': { ...sock, saddr: undefined } } as unknown as RawRecord['payload'])],
    ['no task', record({ 'netmon.raw.SocketEvent': { ...sock, task: undefined } } as unknown as RawRecord['payload'])],
    ['port NaN', record({ 'netmon.raw.SocketEvent': { ...sock, sport: Number.NaN } } as unknown as RawRecord['payload'])],
    ['port 70000', record({ 'netmon.raw.SocketEvent': { ...sock, dport: 70000 } } as unknown as RawRecord['payload'])],
    ['unknown kind', record({ 'netmon.raw.SocketEvent': { ...sock, kind: 'toString' } } as unknown as RawRecord['payload'])],
    ['unknown family', record({ 'netmon.raw.SocketEvent': { ...sock, family: 'UNIX' } } as unknown as RawRecord['payload'])],
    ['time out of range', { ...socket(t), time_us: 1e19 }],
    [
      'exec without args',
      record({
        'netmon.raw.ProcessExec': { task: t, snapshot: false, binary_path: '/x', args_truncated: false, secureexec: [] },
      } as unknown as RawRecord['payload']),
    ],
    ['fork without parent', record({ 'netmon.raw.ProcessFork': { task: t } } as unknown as RawRecord['payload'])],
    ['exit without pid', record({ 'netmon.raw.ProcessExit': { tid: 1, start_time_us: 1, exit_code: 0 } } as unknown as RawRecord['payload'])],
  ];
  for (const [what, r] of bad) {
    assert.throws(() => push(r), ContractError, what);
    assert.throws(() => Enricher.validate(r), ContractError, what);
  }
  assert.equal(e.counters.rejected, bad.length);
  assert.equal(e.counters.records, 0);
  // The stream goes on.
  push(exec(t, '/bin/ok'));
  push(socket(t));
  assert.equal(events[0]!.process.binary_path, '/bin/ok');
});

test('a record whose enrichment throws anyway is reported and skipped; the stream goes on', () => {
  const { e, events, rejected, push } = harness({ processWaitMs: 1000 });
  const t = task(750, 77_000_000);
  push(exec(t, '/bin/svc'));
  // A task the checks let through but that throws when read (stands for a bug).
  const cursed = { ...t };
  Object.defineProperty(cursed, 'uid', {
    enumerable: true,
    get() {
      throw new TypeError('boom');
    },
  });
  push(socket(cursed)); // position 1
  push(socket(t)); // position 2
  assert.equal(events.length, 1);
  assert.equal(rejected.length, 1);
  assert.equal(rejected[0]!.position, 1);
  assert.ok(rejected[0]!.error instanceof EnrichError);
  assert.equal(rejected[0]!.error.reason, 'enrich');
  assert.match(rejected[0]!.error.message, /boom/);
  assert.equal(e.counters.rejected, 1);

  // The same while waiting: released by its process record, reported, and
  // the records behind it still go out.
  const late = { ...task(751, 78_000_000) };
  Object.defineProperty(late, 'euid', {
    enumerable: true,
    get() {
      throw new RangeError('bang');
    },
  });
  push(socket(late), 0); // 3: waits
  push(socket(t), 0); // 4: queued behind
  assert.equal(events.length, 1);
  push(exec(task(751, 78_000_000), '/bin/late'), 0); // 5
  assert.deepEqual(
    rejected.map((r) => r.position),
    [1, 3],
  );
  assert.equal(events.length, 2);
  assert.equal(e.heldCount, 0);
  e.expire(Number.POSITIVE_INFINITY);
});

test('reject tally: the first of each reason is the one to log; numbers do not make a new reason', () => {
  assert.equal(reasonOf('record 12: INET6 addresses of 4 and 4 bytes, expected 16'), 'record N: INET6 addresses of N and N bytes, expected N');
  assert.equal(reasonOf('event of run 0b6f2c1e-6a53-4c6e-9d36-1d0f0f5a7c11 seq 7: bad'), 'event of run N seq N: bad');
  assert.equal(reasonOf('unknown fingerprint 3f2a9b1c00d4e5f6'), 'unknown fingerprint N');
  const tally = new RejectTally(3);
  assert.equal(tally.add('INET6 addresses of 4 and 4 bytes, expected 16'), true);
  assert.equal(tally.add('INET6 addresses of 16 and 4 bytes, expected 16'), false);
  assert.equal(tally.add('port out of range (70000, 80)'), true);
  assert.equal(tally.add('host_id is empty'), true);
  // Past the bound, new reasons are counted together, not logged.
  assert.equal(tally.add('something else'), false);
  assert.equal(tally.add('and another'), false);
  assert.equal(tally.total, 6);
  assert.deepEqual(
    tally.counts().map((r) => [r.count, r.first]),
    [
      [2, 'INET6 addresses of 4 and 4 bytes, expected 16'],
      [2, 'something else'],
      [1, 'port out of range (70000, 80)'],
      [1, 'host_id is empty'],
    ],
  );
});
