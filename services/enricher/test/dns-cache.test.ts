import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { type DnsAnswer, parseDnsAnswer } from '@netmon/common';
import { DnsCache, type DnsCacheEntry } from '../src/lib/dns-cache';

const H1 = '4c4c4544004e3510804bb4c04f4a3332';
const H2 = '0f1e2d3c4b5a69788796a5b4c3d2e1f0';
const NS = 4026531840; // the initial network namespace's inode
const NS2 = 4026532561;
const T0 = 1748685951282000;
const S = 1_000_000; // µs per second

const ip = (text: string) => Buffer.from(text.split('.').map(Number));
function answer(name: string, ttl: number, ...addresses: string[]): DnsAnswer {
  return { name, addresses: addresses.map((a) => ({ family: 'INET' as const, address: ip(a), ttl })) };
}

test('a real answer: its question name for its address, within its TTL, on its host, from the time it was seen', () => {
  const bytes = readFileSync(path.resolve(__dirname, '../../../../packages/common/test/fixtures/dns/alias-a.udp.bin'));
  const parsed = parseDnsAnswer(bytes, 'udp')!; // alias.test -> alias2.test -> target.test A 127.0.0.7, TTL 60 along the chain
  const cache = new DnsCache();
  cache.remember(H1, NS, parsed, T0);
  assert.equal(cache.lookup(H1, NS, ip('127.0.0.7'), T0 + 1000), 'alias.test');
  assert.equal(cache.lookup(H1, NS, Buffer.from('00000000000000000000ffff7f000007', 'hex'), T0 + 1000), 'alias.test'); // IPv4-mapped
  assert.equal(cache.lookup(H1, NS, ip('127.0.0.8'), T0 + 1000), '');
  assert.equal(cache.lookup(H2, NS, ip('127.0.0.7'), T0 + 1000), ''); // another host saw nothing
  assert.equal(cache.lookup(H1, NS, ip('127.0.0.7'), T0 - 1), ''); // a connection before the answer
  assert.equal(cache.lookup(H1, NS, ip('127.0.0.7'), T0 + 60 * S - 1), 'alias.test');
  assert.equal(cache.lookup(H1, NS, ip('127.0.0.7'), T0 + 60 * S), ''); // expired
});

test('IPv6 addresses, and refusal of other lengths', () => {
  const cache = new DnsCache();
  const v6 = Buffer.from('fd000000000000000000000000000007', 'hex');
  cache.remember(H1, NS, { name: 'six.test', addresses: [{ family: 'INET6', address: v6, ttl: 10 }] }, T0);
  assert.equal(cache.lookup(H1, NS, v6, T0), 'six.test');
  assert.equal(cache.lookup(H1, NS, v6.subarray(12), T0), ''); // its last 4 bytes are not it
  assert.throws(() => cache.lookup(H1, NS, Buffer.alloc(5), T0), /4 or 16 bytes/);
});

test('network namespaces are apart: the same address, a different name in each', () => {
  const cache = new DnsCache();
  cache.remember(H1, NS, answer('db.prod.internal', 300, '10.0.0.5'), T0);
  cache.remember(H1, NS2, answer('db.staging.internal', 300, '10.0.0.5'), T0 + 1);
  assert.equal(cache.lookup(H1, NS, ip('10.0.0.5'), T0 + S), 'db.prod.internal');
  assert.equal(cache.lookup(H1, NS2, ip('10.0.0.5'), T0 + S), 'db.staging.internal');
  assert.equal(cache.lookup(H1, 4026532999, ip('10.0.0.5'), T0 + S), '');
  // back and forth between namespaces: each lookup keys its own
  for (let i = 0; i < 3; i++) {
    assert.equal(cache.lookup(H1, NS, ip('10.0.0.5'), T0 + S), 'db.prod.internal');
    assert.equal(cache.lookup(H1, NS2, ip('10.0.0.5'), T0 + S), 'db.staging.internal');
  }
});

