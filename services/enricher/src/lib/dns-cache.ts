// The DNS cache that fills connection.remote_name: per host and network
// namespace, which name a DNS answer seen on that host gave to an address.
// Fed only by the host's own answers (parseDnsAnswer): a lookup never goes to
// the network, and a name no answer gave is never made up.
//
// A lookup at time T returns, among the answers for the address that were seen
// at or before T and whose TTL still runs at T, the most recently answered
// name; else ''. An address keeps up to `namesPerAddress` names (a CDN address
// serves many): a new answer for the same name extends that name's entry, and
// entries already expired when a new answer comes are dropped.
//
// Bounds. TTLs are capped at `maxTtlS`. The cache holds at most `maxEntries`
// (address, name) entries over all hosts; beyond that the least recently
// INSERTED address goes with its names (an address answered again moves to the
// newest end). Lookups do not reorder: they run per connection and stay
// read-only, so they change nothing the changelog would have to carry, and an
// address that is not answered again expires by its TTL anyway.
// Memory: about 310 bytes per entry with 30-character names, one name
// string per entry (test/dns-cache.test.ts measures it, after gc with
// --expose-gc; Node 20, x64), so the default 100,000 entries are ~31 MB.
//
// Durable form. entries() gives compact JSON-ready tuples in eviction order;
// restore()/load() take them back and drop those expired by then.
//
// Times are µs since the epoch on the host's clock (raw records' time_us).
import type { DnsAnswer } from '@netmon/common';
import { addressDnsKey, dnsAddressKey } from './addresses';

/** One cached answer: [host id, netns inode, address as hex (8 or 32 digits), name, answered µs, expires µs]. */
export type DnsCacheEntry = [hostId: string, netns: number, address: string, name: string, answeredUs: number, expiresUs: number];

/** An address whose names changed since takeChanges(): its names now (oldest first), null when it left the cache. */
export interface DnsCacheChange {
  hostId: string;
  netns: number;
  /** The address as hex (8 or 32 digits). */
  address: string;
  names: Array<[name: string, answeredUs: number, expiresUs: number]> | null;
}

export interface DnsCacheOptions {
  /** (address, name) entries over all hosts. */
  maxEntries: number;
  /** Names kept per address. */
  namesPerAddress: number;
  /** TTLs above this (seconds) are cut to it, as resolvers do (unbound's cache-max-ttl). */
  maxTtlS: number;
}

export const DEFAULT_DNS_CACHE_OPTIONS: DnsCacheOptions = { maxEntries: 100_000, namesPerAddress: 4, maxTtlS: 86_400 };

/** One name of an address; the newest inserted first. */
interface Answer {
  name: string;
  answeredUs: number;
  expiresUs: number;
  older: Answer | null;
}

export class DnsCache {
  readonly options: DnsCacheOptions;
  /** Key "<host index>:<netns>:<address bytes as latin1>", in insertion order (the eviction order). */
  private readonly byAddress = new Map<string, Answer>();
  private readonly hostIndex = new Map<string, number>();
  private readonly hostIds: string[] = [];
  /** By host index: the netns of its last key and that key's start "<host index>:<netns>:" (keyPrefix). */
  private readonly prefixNetns: number[] = [];
  private readonly prefixText: string[] = [];
  private entryCount = 0;
  /** Entries evicted by the bound (a metric). */
  evicted = 0;
  /** Keys answered or evicted since takeChanges() (the changelog's). */
  private readonly changed = new Set<string>();

  constructor(options: Partial<DnsCacheOptions> = {}) {
    const o = { ...DEFAULT_DNS_CACHE_OPTIONS, ...options };
    if (!(o.maxEntries >= 1 && o.namesPerAddress >= 1 && o.maxTtlS >= 0)) throw new RangeError(`bad DNS cache options ${JSON.stringify(options)}`);
    this.options = { ...o, namesPerAddress: Math.min(o.namesPerAddress, o.maxEntries) };
  }

  /** (address, name) entries held, expired ones not yet dropped included. */
  get size(): number {
    return this.entryCount;
  }

  /** Takes in a parsed answer seen on a host at `atUs`. */
  remember(hostId: string, netns: number, answer: DnsAnswer, atUs: number): void {
    const host = this.host(hostId);
    for (const a of answer.addresses) {
      const ttlUs = Math.min(a.ttl, this.options.maxTtlS) * 1_000_000;
      this.put(this.keyPrefix(host, netns) + dnsAddressKey(a.address), answer.name, atUs, atUs + ttlUs);
    }
  }

  /** The name of `address` (4 or 16 bytes; IPv4-mapped is IPv4) at `atUs`, or ''. */
  lookup(hostId: string, netns: number, address: Uint8Array, atUs: number): string {
    const host = this.hostIndex.get(hostId);
    if (host === undefined) return '';
    let best: Answer | null = null;
    for (let a = this.byAddress.get(this.keyPrefix(host, netns) + addressDnsKey(address)) ?? null; a !== null; a = a.older) {
      if (a.answeredUs <= atUs && atUs < a.expiresUs && (best === null || a.answeredUs > best.answeredUs)) best = a;
    }
    return best?.name ?? '';
  }

  /** Forgets a host's entries (its partition went to another instance); returns how many. */
  dropHost(hostId: string): number {
    const host = this.hostIndex.get(hostId);
    if (host === undefined) return 0;
    const prefix = `${host}:`;
    const before = this.entryCount;
    for (const [key, head] of this.byAddress) {
      if (!key.startsWith(prefix)) continue;
      this.byAddress.delete(key);
      this.entryCount -= chainLength(head);
    }
    return before - this.entryCount;
  }

