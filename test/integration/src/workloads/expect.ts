// Expectations of the fidelity tests: what really happened (from the
// programs' own logs) stated as the events the spec says must come, matched to
// the kernel's events by pid, ports and time, then checked field by field.
// A check returns its mismatches as readable lines (empty: all good).
import type { NetworkEvent } from '@netmon/common';

export type EventType = NetworkEvent['network_event']['type'];

/** A predicate on a field, for values not known exactly (e.g. cut args). */
export interface Matcher {
  matcher: true;
  describe: string;
  /** `e`: the whole event, for values that depend on another field (process_key on host.id). */
  test(value: unknown, e: NetworkEvent): boolean;
}
export const matcher = (describe: string, test: (value: unknown, e: NetworkEvent) => boolean): Matcher => ({ matcher: true, describe, test });
const isMatcher = (v: unknown): v is Matcher => typeof v === 'object' && v !== null && (v as Matcher).matcher === true;

export type Field =
  | 'pid'
  | 'tid'
  | 'ppid'
  | 'uid'
  | 'euid'
  | 'secureexec'
  | 'filename'
  | 'binary_path'
  | 'args'
  | 'container_id'
  | 'saddr'
  | 'daddr'
  | 'sport'
  | 'dport'
  | 'cookie'
  // NetworkEvent v2: connection.* and process_key
  | 'outcome'
  | 'duration_ms'
  | 'bytes_sent'
  | 'bytes_received'
  | 'remote_name'
  | 'netns'
  | 'process_key';
export type Want = Partial<Record<Field, unknown>>;

/**
 * The facts of one event, not of the connection's other events: an Establish's
 * or Accept's expectation for them is not carried over to its Close (which has
 * its own outcome, duration and bytes), while netns and process_key are.
 */
export const PER_EVENT_FIELDS: readonly Field[] = ['outcome', 'duration_ms', 'bytes_sent', 'bytes_received'];

/** One event that must be there: found by type, pid, sport, dport and time window. */
export interface Expect {
  what: string;
  type: EventType;
  pid: number;
  sport: number;
  dport: number;
  /** Wall-clock ms window for the event's timestamp (the kernel reuses ports). */
  from: number;
  to: number;
  /** Expected fields (values or matchers), checked on the event and on its Close. */
  want: Want;
  /** Threads the event may come from (the event's tid must be one of them). */
  tidIn?: number[];
  /** Its Close: exactly one Close with the same cookie, from this process, with the same four-tuple. */
  close?: { pid: number; tidIn?: number[]; want?: Want /** Single-host mode: wall-clock ms of the close(), for the promptness check. */; at?: number };
  /** Single-host mode: the line must appear less than PROMPT_MS after this wall-clock ms. */
  promptFrom?: number;
}

/** Events that must not be there: none of `types` from `pid`. */
export interface Absent {
  what: string;
  pid: number;
  types: EventType[];
}

export const PROMPT_MS = 1500;

export function field(e: NetworkEvent, f: Field): unknown {
  if (f === 'process_key') return e.process_key;
  if (f in e.network_event) return (e.network_event as Record<string, unknown>)[f];
  // an event without the v2 part (an old writer) has none of its fields: undefined, a mismatch
  if (e.connection && f in e.connection) return (e.connection as Record<string, unknown>)[f];
  return (e.process as Record<string, unknown>)[f];
}

/** `value` within `tolerance` of `expected` (both numbers). */
export const near = (expected: number, tolerance: number, what = '') =>
  matcher(`${Math.round(expected)} ± ${tolerance}${what ? ` (${what})` : ''}`, (v) => typeof v === 'number' && Math.abs(v - expected) <= tolerance);

const short = (s: string, n = 70) => (s.length > n ? `${s.slice(0, n)}…(${Buffer.byteLength(s)} bytes)` : s);

