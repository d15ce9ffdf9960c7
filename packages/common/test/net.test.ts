import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatAddress } from '../src';

const hex = (h: string) => Buffer.from(h.replace(/[: ]/g, ''), 'hex');

test('IPv4 is a dotted quad', () => {
  assert.equal(formatAddress(Buffer.from([127, 0, 0, 1])), '127.0.0.1');
  assert.equal(formatAddress(Buffer.from([10, 255, 0, 200])), '10.255.0.200');
});

test('IPv6 in RFC 5952 form', () => {
  const cases: [string, string][] = [
    ['0000 0000 0000 0000 0000 0000 0000 0001', '::1'],
    ['0000 0000 0000 0000 0000 0000 0000 0000', '::'],
    ['fe80 0000 0000 0000 d497 36b6 16bf d97b', 'fe80::d497:36b6:16bf:d97b'],
    ['2a00 1450 4010 0c08 0000 0000 0000 008b', '2a00:1450:4010:c08::8b'],
    ['2001 0db8 0000 0001 0000 0000 0000 0001', '2001:db8:0:1::1'], // longest run wins
    ['2001 0db8 0000 0000 0001 0000 0000 0001', '2001:db8::1:0:0:1'], // first of equal runs
    ['2001 0db8 0000 0001 0001 0001 0001 0001', '2001:db8:0:1:1:1:1:1'], // a single zero group stays
    ['2001 0db8 0000 0000 0000 0000 0000 0000', '2001:db8::'],
    ['2001 0000 0000 0001 0000 0000 0000 0001', '2001:0:0:1::1'],
  ];
  for (const [bytes, text] of cases) assert.equal(formatAddress(hex(bytes)), text);
});

test('IPv4-mapped IPv6 is the IPv4 address', () => {
  assert.equal(formatAddress(hex('0000 0000 0000 0000 0000 ffff 7f00 0001')), '127.0.0.1');
});

test('other lengths are refused', () => {
  assert.throws(() => formatAddress(Buffer.alloc(5)), /4 or 16 bytes/);
});