test('the most recent answer wins; an older one still within its TTL is next', () => {
  const cache = new DnsCache();
  cache.remember(H1, NS, answer('a.cdn.test', 3600, '192.0.2.1'), T0);
  cache.remember(H1, NS, answer('b.cdn.test', 30, '192.0.2.1'), T0 + 10 * S);
  assert.equal(cache.lookup(H1, NS, ip('192.0.2.1'), T0 + 11 * S), 'b.cdn.test');
  assert.equal(cache.lookup(H1, NS, ip('192.0.2.1'), T0 + 5 * S), 'a.cdn.test'); // a connection between the two answers
  assert.equal(cache.lookup(H1, NS, ip('192.0.2.1'), T0 + 40 * S), 'a.cdn.test'); // b expired, a has not
  cache.remember(H1, NS, answer('a.cdn.test', 60, '192.0.2.1'), T0 + 50 * S);
  assert.equal(cache.lookup(H1, NS, ip('192.0.2.1'), T0 + 51 * S), 'a.cdn.test');
  assert.equal(cache.size, 1); // a's second answer merged with its first; b, expired by then, went
});

test('a name answered again stays on; one answered after it expired starts anew', () => {
  const cache = new DnsCache();
  cache.remember(H1, NS, answer('api.test', 30, '192.0.2.9'), T0);
  cache.remember(H1, NS, answer('api.test', 30, '192.0.2.9'), T0 + 20 * S);
  assert.equal(cache.lookup(H1, NS, ip('192.0.2.9'), T0 + 45 * S), 'api.test'); // the second answer runs to 50 s
  assert.equal(cache.lookup(H1, NS, ip('192.0.2.9'), T0 + 10 * S), 'api.test'); // the first still covers 10 s
  cache.remember(H1, NS, answer('api.test', 30, '192.0.2.9'), T0 + 100 * S);
  assert.equal(cache.lookup(H1, NS, ip('192.0.2.9'), T0 + 60 * S), ''); // the gap between 50 s and 100 s
  assert.equal(cache.size, 1);
});

test('names per address are bounded, the oldest inserted goes', () => {
  const cache = new DnsCache({ namesPerAddress: 3 });
  for (let i = 0; i < 5; i++) cache.remember(H1, NS, answer(`n${i}.test`, 3600, '192.0.2.7'), T0 + i);
  assert.equal(cache.size, 3);
  assert.equal(cache.lookup(H1, NS, ip('192.0.2.7'), T0 + 3), 'n3.test');
  assert.equal(cache.lookup(H1, NS, ip('192.0.2.7'), T0 + 1), ''); // n1 went (and n0)
});

test('TTLs are capped', () => {
  const cache = new DnsCache({ maxTtlS: 3600 });
  cache.remember(H1, NS, answer('long.test', 2 ** 31 - 1, '192.0.2.3'), T0);
  assert.equal(cache.lookup(H1, NS, ip('192.0.2.3'), T0 + 3599 * S), 'long.test');
  assert.equal(cache.lookup(H1, NS, ip('192.0.2.3'), T0 + 3600 * S), '');
});

const nth = (i: number) => `10.${(i >> 16) & 0xff}.${(i >> 8) & 0xff}.${i & 0xff}`;

test('the bound: ten times as many addresses leave at most the bound, the least recently inserted go', () => {
  const max = 1000;
  const cache = new DnsCache({ maxEntries: max });
  cache.remember(H1, NS, answer('keep.test', 3600, '192.0.2.1'), T0);
  for (let i = 0; i < 10 * max; i++) {
    cache.remember(H2, NS, answer(`host-${i}.test`, 3600, nth(i)), T0 + i);
    if (i % 100 === 0) cache.remember(H1, NS, answer('keep.test', 3600, '192.0.2.1'), T0 + i); // answered again: stays
    assert.equal(cache.lookup(H2, NS, ip(nth(0)), T0 + i), i < max - 1 ? 'host-0.test' : ''); // a lookup does not keep it
  }
  assert.ok(cache.size <= max, `${cache.size}`);
  assert.equal(cache.size, max);
  assert.equal(cache.evicted, 10 * max + 1 - max);
  assert.equal(cache.lookup(H1, NS, ip('192.0.2.1'), T0 + 10 * max), 'keep.test');
  assert.equal(cache.lookup(H2, NS, ip(nth(10 * max - 1)), T0 + 10 * max), `host-${10 * max - 1}.test`);
  assert.equal(cache.lookup(H2, NS, ip(nth(10 * max - max)), T0 + 10 * max), ''); // pushed out
});

