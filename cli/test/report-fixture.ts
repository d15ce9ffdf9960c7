// A known archive for the report's tests: NetworkEvents (v2, and one v1 object
// as the archiver wrote them before v2) laid out as the archiver lays them out
// (its dataKey and hourOf: dt=/hour= folders, one gzip NDJSON object per hour),
// every v2 event checked against the Avro contract first.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { DEFAULT_CONNECTION_FACTS, type NetworkEvent, networkEventCodec } from '@netmon/common';
import { dataKey, hourOf } from '@netmon/archiver';

export const HOSTILE_BINARY = '<script>alert(1)</script>';
export const HOSTILE_ARGS = '"><img src=x onerror=alert(2)>';
export const HOSTILE_NAME = '<img src=x onerror=alert(3)>.example';
export const CONTAINER = '3f4e8a9c1b2d4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f';
/** The window the tests report on: the 24 hours before UNTIL. */
export const UNTIL = '2025-06-02T00:00:00.000Z';
export const SINCE = '24h';

interface E {
  t: string;
  type: NetworkEvent['network_event']['type'];
  bin: string;
  daddr?: string;
  dport?: number;
  sport?: number;
  host?: string;
  container?: string;
  args?: string;
  outcome?: NetworkEvent['connection']['outcome'];
  sent?: number;
  received?: number;
  name?: string;
  v1?: boolean;
}

function event(e: E, seq: number): NetworkEvent {
  const host = e.host ?? 'web-17';
  const pid = 1000 + (seq % 50);
  return {
    type: 'NetworkEvent',
    process: {
      pid,
      tid: pid,
      ppid: 1,
      uid: 1000,
      euid: 1000,
      auid: 4294967295,
      cap_inheritable: 0,
      cap_permitted: 0,
      cap_effective: 0,
      secureexec: '',
      filename: e.bin.slice(e.bin.lastIndexOf('/') + 1),
      binary_path: e.bin,
      args: e.args ?? '',
      container_id: e.container ?? '',
    },
    network_event: {
      type: e.type,
      saddr: '10.0.0.5',
      daddr: e.daddr ?? (e.type === 'TcpListen' ? '0.0.0.0' : '203.0.113.7'),
      sport: e.sport ?? 40000 + seq,
      dport: e.dport ?? (e.type === 'TcpListen' ? 0 : 443),
      cookie: 5000 + seq,
    },
    timestamp: e.t,
    host: { hostname: host, id: `id-${host}` },
    source: { run_id: 'report-test', seq },
    connection: {
      ...DEFAULT_CONNECTION_FACTS,
      outcome: e.outcome ?? (e.type === 'TcpConnectionClose' ? 'established' : ''),
      bytes_sent: e.sent ?? 0,
      bytes_received: e.received ?? 0,
      remote_name: e.name ?? '',
      netns: 4026531840,
    },
    process_key: `id-${host}:${pid}:1748685951282000`,
  };
}

const CURL = '/usr/bin/curl';
const NGINX = '/usr/sbin/nginx';
const NEWTOOL = '/usr/local/bin/newtool';

