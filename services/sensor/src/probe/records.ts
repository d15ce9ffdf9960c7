// The one decoder of the kernel's records (layout.ts) into the raw contract's
// payloads (schemas/avro/raw-record.avsc): the sensor publishes them and
// `netmon probe` prints them. Addresses stay bytes, the enricher formats them.
import {
  DEFAULT_MAX_ARGS_BYTES,
  type DnsResponse,
  type ProcessExec,
  type ProcessExit,
  type ProcessFork,
  type RawPayloadOf,
  type SecureExecFlag,
  type SocketEvent,
  type TaskFacts,
  formatAddress,
} from '@netmon/common';
import { commandLineArgs, executablePath, limitArgs, splitArgs } from './exec-facts';
import { type Redaction, redactArgs } from './redact';
import {
  AF_INET,
  COMM_LEN,
  DNS,
  EXEC,
  EXIT,
  ExecFlag,
  FORK,
  HDR,
  IPPROTO_TCP,
  Kind,
  MAX_CGROUP_PATH,
  MAX_PATH,
  SOCK,
  SecureExec,
  SockFlag,
  TASK,
  TUPLE,
} from './layout';

/** A contract payload with the wall-clock time of its fact. */
export interface TimedPayload {
  payload: RawPayloadOf;
  /** Wall-clock time of the fact, µs since the Unix epoch. */
  timeUs: number;
}

export interface DecodeOptions {
  /** CLOCK_REALTIME - CLOCK_BOOTTIME, ns (the probe's clockOffsetNs). */
  clockOffsetNs: number;
  /** When the probes started, µs since boot: the open time of connections older than them. */
  startedKtimeUs?: number;
  /** sensor.max_args_bytes */
  maxArgsBytes?: number;
  /** Where cut paths and args are completed from; tests pass a fake one. */
  proc?: string;
  /** Secrets replaced in args (compileRedaction of sensor.redact_args); none when absent. */
  redaction?: Redaction;
}

export function cstr(buf: Buffer, start: number, len: number): string {
  let end = start;
  const limit = start + len;
  while (end < limit && buf[end] !== 0) end++;
  return end === start ? '' : buf.toString('utf8', start, end);
}

/**
 * u64 as a number: exact below 2^53, which cookies, cgroup ids and capability
 * masks stay under; boot-time nanoseconds pass it after 104 days of uptime and
 * then round to a few tens of ns (the same value always rounds the same way).
 */
export function u64(buf: Buffer, at: number): number {
  return buf.readUInt32LE(at + 4) * 4294967296 + buf.readUInt32LE(at);
}

function flagNames<T extends string>(bits: number, table: Record<T, number>): T[] {
  return (Object.keys(table) as T[]).filter((k) => (bits & table[k]) !== 0);
}

function readTask(buf: Buffer, base: number, tsNs: number): TaskFacts {
  return {
    pid: buf.readUInt32LE(base + TASK.pid),
    tid: buf.readUInt32LE(base + TASK.tid),
    ppid: buf.readUInt32LE(base + TASK.ppid),
    uid: buf.readUInt32LE(base + TASK.uid),
    euid: buf.readUInt32LE(base + TASK.euid),
    auid: buf.readUInt32LE(base + TASK.auid),
    cap_inheritable: u64(buf, base + TASK.cap_inheritable),
    cap_permitted: u64(buf, base + TASK.cap_permitted),
    cap_effective: u64(buf, base + TASK.cap_effective),
    comm: cstr(buf, base + TASK.comm, COMM_LEN),
    cgroup_id: u64(buf, base + TASK.cgroup_id),
    cgroup_path: cstr(buf, base + TASK.cgroup_path, MAX_CGROUP_PATH),
    start_time_us: Math.floor(u64(buf, base + TASK.start_time_ns) / 1000),
    ktime_us: Math.floor(tsNs / 1000),
  };
}

/** The socket record kinds (enum netmon_kind) and their names in the raw contract. */
export const SOCKET_KIND = { [Kind.ESTABLISH]: 'ESTABLISH', [Kind.ACCEPT]: 'ACCEPT', [Kind.CLOSE]: 'CLOSE', [Kind.LISTEN]: 'LISTEN' } as const;

