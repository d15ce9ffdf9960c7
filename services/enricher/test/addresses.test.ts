import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatAddress } from '@netmon/common';
import { AddressInterner, addressDnsKey, addressText, dnsAddressKey } from '../src/lib/addresses';
import { prng } from './prng';

const hex = (h: string) => Buffer.from(h, 'hex');

test('the interner gives one Buffer per address, a copy of the bytes, wherever they sit', () => {
  const a = new AddressInterner();
  const message = Buffer.concat([hex('ff0a000001ff'), hex('20010db8000000000000000000000001'), hex('0a000001')]);
  const v4 = a.intern(message, 1, 4);
  assert.deepEqual(v4, hex('0a000001'));
  assert.equal(a.intern(message, 22, 4), v4); // the same address elsewhere
  assert.equal(a.intern(hex('0a000001'), 0, 4), v4); // in another message
  const v6 = a.intern(message, 6, 16);
  assert.deepEqual(v6, hex('20010db8000000000000000000000001'));
  assert.equal(a.intern(Buffer.from(v6), 0, 16), v6);
  assert.notEqual(a.intern(hex('0a000002'), 0, 4), v4);
  // other lengths (refused later by formatAddress) are plain copies
  const odd = a.intern(message, 0, 3);
  assert.deepEqual(odd, hex('ff0a00'));
  assert.notEqual(a.intern(message, 0, 3), odd);
  message.fill(0); // a copy: the message may go
  assert.deepEqual(v4, hex('0a000001'));
  assert.deepEqual(v6, hex('20010db8000000000000000000000001'));
});

test('the interner never hands out the wrong address: random addresses, collisions and its bound', () => {
  const a = new AddressInterner();
  const rnd = prng(7);
  // Few distinct bytes, so that hashes collide, over more addresses than the bound.
  for (let i = 0; i < 200_000; i++) {
    const length = rnd() < 0.5 ? 4 : 16;
    const bytes = Buffer.alloc(length);
    for (let j = 0; j < length; j++) bytes[j] = rnd() < 0.7 ? 0 : Math.floor(rnd() * 256);
    const got = a.intern(bytes, 0, length);
    assert.ok(got.equals(bytes), `${bytes.toString('hex')} gave ${got.toString('hex')}`);
  }
});

test('text and DNS key of an interned address are those of its bytes, computed once', () => {
  const a = new AddressInterner();
  for (const h of ['0a000001', '20010db8000000000000000000000001', '00000000000000000000ffff5db8d822', '00000000000000000000000000000000']) {
    const b = a.intern(hex(h), 0, h.length / 2);
    assert.equal(addressText(b), formatAddress(hex(h)));
    assert.equal(addressText(b), addressText(b));
    assert.equal(addressDnsKey(b), dnsAddressKey(hex(h)));
  }
  assert.equal(addressDnsKey(a.intern(hex('00000000000000000000ffff5db8d822'), 0, 16)), addressDnsKey(hex('5db8d822')));
});

test('an address that is not interned may change: nothing of it is remembered', () => {
  const b = hex('0a000001');
  assert.equal(addressText(b), '10.0.0.1');
  assert.equal(addressDnsKey(b), dnsAddressKey(hex('0a000001')));
  b[3] = 2;
  assert.equal(addressText(b), '10.0.0.2');
  assert.equal(addressDnsKey(b), dnsAddressKey(hex('0a000002')));
  assert.throws(() => addressText(hex('0a00')), RangeError);
  assert.throws(() => addressDnsKey(hex('0a00')), RangeError);
});
