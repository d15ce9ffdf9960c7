// DNS answers seen on a host, read for the names they give to addresses
// (connection.remote_name). The bytes are untrusted: any process on the host,
// or anyone on its network, can send them. So this runs in the unprivileged
// enricher, never in the sensor, and its cost is bounded by the message size.
//
// What is taken (RFC 1035 4.1): a standard query's response (QR 1, opcode 0,
// RCODE 0) with one question of class IN. The name is the question's, the one
// the application asked for. Addresses are the A and AAAA records of class IN
// in the answer section whose owner is the question name or reached from it
// by a CNAME chain of at most MAX_CNAME_CHAIN links, so a record for any other
// owner never gets the question's name. An address's TTL is the smallest
// along its chain. Authority and additional sections are not read.
//
// Failures. A message that is well formed but gives no address (a query, an
// error rcode, NODATA, another opcode or class) returns undefined. A malformed
// one throws a DnsParseError with a `reason` for the caller to count; nothing
// else is thrown. A message cut short by the capture is read up to its last
// complete answer record (the rest is dropped); cut before that, it is a
// 'truncated' DnsParseError.
//
// Names are in presentation form, lower-cased (ASCII only, RFC 4343), without
// the trailing dot; a byte that is not a printable ASCII character, or is a
// dot or backslash inside a label, is written \DDD or \. / \\ (as dig does),
// so a label can never pass for two.
import { NetmonError } from './errors';

export type DnsParseFailure = 'truncated' | 'bad-label' | 'bad-pointer' | 'name-too-long' | 'bad-rdata';

/** A DNS message that breaks RFC 1035's format. */
export class DnsParseError extends NetmonError {
  constructor(
    readonly reason: DnsParseFailure,
    detail: string,
  ) {
    super(`malformed DNS message (${reason}): ${detail}`);
  }
}

export interface DnsAddress {
  family: 'INET' | 'INET6';
  /** 4 or 16 bytes (a copy: it does not hold on to the payload). */
  address: Buffer;
  /** Seconds: the smallest TTL along the address's CNAME chain. */
  ttl: number;
}

export interface DnsAnswer {
  /** The question name, lower-cased, without the trailing dot. */
  name: string;
  addresses: DnsAddress[];
}

/** CNAME links followed from the question name (resolvers stop near here too). */
export const MAX_CNAME_CHAIN = 8;

const HEADER = 12;
const MAX_NAME = 255; // wire bytes, labels' length bytes and the root label included
const MAX_LABEL = 63;
const TYPE_A = 1;
const TYPE_CNAME = 5;
const TYPE_AAAA = 28;
const CLASS_IN = 1;

interface Rec {
  owner: string;
  type: number;
  ttl: number;
  /** A/AAAA: the rdata's offset. */
  rdata: number;
  /** CNAME: the target name. */
  target: string;
}

/**
 * Reads a DNS response payload: a UDP payload, or a TCP segment's payload
 * starting with the message's 2-byte length (only the first message is read).
 * Returns undefined for a message that gives no address; throws DnsParseError
 * for a malformed one (see the head of this file).
 */