  /** The durable form, all hosts' or one host's, oldest first (restore keeps the eviction order). */
  entries(hostId?: string): DnsCacheEntry[] {
    const only = hostId === undefined ? undefined : this.hostIndex.get(hostId);
    if (hostId !== undefined && only === undefined) return [];
    const out: DnsCacheEntry[] = [];
    for (const [key, head] of this.byAddress) {
      const a = key.indexOf(':');
      const b = key.indexOf(':', a + 1);
      const host = Number(key.slice(0, a));
      if (only !== undefined && host !== only) continue;
      const netns = Number(key.slice(a + 1, b));
      const address = Buffer.from(key.slice(b + 1), 'latin1').toString('hex');
      const start = out.length;
      for (let n: Answer | null = head; n !== null; n = n.older) out.push([this.hostIds[host]!, netns, address, n.name, n.answeredUs, n.expiresUs]);
      reverseFrom(out, start); // oldest first within the address too
    }
    return out;
  }

  /**
   * Takes back entries() output (from a changelog), dropping those expired at
   * `nowUs` and any that is not well formed; returns how many were taken.
   */
  load(entries: readonly DnsCacheEntry[], nowUs: number): number {
    let taken = 0;
    for (const e of entries) {
      if (!Array.isArray(e) || e.length !== 6) continue;
      const [hostId, netns, hex, name, answeredUs, expiresUs] = e;
      if (typeof hostId !== 'string' || typeof name !== 'string' || !/^([0-9a-f]{8}|[0-9a-f]{32})$/.test(hex)) continue;
      if (!Number.isSafeInteger(netns) || !Number.isFinite(answeredUs) || !Number.isFinite(expiresUs) || expiresUs <= nowUs) continue;
      this.put(this.keyPrefix(this.host(hostId), netns) + dnsAddressKey(Buffer.from(hex, 'hex')), name, answeredUs, expiresUs);
      taken++;
    }
    return taken;
  }

  /** A cache holding `entries` that are live at `nowUs` (see load()). */
  static restore(entries: readonly DnsCacheEntry[], nowUs: number, options: Partial<DnsCacheOptions> = {}): DnsCache {
    const cache = new DnsCache(options);
    cache.load(entries, nowUs);
    return cache;
  }

  /** A key's start "<host index>:<netns>:" (every key is made here), made again only when the host's netns changes (a lookup per event). */
  private keyPrefix(host: number, netns: number): string {
    if (this.prefixNetns[host] !== netns) {
      this.prefixText[host] = `${host}:${netns}:`;
      this.prefixNetns[host] = netns;
    }
    return this.prefixText[host]!;
  }

  private host(hostId: string): number {
    let h = this.hostIndex.get(hostId);
    if (h === undefined) {
      h = this.hostIds.push(hostId) - 1;
      this.hostIndex.set(hostId, h);
    }
    return h;
  }

  /**
   * The addresses answered or evicted since the last call, as they are now:
   * what the enricher's changelog carries so a restart or rebalance keeps
   * the cache.
   */
  takeChanges(): DnsCacheChange[] {
    const out: DnsCacheChange[] = [];
    for (const key of this.changed) {
      const a = key.indexOf(':');
      const b = key.indexOf(':', a + 1);
      const names: DnsCacheChange['names'] = [];
      for (let n = this.byAddress.get(key) ?? null; n !== null; n = n.older) names.unshift([n.name, n.answeredUs, n.expiresUs]);
      out.push({
        hostId: this.hostIds[Number(key.slice(0, a))]!,
        netns: Number(key.slice(a + 1, b)),
        address: Buffer.from(key.slice(b + 1), 'latin1').toString('hex'),
        names: names.length > 0 ? names : null,
      });
    }
    this.changed.clear();
    return out;
  }

  /** Forgets one address (a changelog tombstone during a restore). */
  forget(hostId: string, netns: number, addressHex: string): void {
    const host = this.hostIndex.get(hostId);
    if (host === undefined) return;
    const key = this.keyPrefix(host, netns) + dnsAddressKey(Buffer.from(addressHex, 'hex'));
    const head = this.byAddress.get(key);
    if (head === undefined) return;
    this.byAddress.delete(key);
    this.entryCount -= chainLength(head);
  }

  private put(key: string, name: string, answeredUs: number, expiresUs: number): void {
    this.changed.add(key);
    const head = this.byAddress.get(key) ?? null;
    const before = chainLength(head);
    const node: Answer = { name, answeredUs, expiresUs, older: null };
    // Relink the names kept: other names still live at this answer, newest
    // first, up to the bound; the same name's entry merges when they overlap.
    let tail = node;
    let kept = 1;
    for (let a = head; a !== null; a = a.older) {
      if (a.name === name) {
        if (a.expiresUs >= answeredUs && a.answeredUs <= expiresUs) {
          node.answeredUs = Math.min(a.answeredUs, answeredUs);
          node.expiresUs = Math.max(a.expiresUs, expiresUs);
        }
      } else if (a.expiresUs > answeredUs && kept < this.options.namesPerAddress) {
        tail.older = a;
        tail = a;
        kept++;
      }
    }
    tail.older = null;
    if (head !== null) this.byAddress.delete(key);
    this.byAddress.set(key, node);
    this.entryCount += kept - before;
    for (const [oldest, chain] of this.byAddress) {
      if (this.entryCount <= this.options.maxEntries || oldest === key) break;
      this.byAddress.delete(oldest);
      this.changed.add(oldest);
      const n = chainLength(chain);
      this.entryCount -= n;
      this.evicted += n;
    }
  }
}

function chainLength(head: Answer | null): number {
  let n = 0;
  for (let a = head; a !== null; a = a.older) n++;
  return n;
}

function reverseFrom<T>(items: T[], start: number): void {
  for (let i = start, j = items.length - 1; i < j; i++, j--) [items[i], items[j]] = [items[j]!, items[i]!];
}