test('entries and restore: the live entries come back as they were, the expired do not', () => {
  const cache = new DnsCache({ maxEntries: 4 });
  cache.remember(H1, NS, answer('short.test', 10, '192.0.2.1'), T0);
  cache.remember(H1, NS, answer('long.test', 600, '192.0.2.2', '192.0.2.3'), T0 + 1);
  cache.remember(H2, NS2, answer('other.test', 600, '192.0.2.1'), T0 + 2);
  cache.remember(H1, NS, answer('newer.test', 600, '192.0.2.3'), T0 + 3); // a 5th entry: H1's 192.0.2.1 goes
  cache.remember(H1, NS, answer('short.test', 10, '192.0.2.4'), T0 + 4); // and then H1's 192.0.2.2
  assert.equal(cache.size, 4);
  assert.equal(cache.evicted, 2);
  const entries = cache.entries();
  const json = JSON.parse(JSON.stringify(entries)) as DnsCacheEntry[];
  assert.deepEqual(json, entries);
  assert.deepEqual(
    json.map(
      ([host, netns, address, name, answeredUs, expiresUs]) =>
        `${host === H1 ? 'H1' : 'H2'} ${netns} ${address} ${name} ${answeredUs - T0} ${(expiresUs - answeredUs) / S}`,
    ),
    [`H2 ${NS2} c0000201 other.test 2 600`, `H1 ${NS} c0000203 long.test 1 600`, `H1 ${NS} c0000203 newer.test 3 600`, `H1 ${NS} c0000204 short.test 4 10`],
  );
  assert.deepEqual(
    cache.entries(H2).map((e) => e[3]),
    ['other.test'],
  );
  assert.deepEqual(cache.entries('unknown'), []);

  const now = T0 + 60 * S; // short.test (TTL 10) has expired by then
  const restored = DnsCache.restore(json, now, { maxEntries: 3 });
  assert.equal(restored.size, 3);
  assert.equal(cache.lookup(H1, NS, ip('192.0.2.4'), T0 + 5), 'short.test');
  assert.equal(restored.lookup(H1, NS, ip('192.0.2.4'), T0 + 5), ''); // dropped, expired at `now`
  assert.equal(restored.lookup(H1, NS, ip('192.0.2.3'), now), 'newer.test');
  assert.equal(restored.lookup(H1, NS, ip('192.0.2.3'), T0 + 2), 'long.test');
  assert.equal(restored.lookup(H2, NS2, ip('192.0.2.1'), now), 'other.test');
  // The eviction order came back too: the next address pushes out H2's, the oldest.
  restored.remember(H1, NS, answer('next.test', 600, '192.0.2.5'), now);
  assert.equal(restored.lookup(H2, NS2, ip('192.0.2.1'), now), '');
  assert.equal(restored.lookup(H1, NS, ip('192.0.2.3'), now), 'newer.test');

  // Ill-formed tuples are passed over.
  const bad = [[H1, NS, 'zz', 'x.test', T0, now + S], [H1, NS, 'c0000209'], 'junk', [H1, NS, 'c0000209', 'ok.test', T0, now + S]] as unknown as DnsCacheEntry[];
  const other = new DnsCache();
  assert.equal(other.load(bad, now), 1);
  assert.equal(other.lookup(H1, NS, ip('192.0.2.9'), now), 'ok.test');
});

test("dropHost forgets one host's entries only", () => {
  const cache = new DnsCache();
  cache.remember(H1, NS, answer('one.test', 60, '192.0.2.1', '192.0.2.2'), T0);
  cache.remember(H2, NS, answer('two.test', 60, '192.0.2.1'), T0);
  assert.equal(cache.dropHost(H1), 2);
  assert.equal(cache.dropHost('unknown'), 0);
  assert.equal(cache.size, 1);
  assert.equal(cache.lookup(H1, NS, ip('192.0.2.1'), T0), '');
  assert.equal(cache.lookup(H2, NS, ip('192.0.2.1'), T0), 'two.test');
  assert.deepEqual(cache.entries(H1), []);
});

test('bounded memory: bytes per entry', () => {
  const gc = (globalThis as { gc?: () => void }).gc;
  const n = 100_000;
  const cache = new DnsCache({ maxEntries: n });
  gc?.();
  const before = process.memoryUsage().heapUsed;
  // Each answer parsed on its own: a name string of ~25 characters per entry.
  for (let i = 0; i < n; i++) cache.remember(H1, NS, answer(`svc-${i}.eu-west-1.example.com`, 300, nth(i)), T0 + i);
  gc?.();
  const perEntry = (process.memoryUsage().heapUsed - before) / n;
  console.log(`DNS cache: ${perEntry.toFixed(0)} bytes per entry (${gc ? 'after gc' : 'run with --expose-gc for a tighter figure'})`);
  assert.equal(cache.size, n);
  assert.ok(perEntry < 600, `${perEntry} bytes per entry`);
});