/** One event on one line, for mismatch reports. */
export function describeEvent(e: NetworkEvent, arrival?: number): string {
  const n = e.network_event;
  const p = e.process;
  const late = arrival === undefined ? '' : ` line+${arrival - Date.parse(e.timestamp)}ms`;
  const c = e.connection;
  const facts =
    n.type === 'TcpConnectionClose'
      ? c
        ? ` outcome=${JSON.stringify(c.outcome)} ${c.duration_ms}ms sent=${c.bytes_sent} received=${c.bytes_received}`
        : ' (no connection facts)'
      : '';
  return (
    `${n.type.replace('TcpConnection', '')} ${e.timestamp.slice(11)}${late} pid=${p.pid} tid=${p.tid} ppid=${p.ppid} ` +
    `${JSON.stringify(n.saddr)}:${n.sport} -> ${JSON.stringify(n.daddr)}:${n.dport} cookie=${n.cookie}${facts} ` +
    `file=${JSON.stringify(p.filename)} bin=${JSON.stringify(short(p.binary_path))} args=${JSON.stringify(short(p.args))} cid=${JSON.stringify(p.container_id)}`
  );
}

const show = (v: unknown) => (typeof v === 'string' ? JSON.stringify(short(v, 120)) : String(v));

function compareFields(e: NetworkEvent, want: Want, label: string): string[] {
  const out: string[] = [];
  for (const [f, expected] of Object.entries(want) as [Field, unknown][]) {
    const got = field(e, f);
    if (isMatcher(expected)) {
      if (!expected.test(got, e)) out.push(`${label}: ${f} should be ${expected.describe}, got ${show(got)}`);
    } else if (got !== expected) {
      out.push(`${label}: ${f} expected ${show(expected)}, got ${show(got)}`);
    }
  }
  return out;
}

const ofPid = (events: readonly NetworkEvent[], pid: number) => events.filter((e) => e.process.pid === pid);
const inWindow = (e: NetworkEvent, from: number, to: number) => {
  const t = Date.parse(e.timestamp);
  return t >= from && t <= to;
};

/** The events an expectation names (normally exactly one). */
export function findExpected(events: readonly NetworkEvent[], x: Expect): NetworkEvent[] {
  return events.filter(
    (e) =>
      e.process.pid === x.pid &&
      e.network_event.type === x.type &&
      e.network_event.sport === x.sport &&
      e.network_event.dport === x.dport &&
      inWindow(e, x.from, x.to),
  );
}

function listing(events: readonly NetworkEvent[], arrival?: (e: NetworkEvent) => number | undefined, max = 12): string {
  if (events.length === 0) return '      (none)';
  const lines = events.slice(0, max).map((e) => `      ${describeEvent(e, arrival?.(e))}`);
  if (events.length > max) lines.push(`      … and ${events.length - max} more`);
  return lines.join('\n');
}