/** The known events, in time order; `inWindow` says which fall in [UNTIL - 24h, UNTIL). */
export const KNOWN: E[] = [
  // before the window: curl and nginx are known binaries
  { t: '2025-05-30T12:00:00.000Z', type: 'TcpConnectionEstablish', bin: CURL, name: 'api.example.com' },
  { t: '2025-05-30T12:00:05.000Z', type: 'TcpListen', bin: NGINX, sport: 80 },
  { t: '2025-05-31T23:59:59.999Z', type: 'TcpConnectionEstablish', bin: CURL, daddr: '192.0.2.1' },
  // in the window
  { t: '2025-06-01T00:00:00.000Z', type: 'TcpListen', bin: NGINX, sport: 80 },
  { t: '2025-06-01T10:00:01.000Z', type: 'TcpConnectionEstablish', bin: CURL, name: 'api.example.com' },
  { t: '2025-06-01T10:00:02.500Z', type: 'TcpConnectionClose', bin: CURL, name: 'api.example.com', sent: 120, received: 4096 },
  { t: '2025-06-01T10:20:00.000Z', type: 'TcpConnectionEstablish', bin: CURL, name: 'api.example.com', host: 'web-18' },
  { t: '2025-06-01T10:20:01.000Z', type: 'TcpConnectionClose', bin: CURL, name: 'api.example.com', host: 'web-18', sent: 80, received: 1_048_576 },
  { t: '2025-06-01T11:05:00.000Z', type: 'TcpConnectionEstablish', bin: CURL, daddr: '198.51.100.20', name: 'cdn.example.net' },
  { t: '2025-06-01T12:00:00.000Z', type: 'TcpConnectionAccept', bin: NGINX, daddr: '192.0.2.50', dport: 51000, sport: 80 },
  { t: '2025-06-01T12:00:00.300Z', type: 'TcpConnectionAccept', bin: NGINX, daddr: '192.0.2.51', dport: 51001, sport: 80 },
  { t: '2025-06-01T12:00:00.600Z', type: 'TcpConnectionAccept', bin: NGINX, daddr: '192.0.2.52', dport: 51002, sport: 80 },
  { t: '2025-06-01T12:00:05.000Z', type: 'TcpConnectionClose', bin: NGINX, daddr: '192.0.2.50', dport: 51000, sport: 80, sent: 2000, received: 300 },
  {
    t: '2025-06-01T13:30:00.000Z',
    type: 'TcpConnectionEstablish',
    bin: NEWTOOL,
    daddr: '198.51.100.9',
    dport: 22,
    container: CONTAINER,
    host: 'web-18',
    args: '--scan 198.51.100.9',
  },
  {
    t: '2025-06-01T13:30:00.010Z',
    type: 'TcpConnectionClose',
    bin: NEWTOOL,
    daddr: '198.51.100.9',
    dport: 22,
    container: CONTAINER,
    host: 'web-18',
    outcome: 'refused',
  },
  { t: '2025-06-01T13:31:00.000Z', type: 'TcpConnectionEstablish', bin: NEWTOOL, daddr: '198.51.100.9', dport: 22, container: CONTAINER, host: 'web-18' },
  {
    t: '2025-06-01T13:31:00.010Z',
    type: 'TcpConnectionClose',
    bin: NEWTOOL,
    daddr: '198.51.100.9',
    dport: 22,
    container: CONTAINER,
    host: 'web-18',
    outcome: 'refused',
  },
  { t: '2025-06-01T14:00:00.000Z', type: 'TcpConnectionEstablish', bin: HOSTILE_BINARY, args: HOSTILE_ARGS, daddr: '203.0.113.66', name: HOSTILE_NAME },
  { t: '2025-06-01T14:00:03.000Z', type: 'TcpConnectionClose', bin: HOSTILE_BINARY, args: HOSTILE_ARGS, daddr: '203.0.113.66', name: HOSTILE_NAME, sent: 7 },
  // a v1 object (the archiver before NetworkEvent v2): no connection facts
  { t: '2025-06-01T15:00:00.000Z', type: 'TcpConnectionEstablish', bin: '/usr/bin/wget', daddr: '198.51.100.20', v1: true },
  { t: '2025-06-01T23:59:59.999Z', type: 'TcpConnectionEstablish', bin: CURL, name: 'api.example.com' },
  // after the window
  { t: '2025-06-02T00:00:00.000Z', type: 'TcpConnectionEstablish', bin: CURL, name: 'api.example.com' },
  { t: '2025-06-02T01:00:00.000Z', type: 'TcpConnectionEstablish', bin: '/usr/bin/later' },
];

export const inWindow = (e: { t: string }) => e.t >= '2025-06-01T00:00:00.000Z' && e.t < UNTIL;

/** The archived lines of KNOWN, in order. */
export function knownLines(): string[] {
  const codec = networkEventCodec();
  return KNOWN.map((e, seq) => {
    const ev = event(e, seq);
    codec.decode(codec.encode(ev)); // a valid NetworkEvent of the current contract
    if (!e.v1) return JSON.stringify(ev);
    const { connection: _c, process_key: _k, ...v1 } = ev;
    return JSON.stringify(v1);
  });
}

/**
 * Writes KNOWN under `dir` as the archiver would with s3.prefix "root": one
 * object per hour touched; returns the objects' keys relative to the prefix.
 */
export function writeKnownArchive(dir: string, prefix = 'root'): { key: string; body: Buffer }[] {
  const lines = knownLines();
  const groups = new Map<string, { first: number; lines: string[]; part: { dt: string; hour: string } }>();
  KNOWN.forEach((e, offset) => {
    const part = hourOf(e.t)!;
    const id = `${part.dt}/${part.hour}`;
    const g = groups.get(id) ?? { first: offset, lines: [], part };
    g.lines.push(lines[offset]!);
    groups.set(id, g);
  });
  const objects: { key: string; body: Buffer }[] = [];
  for (const g of groups.values()) {
    const key = dataKey(prefix, 'netmon.events.v1', 0, g.part, g.first);
    const body = gzipSync(`${g.lines.join('\n')}\n`);
    const file = path.join(dir, key.slice(prefix.length + 1));
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, body);
    objects.push({ key, body });
  }
  return objects;
}