/**
 * A socket record's opened_ktime_us: when the socket was seen connecting or
 * accepted; a connection older than the sensor counts from the sensor's start.
 */
export function openedKtimeUs(buf: Buffer, off: number, close: boolean, startedKtimeUs: number | undefined): number {
  const openNs = u64(buf, off + SOCK.open_ns);
  if (openNs > 0) return Math.floor(openNs / 1000);
  return close && buf[off + SOCK.tuple + TUPLE.flags]! & SockFlag.UNTRACKED ? (startedKtimeUs ?? 0) : 0;
}

function socketEvent(buf: Buffer, off: number, kind: SocketEvent['kind'], tsNs: number, options: DecodeOptions): SocketEvent {
  const tuple = off + SOCK.tuple;
  // The kernel gives IPv4-mapped sockets as AF_INET already.
  const inet = buf.readUInt16LE(tuple + TUPLE.family) === AF_INET;
  const len = inet ? 4 : 16;
  const flags = buf[tuple + TUPLE.flags]!;
  const close = kind === 'CLOSE';
  return {
    kind,
    task: readTask(buf, off + SOCK.task, tsNs),
    family: inet ? 'INET' : 'INET6',
    saddr: buf.subarray(tuple + TUPLE.saddr, tuple + TUPLE.saddr + len),
    daddr: buf.subarray(tuple + TUPLE.daddr, tuple + TUPLE.daddr + len),
    sport: buf.readUInt16LE(tuple + TUPLE.sport),
    dport: buf.readUInt16LE(tuple + TUPLE.dport),
    cookie: u64(buf, off + SOCK.cookie),
    netns: buf.readUInt32LE(off + SOCK.netns),
    opened_ktime_us: openedKtimeUs(buf, off, close, options.startedKtimeUs),
    handshake: (flags & SockFlag.HANDSHAKE) !== 0,
    error: buf.readUInt16LE(off + SOCK.err),
    state: close ? buf[tuple + TUPLE.state]! : 0,
    bytes_acked: u64(buf, off + SOCK.bytes_acked),
    bytes_received: u64(buf, off + SOCK.bytes_received),
  };
}

function execEvent(buf: Buffer, off: number, tsNs: number, options: DecodeOptions): ProcessExec {
  const task = readTask(buf, off + EXEC.task, tsNs);
  const flags = buf[off + EXEC.flags]!;
  const proc = options.proc ?? '/proc';
  const maxArgsBytes = options.maxArgsBytes ?? DEFAULT_MAX_ARGS_BYTES;
  // A path the kernel could not copy whole would match the wrong prefix rule.
  const binaryPath = flags & ExecFlag.PATH_TRUNCATED ? executablePath(proc, task.pid, task.start_time_us) : cstr(buf, off + EXEC.path, MAX_PATH);
  const argsLen = buf.readUInt16LE(off + EXEC.args_len);
  let args = splitArgs(buf.subarray(off + EXEC.args, off + EXEC.args + argsLen));
  let cut = (flags & ExecFlag.ARGS_TRUNCATED) !== 0;
  if (cut && argsLen < maxArgsBytes) {
    const whole = commandLineArgs(proc, task.pid, task.start_time_us);
    if (whole !== undefined) {
      args = whole;
      cut = false;
    }
  }
  // Secrets go before anything else sees the args (and before the cut, so a
  // cut cannot leave half a secret the rules no longer recognise).
  const filename = binaryPath.slice(binaryPath.lastIndexOf('/') + 1) || task.comm;
  const limited = limitArgs(options.redaction ? redactArgs(args, filename, options.redaction) : args, maxArgsBytes, cut);
  return {
    task,
    snapshot: false,
    binary_path: binaryPath,
    args: limited.args,
    args_truncated: limited.truncated,
    secureexec: flagNames<SecureExecFlag>(buf.readUInt32LE(off + EXEC.secureexec), SecureExec),
  };
}

function forkEvent(buf: Buffer, off: number, tsNs: number): ProcessFork {
  return {
    task: readTask(buf, off + FORK.task, tsNs),
    parent_pid: buf.readUInt32LE(off + FORK.parent_pid),
    parent_start_time_us: Math.floor(u64(buf, off + FORK.parent_start_time_ns) / 1000),
  };
}