/** Mismatches of one expectation (and of its Close). */
export function checkExpect(events: readonly NetworkEvent[], x: Expect, arrival?: (e: NetworkEvent) => number | undefined): string[] {
  const label = `${x.what} [${x.type.replace('TcpConnection', '')} pid ${x.pid} sport ${x.sport} dport ${x.dport}]`;
  const hits = findExpected(events, x);
  if (hits.length === 0) {
    const samePorts = ofPid(events, x.pid).filter(
      (e) => e.network_event.type === x.type && (e.network_event.sport === x.sport || e.network_event.dport === x.dport),
    );
    return [
      `${label}: no such event between ${new Date(x.from).toISOString().slice(11)} and ${new Date(x.to).toISOString().slice(11)}` +
        `\n    ${x.type} events of pid ${x.pid} with either port, any time:\n${listing(samePorts, arrival)}` +
        `\n    all events of pid ${x.pid}:\n${listing(ofPid(events, x.pid), arrival)}`,
    ];
  }
  const out: string[] = [];
  if (hits.length > 1) out.push(`${label}: ${hits.length} events, expected one:\n${listing(hits, arrival)}`);
  const e = hits[0]!;
  out.push(...compareFields(e, { ...x.want }, label));
  if (x.tidIn && !x.tidIn.includes(e.process.tid)) out.push(`${label}: tid should be one of ${x.tidIn.join(', ')}, got ${e.process.tid}`);
  if (x.promptFrom !== undefined && arrival) {
    const at = arrival(e);
    if (at === undefined) out.push(`${label}: its arrival time is unknown`);
    else if (at - x.promptFrom >= PROMPT_MS) {
      out.push(`${label}: published ${Math.round(at - x.promptFrom)} ms after the connection, expected < ${PROMPT_MS} ms (held back?)`);
    }
  }
  if (x.close) {
    const cookie = e.network_event.cookie;
    const closes = events.filter((c) => c.network_event.type === 'TcpConnectionClose' && c.network_event.cookie === cookie);
    const closeLabel = `${label} → its Close`;
    if (closes.length !== 1) {
      const byPort = ofPid(events, x.close.pid).filter(
        (c) => c.network_event.type === 'TcpConnectionClose' && Date.parse(c.timestamp) >= x.from && Date.parse(c.timestamp) <= x.to + 60_000,
      );
      out.push(
        `${closeLabel}: ${closes.length} Close events with cookie ${cookie}, expected exactly one` +
          (closes.length > 1 ? `:\n${listing(closes, arrival)}` : '') +
          `\n    the open event: ${describeEvent(e)}` +
          `\n    Close events of pid ${x.close.pid} from then on:\n${listing(byPort, arrival)}`,
      );
    } else {
      const c = closes[0]!;
      const tuple: Want = { pid: x.close.pid, sport: x.sport, dport: x.dport };
      for (const f of ['saddr', 'daddr'] as const) if (f in x.want) tuple[f] = x.want[f];
      const { pid: _pid, tid: _tid, ...rest } = x.want;
      const processWant: Want = rest;
      for (const f of PER_EVENT_FIELDS) delete processWant[f];
      const sameProcess = x.close.pid === x.pid;
      const inherited = sameProcess ? processWant : {};
      out.push(...compareFields(c, { ...inherited, ...tuple, ...(x.close.want ?? {}) }, closeLabel));
      if (sameProcess && c.process_key !== e.process_key)
        out.push(`${closeLabel}: process_key ${show(c.process_key)} differs from the open event's ${show(e.process_key)} (same process)`);
      if (x.close.tidIn && !x.close.tidIn.includes(c.process.tid))
        out.push(`${closeLabel}: tid should be one of ${x.close.tidIn.join(', ')}, got ${c.process.tid}`);
      if (Date.parse(c.timestamp) < Date.parse(e.timestamp)) out.push(`${closeLabel}: timestamp ${c.timestamp} is before the open event's ${e.timestamp}`);
      const closedAt = x.close.at;
      if (closedAt !== undefined && arrival) {
        const at = arrival(c);
        if (at === undefined) out.push(`${closeLabel}: its arrival time is unknown`);
        else if (at - closedAt >= PROMPT_MS)
          out.push(`${closeLabel}: published ${Math.round(at - closedAt)} ms after the close, expected < ${PROMPT_MS} ms (held back?)`);
      }
    }
  }
  return out;
}

/** Mismatches of one absence: every event of the pid with one of the types. */
export function checkAbsent(events: readonly NetworkEvent[], a: Absent, arrival?: (e: NetworkEvent) => number | undefined): string[] {
  const found = ofPid(events, a.pid).filter((e) => a.types.includes(e.network_event.type));
  if (found.length === 0) return [];
  return [
    `${a.what} [pid ${a.pid}]: expected no ${a.types.map((t) => t.replace('TcpConnection', '')).join('/')} event, found ${found.length}:\n${listing(found, arrival)}`,
  ];
}
