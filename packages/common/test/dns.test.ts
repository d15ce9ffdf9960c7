import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { type DnsAnswer, DnsParseError, MAX_CNAME_CHAIN, formatAddress, parseDnsAnswer } from '../src';

// Real answers of dnsmasq (fixtures/dns/README.md says how they were recorded).
const fixtures = path.resolve(__dirname, '../../test/fixtures/dns');
const fixture = (file: string) => readFileSync(path.join(fixtures, file));

/** An answer with its addresses as text, for readable assertions. */
function readable(answer: DnsAnswer | undefined) {
  if (answer === undefined) return undefined;
  return { name: answer.name, addresses: answer.addresses.map((a) => `${a.family} ${formatAddress(a.address)} ${a.ttl}`) };
}

function parseError(fn: () => unknown): DnsParseError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof DnsParseError, `not a DnsParseError: ${String(err)}`);
    return err;
  }
  assert.fail('no error');
}

// Hand-made messages, for what no server sends.
const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
const u32 = (n: number) => Buffer.from([n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
/** A name as uncompressed labels. */
const wire = (name: string) =>
  Buffer.concat([...name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'latin1')])), Buffer.from([0])]);
const rr = (owner: Buffer, type: number, ttl: number, rdata: Buffer, klass = 1) =>
  Buffer.concat([owner, u16(type), u16(klass), u32(ttl), u16(rdata.length), rdata]);
const A = (owner: string, address: number[], ttl = 60) => rr(wire(owner), 1, ttl, Buffer.from(address));
const CNAME = (owner: string, target: string, ttl = 60) => rr(wire(owner), 5, ttl, wire(target));
/** A response (flags 0x8180: QR, RD, RA, NOERROR) to `question` IN A with `answers`. */
function response(question: Buffer | string, answers: Buffer[], flags = 0x8180): Buffer {
  const q = typeof question === 'string' ? wire(question) : question;
  return Buffer.concat([u16(0x1234), u16(flags), u16(1), u16(answers.length), u16(0), u16(0), q, u16(1), u16(1), ...answers]);
}

test('a CNAME chain: the question name, the address at its end, the smallest TTL along it', () => {
  // alias.test CNAME alias2.test (120) CNAME target.test (60) A 127.0.0.7 (300)
  assert.deepEqual(readable(parseDnsAnswer(fixture('alias-a.udp.bin'), 'udp')), { name: 'alias.test', addresses: ['INET 127.0.0.7 60'] });
  assert.deepEqual(readable(parseDnsAnswer(fixture('alias-aaaa.udp.bin'), 'udp')), { name: 'alias.test', addresses: ['INET6 fd00::7 60'] });
});

test('a plain A answer, and one with two addresses', () => {
  assert.deepEqual(readable(parseDnsAnswer(fixture('plain-a.udp.bin'), 'udp')), { name: 'plain.test', addresses: ['INET 127.0.0.8 30'] });
  assert.deepEqual(readable(parseDnsAnswer(fixture('multi-a.udp.bin'), 'udp')), { name: 'multi.test', addresses: ['INET 127.0.0.9 45', 'INET 127.0.0.10 45'] });
});

test('the addresses are copies, not views of the payload', () => {
  const payload = Buffer.from(fixture('plain-a.udp.bin'));
  const answer = parseDnsAnswer(payload, 'udp')!;
  payload.fill(0);
  assert.equal(formatAddress(answer.addresses[0]!.address), '127.0.0.8');
});

test('no usable answer: NXDOMAIN, NODATA, queries', () => {
  assert.equal(parseDnsAnswer(fixture('missing-a.udp.bin'), 'udp'), undefined); // RCODE 3
  assert.equal(parseDnsAnswer(fixture('plain-aaaa.udp.bin'), 'udp'), undefined); // NOERROR, no AAAA
  const queries = readdirSync(fixtures).filter((f) => f.endsWith('.query.bin'));
  assert.ok(queries.length >= 6);
  for (const q of queries) assert.equal(parseDnsAnswer(fixture(q), 'udp'), undefined, q);
  // A query with an answer section still is no answer (QR 0), nor is a response to another opcode.
  assert.equal(parseDnsAnswer(response('x.test', [A('x.test', [10, 0, 0, 1])], 0x0100), 'udp'), undefined);
  assert.equal(parseDnsAnswer(response('x.test', [A('x.test', [10, 0, 0, 1])], 0x8180 | (2 << 11)), 'udp'), undefined);
  assert.ok(parseDnsAnswer(response('x.test', [A('x.test', [10, 0, 0, 1])]), 'udp'));
});

test('TCP: after the length prefix, the question name lower-cased, the first message only', () => {
  const tcp = fixture('alias-a-mixed-case.tcp.bin');
  assert.equal(tcp.readUInt16BE(0), tcp.length - 2);
  assert.match(tcp.toString('latin1'), /Alias.TEST/); // the server echoed the case; its owner names point to it
  const expected = { name: 'alias.test', addresses: ['INET 127.0.0.7 60'] };
  assert.deepEqual(readable(parseDnsAnswer(tcp, 'tcp')), expected);
  // Two pipelined answers in one segment: the second is not read.
  const plain = fixture('plain-a.udp.bin');
  assert.deepEqual(readable(parseDnsAnswer(Buffer.concat([tcp, u16(plain.length), plain]), 'tcp')), expected);
});