export function parseDnsAnswer(payload: Uint8Array, transport: 'udp' | 'tcp'): DnsAnswer | undefined {
  let msg = payload;
  if (transport === 'tcp') {
    if (payload.length < 2) throw new DnsParseError('truncated', 'no length prefix');
    msg = payload.subarray(2, 2 + u16(payload, 0));
  }
  if (msg.length < HEADER) throw new DnsParseError('truncated', `${msg.length}-byte message`);
  const flags = u16(msg, 2);
  // QR must be 1 (a response); opcode (bits 11-14) and RCODE (bits 0-3) 0.
  if ((flags & 0xf80f) !== 0x8000 || u16(msg, 4) !== 1) return undefined;
  const answers = u16(msg, 6);

  const name = readName(msg, HEADER);
  let pos = skipName(msg, HEADER);
  if (pos < 0 || pos + 4 > msg.length) throw new DnsParseError('truncated', 'in the question');
  if (u16(msg, pos + 2) !== CLASS_IN || name === '') return undefined;
  pos += 4;

  const records: Rec[] = [];
  for (let i = 0; i < answers; i++) {
    const owner = pos;
    const fixed = skipName(msg, pos);
    if (fixed < 0 || fixed + 10 > msg.length) break; // cut short by the capture
    const type = u16(msg, fixed);
    const rdlength = u16(msg, fixed + 8);
    const rdata = fixed + 10;
    pos = rdata + rdlength;
    if (pos > msg.length) break;
    if (u16(msg, fixed + 2) !== CLASS_IN) continue;
    if (type === TYPE_A || type === TYPE_AAAA) {
      if (rdlength !== (type === TYPE_A ? 4 : 16)) throw new DnsParseError('bad-rdata', `type ${type} with ${rdlength} bytes`);
      records.push({ owner: readName(msg, owner), type, ttl: ttlAt(msg, fixed + 4), rdata, target: '' });
    } else if (type === TYPE_CNAME) {
      if (skipName(msg, rdata) !== pos) throw new DnsParseError('bad-rdata', 'CNAME target does not fill its rdata');
      records.push({ owner: readName(msg, owner), type, ttl: ttlAt(msg, fixed + 4), rdata, target: readName(msg, rdata) });
    }
  }

  // Follow the chain from the question name: at each link, its addresses,
  // then its (first) CNAME. A name seen before ends the chain (a loop).
  const addresses: DnsAddress[] = [];
  const chain = [name];
  let ttl = Number.POSITIVE_INFINITY;
  for (let current = name; ; ) {
    let next: Rec | undefined;
    for (const r of records) {
      if (r.owner !== current) continue;
      if (r.type === TYPE_CNAME) next ??= r;
      else {
        const length = r.type === TYPE_A ? 4 : 16;
        const address = Buffer.from(msg.subarray(r.rdata, r.rdata + length));
        addresses.push({ family: length === 4 ? 'INET' : 'INET6', address, ttl: Math.min(ttl, r.ttl) });
      }
    }
    if (next === undefined || chain.length > MAX_CNAME_CHAIN || chain.includes(next.target)) break;
    ttl = Math.min(ttl, next.ttl);
    current = next.target;
    chain.push(current);
  }
  return addresses.length === 0 ? undefined : { name, addresses };
}

function u16(b: Uint8Array, at: number): number {
  return (b[at]! << 8) | b[at + 1]!;
}

/** A TTL: unsigned 32 bits, and a value with the top bit set means 0 (RFC 2181 8). */
function ttlAt(b: Uint8Array, at: number): number {
  const ttl = ((b[at]! << 24) | (b[at + 1]! << 16) | u16(b, at + 2)) >>> 0;
  return ttl > 0x7fffffff ? 0 : ttl;
}

/**
 * The offset just past the name at `at`, as written there (a compression
 * pointer ends it; its target is not read), or -1 when the message ends first.
 */
function skipName(msg: Uint8Array, at: number): number {
  for (let pos = at; pos < msg.length; ) {
    const len = msg[pos]!;
    if (len === 0) return pos + 1;
    if (len >= 0xc0) return pos + 2 <= msg.length ? pos + 2 : -1;
    if (len > MAX_LABEL) throw new DnsParseError('bad-label', `label type 0x${len.toString(16)} at ${pos}`);
    pos += 1 + len;
  }
  return -1;
}

/**
 * The name at `at`, following compression pointers. Each pointer must point
 * before the place the previous one led to (before the name itself for the
 * first) and past the header, so the walk ends: no loop, no forward or
 * out-of-bounds pointer. Real encoders only point back to names already
 * written, so this refuses none of theirs.
 */
function readName(msg: Uint8Array, at: number): string {
  let name = '';
  let wire = 1; // the root label
  let floor = at;
  for (let pos = at; ; ) {
    if (pos >= msg.length) throw new DnsParseError('truncated', `in the name at ${at}`);
    const len = msg[pos]!;
    if (len === 0) return name;
    if (len >= 0xc0) {
      if (pos + 1 >= msg.length) throw new DnsParseError('truncated', `in the name at ${at}`);
      const target = ((len & 0x3f) << 8) | msg[pos + 1]!;
      if (target < HEADER || target >= floor) throw new DnsParseError('bad-pointer', `pointer at ${pos} to ${target}`);
      pos = floor = target;
      continue;
    }
    if (len > MAX_LABEL) throw new DnsParseError('bad-label', `label type 0x${len.toString(16)} at ${pos}`);
    wire += 1 + len;
    if (wire > MAX_NAME) throw new DnsParseError('name-too-long', `name at ${at}`);
    if (pos + 1 + len > msg.length) throw new DnsParseError('truncated', `in the name at ${at}`);
    if (name !== '') name += '.';
    for (let i = pos + 1; i <= pos + len; i++) name += presentation(msg[i]!);
    pos += 1 + len;
  }
}

/** One label byte in presentation form, lower-cased. */
function presentation(c: number): string {
  if (c >= 0x41 && c <= 0x5a) return String.fromCharCode(c | 0x20);
  if (c === 0x2e || c === 0x5c) return `\\${String.fromCharCode(c)}`;
  if (c <= 0x20 || c >= 0x7f) return `\\${String(c).padStart(3, '0')}`;
  return String.fromCharCode(c);
}