function exitEvent(buf: Buffer, off: number): ProcessExit {
  return {
    pid: buf.readUInt32LE(off + EXIT.pid),
    tid: buf.readUInt32LE(off + EXIT.tid),
    start_time_us: Math.floor(u64(buf, off + EXIT.start_time_ns) / 1000),
    exit_code: buf.readUInt32LE(off + EXIT.exit_code),
  };
}

function dnsResponse(buf: Buffer, off: number): DnsResponse {
  const len = buf.readUInt16LE(off + DNS.len);
  return {
    netns: buf.readUInt32LE(off + DNS.netns),
    transport: buf[off + DNS.transport] === IPPROTO_TCP ? 'TCP' : 'UDP',
    payload: buf.subarray(off + DNS.payload, off + DNS.payload + len),
    truncated: buf.readUInt16LE(off + DNS.orig_len) > len,
  };
}

/** The payload of one record at `off`; undefined for a kind this decoder does not know. */
export function decodeRecord(buf: Buffer, off: number, kind: number, tsNs: number, options: DecodeOptions): RawPayloadOf | undefined {
  const socketKind = SOCKET_KIND[kind as keyof typeof SOCKET_KIND];
  if (socketKind) return { kind: 'socket', value: socketEvent(buf, off, socketKind, tsNs, options) };
  if (kind === Kind.EXEC) return { kind: 'exec', value: execEvent(buf, off, tsNs, options) };
  if (kind === Kind.FORK) return { kind: 'fork', value: forkEvent(buf, off, tsNs) };
  if (kind === Kind.EXIT) return { kind: 'exit', value: exitEvent(buf, off) };
  if (kind === Kind.DNS) return { kind: 'dns', value: dnsResponse(buf, off) };
  return undefined;
}

/** Calls visit for each whole record of a batch of packed records (each starts with its size), in order. */
export function forEachRecord(buf: Buffer, visit: (off: number, kind: number, tsNs: number) => void): void {
  for (let off = 0; off + HDR.size <= buf.length; ) {
    const size = buf.readUInt16LE(off + HDR.recsize);
    if (size < HDR.size || off + size > buf.length) break; // torn batch: never expected
    visit(off, buf.readUInt16LE(off + HDR.kind), u64(buf, off + HDR.ts_ns));
    off += size;
  }
}

/** Wall-clock µs since the Unix epoch of a record's boot-time ns. */
export function wallTimeUs(tsNs: number, options: DecodeOptions): number {
  return Math.floor((tsNs + options.clockOffsetNs) / 1000);
}

/** One batch of packed records → payloads with wall-clock times. */
export function decodeBatch(buf: Buffer, options: DecodeOptions): TimedPayload[] {
  const out: TimedPayload[] = [];
  forEachRecord(buf, (off, kind, tsNs) => {
    const payload = decodeRecord(buf, off, kind, tsNs, options);
    if (payload) out.push({ payload, timeUs: wallTimeUs(tsNs, options) });
  });
  return out;
}

/** Number of records in a batch without decoding them. */
export function countRecords(buf: Buffer): number {
  let n = 0;
  for (let off = 0; off + HDR.size <= buf.length; n++) {
    const size = buf.readUInt16LE(off + HDR.recsize);
    if (size < HDR.size) break;
    off += size;
  }
  return n;
}

/**
 * The JSON line `netmon probe` prints: the payload as the raw contract has
 * it, addresses as text, with its kind and time.
 */
export function payloadJson({ payload, timeUs }: TimedPayload): Record<string, unknown> {
  const value =
    payload.kind === 'socket'
      ? { ...payload.value, saddr: formatAddress(payload.value.saddr), daddr: formatAddress(payload.value.daddr) }
      : payload.kind === 'dns'
        ? { ...payload.value, payload: payload.value.payload.toString('hex') }
        : payload.value;
  return { record: payload.kind, timestamp: new Date(Math.floor(timeUs / 1000)).toISOString(), time_us: timeUs, ...value };
}