test('cut short by the capture: the complete records are read, the rest dropped', () => {
  const multi = fixture('multi-a.udp.bin'); // header, question (to byte 28), A (to 44), A (to 60)
  for (let length = 0; length <= multi.length; length++) {
    const cut = multi.subarray(0, length);
    if (length < 28) {
      assert.equal(parseError(() => parseDnsAnswer(cut, 'udp')).reason, 'truncated', `cut at ${length}`);
      continue;
    }
    const addresses = length < 44 ? undefined : length < 60 ? ['INET 127.0.0.9 45'] : ['INET 127.0.0.9 45', 'INET 127.0.0.10 45'];
    assert.deepEqual(readable(parseDnsAnswer(cut, 'udp'))?.addresses, addresses, `cut at ${length}`);
  }
  // TCP: the length prefix says more than was captured.
  const tcp = fixture('alias-a-mixed-case.tcp.bin');
  assert.equal(parseDnsAnswer(tcp.subarray(0, tcp.length - 1), 'tcp'), undefined); // the A record is the last
  assert.equal(parseError(() => parseDnsAnswer(tcp.subarray(0, 1), 'tcp')).reason, 'truncated');
});

test('an address record of an owner off the chain is not given the name', () => {
  // Unrelated owner only.
  assert.equal(parseDnsAnswer(response('www.example.com', [A('evil.example', [6, 6, 6, 6])]), 'udp'), undefined);
  // On the chain and off it: only the one on the chain.
  const mixed = response('www.example.com', [
    A('cdn.example.net', [6, 6, 6, 6]), // before the CNAME that would lead to it: still off the chain
    CNAME('www.example.com', 'edge.example.net'),
    A('edge.example.net', [1, 1, 1, 1]),
    A('other.example.net', [2, 2, 2, 2]),
  ]);
  assert.deepEqual(readable(parseDnsAnswer(mixed, 'udp'))?.addresses, ['INET 1.1.1.1 60']);
  // The real chain answer (alias.test -> alias2.test -> target.test A) with
  // the A record's owner pointer (at 78, to target.test at 65) moved.
  const real = Buffer.from(fixture('alias-a.udp.bin'));
  assert.equal(real.readUInt16BE(78), 0xc000 | 65);
  real.writeUInt16BE(0xc000 | 18, 78); // to "test", the question's last label: off the chain
  assert.equal(parseDnsAnswer(real, 'udp'), undefined);
  real.writeUInt16BE(0xc000 | 12, 78); // to "alias.test" itself: its own address, its own TTL
  assert.deepEqual(readable(parseDnsAnswer(real, 'udp')), { name: 'alias.test', addresses: ['INET 127.0.0.7 300'] });
});

test('other classes and types are passed over', () => {
  const chaos = rr(wire('x.test'), 1, 60, Buffer.from([6, 6, 6, 6]), 3);
  const txt = rr(wire('x.test'), 16, 60, Buffer.from('\u0003abc', 'latin1'));
  assert.deepEqual(readable(parseDnsAnswer(response('x.test', [chaos, txt, A('x.test', [10, 0, 0, 1])]), 'udp'))?.addresses, ['INET 10.0.0.1 60']);
  // A question of class CH is no answer either.
  const ch = response('x.test', [A('x.test', [10, 0, 0, 1])]);
  ch.writeUInt16BE(3, 12 + wire('x.test').length + 2);
  assert.equal(parseDnsAnswer(ch, 'udp'), undefined);
});

test('CNAME chains are bounded; loops end', () => {
  const chain = (links: number) => {
    const names = Array.from({ length: links + 1 }, (_, i) => `n${i}.test`);
    return response(names[0]!, [...names.slice(1).map((n, i) => CNAME(names[i]!, n, 100 - i)), A(names[links]!, [10, 0, 0, 1], 300)]);
  };
  assert.deepEqual(readable(parseDnsAnswer(chain(MAX_CNAME_CHAIN), 'udp')), { name: 'n0.test', addresses: [`INET 10.0.0.1 ${100 - MAX_CNAME_CHAIN + 1}`] });
  assert.equal(parseDnsAnswer(chain(MAX_CNAME_CHAIN + 1), 'udp'), undefined);
  const loop = response('a.test', [CNAME('a.test', 'b.test'), CNAME('b.test', 'a.test'), A('a.test', [10, 0, 0, 1])]);
  assert.deepEqual(readable(parseDnsAnswer(loop, 'udp'))?.addresses, ['INET 10.0.0.1 60']); // once, not once per lap
});

