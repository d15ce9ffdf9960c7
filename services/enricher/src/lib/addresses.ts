// Socket addresses on the hot path. A host talks to few addresses, yet every
// socket record carries two: decoded as a new Buffer each, then formatted to
// text and turned into a DNS cache key for every event, they cost ~0.8 KB of
// garbage and ~6 % of the enricher's thread per record. So the raw decoder
// interns them (one shared Buffer per address, never written to), and what is
// derived from an address is computed once per Buffer object and remembered
// with it (a WeakMap: it goes when the Buffer does).
import { formatAddress } from '@netmon/common';

/** Distinct addresses kept per family before the interner starts over. */
const MAX_INTERNED = 65_536;

/**
 * One shared Buffer per address: a direct-mapped cache by a hash of the
 * bytes, checked byte by byte on a hit (a collision replaces the entry).
 */
export class AddressInterner {
  private readonly v4 = new Map<number, Buffer>();
  private readonly v6 = new Map<number, Buffer>();

  /** The shared Buffer holding bytes [start, start + length) of `buf`; a copy (never a view) for other lengths than 4 and 16. */
  intern(buf: Buffer, start: number, length: number): Buffer {
    if (length === 4) return this.lookup(this.v4, buf.readUInt32BE(start), buf, start, 4);
    if (length === 16) {
      let h = buf.readInt32BE(start);
      h = Math.imul(h ^ (h >>> 16), 0x45d9f3b) ^ buf.readInt32BE(start + 4);
      h = Math.imul(h ^ (h >>> 16), 0x45d9f3b) ^ buf.readInt32BE(start + 8);
      h = Math.imul(h ^ (h >>> 16), 0x45d9f3b) ^ buf.readInt32BE(start + 12);
      return this.lookup(this.v6, h, buf, start, 16);
    }
    return Buffer.from(buf.subarray(start, start + length));
  }

  private lookup(map: Map<number, Buffer>, hash: number, buf: Buffer, start: number, length: number): Buffer {
    const known = map.get(hash);
    if (known !== undefined && sameBytes(known, buf, start, length)) return known;
    if (map.size >= MAX_INTERNED) map.clear();
    const copy = Buffer.from(buf.subarray(start, start + length));
    map.set(hash, copy);
    derived.set(copy, { text: undefined, dnsKey: undefined });
    return copy;
  }
}

function sameBytes(a: Buffer, b: Buffer, start: number, length: number): boolean {
  for (let i = 0; i < length; i++) if (a[i] !== b[start + i]) return false;
  return true;
}

interface Derived {
  text: string | undefined;
  dnsKey: string | undefined;
}

/** What is derived from an interned Buffer; other Buffers may be written to, so nothing of theirs is remembered. */
const derived = new WeakMap<Uint8Array, Derived>();

/** formatAddress(address), computed once per interned Buffer. */
export function addressText(address: Uint8Array): string {
  const d = derived.get(address);
  if (d === undefined) return formatAddress(address);
  d.text ??= formatAddress(address);
  return d.text;
}

/** dnsAddressKey(address), computed once per interned Buffer. */
export function addressDnsKey(address: Uint8Array): string {
  const d = derived.get(address);
  if (d === undefined) return dnsAddressKey(address);
  d.dnsKey ??= dnsAddressKey(address);
  return d.dnsKey;
}

const V4_MAPPED_PREFIX = Buffer.from('00000000000000000000ffff', 'hex');

/** The DNS cache's key of an address: its bytes as latin1, an IPv4-mapped IPv6 address as its IPv4 address. */
export function dnsAddressKey(address: Uint8Array): string {
  const b = Buffer.from(address.buffer, address.byteOffset, address.length);
  if (b.length === 16 && b.compare(V4_MAPPED_PREFIX, 0, 12, 0, 12) === 0) return b.toString('latin1', 12);
  if (b.length !== 4 && b.length !== 16) throw new RangeError(`an IP address has 4 or 16 bytes, not ${b.length}`);
  return b.toString('latin1');
}
