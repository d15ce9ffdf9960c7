// remote_name end to end inside the enricher: real recorded DNS answers
// (packages/common/test/fixtures/dns, from dnsmasq) as raw DnsResponse
// records, then the connections to the answered addresses; the cache kept
// across a restart through the changelog records.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import type { DnsResponse, NetworkEvent, RawRecord } from '@netmon/common';
import { applyStateMessage, dnsMessage } from '../src/changelog';
import { Enricher, type EnricherOptions } from '../src/lib/enricher';
import { HOST, T0, exec, record, socket, task } from './helpers';

const FIXTURES = path.resolve(__dirname, '../../../../packages/common/test/fixtures/dns');
const fixture = (name: string) => readFileSync(path.join(FIXTURES, name));
const NETNS = 4026531840;
const OTHER_NETNS = 4026532999;
// alias.test → alias2.test → target.test = 127.0.0.7 / fd00::7, TTL 60 s along the chain
const TARGET_V4 = [127, 0, 0, 7];

function harness(options: Partial<EnricherOptions> = {}) {
  const events: NetworkEvent[] = [];
  const e = new Enricher({ processWaitMs: 0, filter: null, ...options }, { event: (ev) => events.push(ev) });
  let pos = 0;
  const push = (r: RawRecord) => e.push(r, pos++, 0);
  return { e, events, push };
}

const dns = (file: string, timeUs: number, netns = NETNS, transport: DnsResponse['transport'] = 'UDP'): RawRecord =>
  record({ 'netmon.raw.DnsResponse': { netns, transport, payload: fixture(file), truncated: false } }, { time_us: timeUs });

const t = task(4242, 1_000_000);
const connect = (daddr: number[], timeUs: number, netns = NETNS, kind: 'ESTABLISH' | 'CLOSE' = 'ESTABLISH', facts = {}): RawRecord =>
  socket(t, kind, { time_us: timeUs }, { daddr: Buffer.from(daddr), dport: 443, netns, ...facts });

test('a connection to an answered address carries the name asked for (before CNAMEs); a literal address carries ""', () => {
  const { events, push } = harness();
  push(exec(t, '/usr/bin/curl', ['https://alias.test/']));
  push(dns('alias-a.udp.bin', T0));
  push(connect(TARGET_V4, T0 + 1000));
  push(connect([192, 0, 2, 1], T0 + 2000));
  assert.deepEqual(
    events.map((e) => e.connection.remote_name),
    ['alias.test', ''],
  );
});

test('an answer over TCP (length-prefixed) names connections too', () => {
  const { events, push } = harness();
  push(dns('alias-a-mixed-case.tcp.bin', T0, NETNS, 'TCP'));
  push(connect(TARGET_V4, T0 + 1000));
  assert.equal(events[0]!.connection.remote_name, 'alias.test');
});

test('an answer whose TTL expired is not used; an answer seen after the connection is not used', () => {
  const { events, push } = harness();
  push(dns('alias-a.udp.bin', T0));
  push(connect(TARGET_V4, T0 + 61_000_000)); // 61 s later: the 60 s TTL ran out
  assert.equal(events[0]!.connection.remote_name, '');
});

test('the same address in two network namespaces: each its own name, and none where no answer came', () => {
  const { events, push } = harness();
  push(dns('alias-a.udp.bin', T0, NETNS));
  push(connect(TARGET_V4, T0 + 1000, OTHER_NETNS));
  push(connect(TARGET_V4, T0 + 2000, NETNS));
  assert.deepEqual(
    events.map((e) => e.connection.remote_name),
    ['', 'alias.test'],
  );
});

test("a Close is named as of its open, even after the answer's TTL", () => {
  const { events, push } = harness();
  push(dns('alias-a.udp.bin', T0));
  // closed 120 s after it opened (kernel µs since boot: opened at 1e9, closed at 1e9 + 120e6)
  const close = socket(
    { ...t, ktime_us: 1_120_000_000 },
    'CLOSE',
    { time_us: T0 + 120_001_000 },
    {
      daddr: Buffer.from(TARGET_V4),
      netns: NETNS,
      opened_ktime_us: 1_000_000_000,
      handshake: true,
    },
  );
  push(close);
  assert.equal(events[0]!.connection.remote_name, 'alias.test');
  assert.equal(events[0]!.connection.duration_ms, 120_000);
});

test('answers are kept whatever the process filter says: a kept process gets the name another resolved', () => {
  const { events, push } = harness({ filter: { denyList: false, uid: [], euid: [], auid: [], binary: { name: ['curl'], path: [], prefix: [] } } as never });
  push(exec(t, '/usr/bin/curl'));
  push(dns('alias-a.udp.bin', T0)); // the answer record has no process at all
  push(connect(TARGET_V4, T0 + 1000));
  assert.equal(events[0]?.connection.remote_name, 'alias.test');
});

test('a malformed DNS payload is counted, never stops the stream', () => {
  const { e, events, push } = harness();
  const bad = record({ 'netmon.raw.DnsResponse': { netns: NETNS, transport: 'UDP', payload: Buffer.from('8180000100010000', 'hex'), truncated: true } });
  push(bad);
  push(connect(TARGET_V4, T0 + 1000));
  assert.equal(e.counters.dns, 1);
  assert.equal(e.counters.dnsUnparsed, 1);
  assert.equal(events.length, 1);
});

test('the cache survives a restart: its changelog records, replayed into a new enricher, give the same names', () => {
  const first = harness();
  first.push(dns('alias-a.udp.bin', Date.now() * 1000));
  first.push(dns('alias-aaaa.udp.bin', Date.now() * 1000));
  const changes = first.e.dns.takeChanges();
  assert.equal(changes.length, 2, 'one change per answered address');
  const messages = changes.map((c) => dnsMessage(c, 0));
  const second = harness();
  const sink = {
    entry: () => assert.fail('no process entries'),
    done: () => assert.fail('no done positions'),
    dns: (c: Parameters<typeof dnsMessage>[0]) => {
      second.e.dns.forget(c.hostId, c.netns, c.address);
      if (c.names)
        second.e.dns.load(
          c.names.map(([n, a, x]) => [c.hostId, c.netns, c.address, n, a, x]),
          Date.now() * 1000,
        );
    },
  };
  for (const m of messages) assert.ok(applyStateMessage({ key: Buffer.from(m.key), value: m.value === null ? null : Buffer.from(m.value) }, sink));
  second.push(connect(TARGET_V4, Date.now() * 1000 + 1000));
  assert.equal(second.events[0]!.connection.remote_name, 'alias.test');
  assert.equal(second.e.dns.lookup(HOST.id, NETNS, Buffer.from('fd000000000000000000000000000007', 'hex'), Date.now() * 1000), 'alias.test');
});

test('inserting ten times the bound leaves at most the bound, and evictions reach the changelog as tombstones', () => {
  const { e } = harness({ dns: { maxEntries: 10 } });
  for (let i = 0; i < 100; i++) {
    e.dns.remember(HOST.id, NETNS, { name: `n${i}.test`, addresses: [{ family: 'INET', address: Buffer.from([10, 0, 0, i]), ttl: 60 }] }, T0 + i);
  }
  assert.ok(e.dns.size <= 10, `size ${e.dns.size}`);
  const changes = e.dns.takeChanges();
  assert.equal(changes.filter((c) => c.names === null).length, 90);
  assert.equal(changes.filter((c) => c.names !== null).length, 10);
});