test('TTLs: 32 bits unsigned, the top bit set reads 0 (RFC 2181)', () => {
  assert.deepEqual(readable(parseDnsAnswer(response('x.test', [A('x.test', [10, 0, 0, 1], 0xfffffffe)]), 'udp'))?.addresses, ['INET 10.0.0.1 0']);
  assert.deepEqual(readable(parseDnsAnswer(response('x.test', [A('x.test', [10, 0, 0, 1], 0x7fffffff)]), 'udp'))?.addresses, ['INET 10.0.0.1 2147483647']);
});

test('names: lower-cased ASCII, odd bytes escaped, so a label never passes for two', () => {
  const q = Buffer.concat([Buffer.from([7]), Buffer.from('Ev.il\\\u00c9', 'latin1'), Buffer.from([3]), Buffer.from('COM'), Buffer.from([0])]);
  const answer = parseDnsAnswer(response(q, [rr(Buffer.from([0xc0, 12]), 1, 5, Buffer.from([10, 0, 0, 1]))]), 'udp');
  assert.equal(answer?.name, 'ev\\.il\\\\\\201.com');
  assert.equal(parseDnsAnswer(response(Buffer.from([0]), [rr(Buffer.from([0]), 1, 5, Buffer.from([10, 0, 0, 1]))]), 'udp'), undefined); // the root
});

test('malformed: pointer loop, pointer out of bounds or forward, long labels and names, bad rdata', () => {
  const ok = A('x.test', [10, 0, 0, 1]);
  const cases: [string, Buffer, string][] = [
    ['pointer to itself', response(Buffer.from([0xc0, 12]), [ok]), 'bad-pointer'],
    ['label then pointer back to its start', response(Buffer.from([1, 0x61, 0xc0, 12]), [ok]), 'bad-pointer'],
    // Question x.test at 12..23; the first record's owner (at 24) is "b" then
    // a pointer to the second record's owner (at 42), a pointer back to 24.
    [
      'pointer loop across two records',
      response('x.test', [rr(Buffer.from([1, 0x62, 0xc0, 42]), 1, 5, Buffer.from([1, 2, 3, 4])), rr(Buffer.from([0xc0, 24]), 1, 5, Buffer.from([1, 2, 3, 4]))]),
      'bad-pointer',
    ],
    ['pointer past the end', response('x.test', [rr(Buffer.from([0xc0, 0xff]), 1, 5, Buffer.from([1, 2, 3, 4]))]), 'bad-pointer'],
    ['pointer into the header', response('x.test', [rr(Buffer.from([0xc0, 2]), 1, 5, Buffer.from([1, 2, 3, 4]))]), 'bad-pointer'],
    ['label of 64', response(Buffer.concat([Buffer.from([64]), Buffer.alloc(64, 0x61), Buffer.from([0])]), [ok]), 'bad-label'],
    ['label type 0x40 (EDNS0 extended)', response(Buffer.from([0x41, 0]), [ok]), 'bad-label'],
    ['name of 256 bytes', response(Array.from({ length: 4 }, () => 'a'.repeat(63)).join('.'), [ok]), 'name-too-long'],
    ['A of 5 bytes', response('x.test', [rr(wire('x.test'), 1, 5, Buffer.from([1, 2, 3, 4, 5]))]), 'bad-rdata'],
    ['AAAA of 4 bytes', response('x.test', [rr(wire('x.test'), 28, 5, Buffer.from([1, 2, 3, 4]))]), 'bad-rdata'],
    ['CNAME target shorter than its rdata', response('x.test', [rr(wire('x.test'), 5, 5, Buffer.concat([wire('y.test'), Buffer.from([9])]))]), 'bad-rdata'],
    ['header only', Buffer.from([0x12, 0x34, 0x81, 0x80, 0, 1]), 'truncated'],
  ];
  for (const [what, bytes, reason] of cases) assert.equal(parseError(() => parseDnsAnswer(bytes, 'udp')).reason, reason, what);
  // The longest name there is still passes: 255 bytes on the wire.
  const longest = [...Array.from({ length: 3 }, () => 'a'.repeat(63)), 'a'.repeat(61)].join('.');
  assert.equal(wire(longest).length, 255);
  assert.equal(parseDnsAnswer(response(longest, [rr(Buffer.from([0xc0, 12]), 1, 5, Buffer.from([1, 2, 3, 4]))]), 'udp')?.name, longest);
});

test('random damage to real answers: an answer, undefined or a DnsParseError, never anything else', () => {
  let seed = 1;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const reasons = new Set<string>();
  const originals = readdirSync(fixtures)
    .filter((f) => f.endsWith('.udp.bin'))
    .map(fixture);
  for (let i = 0; i < 20_000; i++) {
    const bytes = Buffer.from(originals[i % originals.length]!);
    for (let n = 1 + Math.floor(random() * 3); n > 0; n--) bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
    try {
      parseDnsAnswer(bytes, 'udp');
    } catch (err) {
      assert.ok(err instanceof DnsParseError, String(err));
      reasons.add(err.reason);
    }
  }
  assert.ok(reasons.size >= 3, [...reasons].join()); // the damage reached the checks
});
