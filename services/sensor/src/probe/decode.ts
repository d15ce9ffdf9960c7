// Decoder of the packed records the bridge hands over (layout.ts), into typed
// events. Pure: no I/O, no native code.
import { formatAddress } from '@netmon/common';
import {
  AF_INET,
  AF_INET6,
  EXEC,
  EXIT,
  ExecFlag,
  HDR,
  Kind,
  MAX_PATH,
  SecureExec,
  SOCK,
  SockFlag,
  TASK,
  TCP_STATES,
  COMM_LEN,
  MAX_CGROUP_NAME,
} from './layout';

/** Facts of the task in context when the kernel saw the event. */
export interface TaskFacts {
  pid: number;
  tid: number;
  ppid: number;
  uid: number;
  euid: number;
  /** login uid; 4294967295 when unset */
  auid: number;
  capInheritable: number;
  capPermitted: number;
  capEffective: number;
  comm: string;
  cgroupId: number;
  /** leaf cgroup v2 directory name ('' for the root) */
  cgroupName: string;
  /** group leader's start_boottime, ns since boot (/proc/PID/stat starttime * 1e9 / HZ) */
  startTimeNs: number;
}

interface Stamped {
  /** CLOCK_BOOTTIME ns when the kernel saw the event */
  tsNs: number;
}

export type SocketEventKind = 'establish' | 'accept' | 'close';

export interface SocketEvent extends Stamped {
  kind: SocketEventKind;
  task: TaskFacts;
  /** socket family: 4 (AF_INET) or 6 (AF_INET6; IPv4-mapped ones included) */
  family: 4 | 6;
  /** AF_INET6 socket talking IPv4: the addresses below are the IPv4 ones */
  v4mapped: boolean;
  /** local address (IPv4 dotted quad, or RFC 5952 IPv6) */
  saddr: string;
  /** remote address */
  daddr: string;
  sport: number;
  dport: number;
  cookie: number;
  /** TCP state when seen (e.g. SYN_SENT for establish) */
  state: string;
}

export interface ExecEvent extends Stamped {
  kind: 'exec';
  task: TaskFacts;
  binaryPath: string;
  /** arguments after argv[0] */
  args: string[];
  argsTruncated: boolean;
  pathTruncated: boolean;
  /** SETUID, SETGID, FILE_CAPS, FILELESS_EXEC */
  secureexec: string[];
}

export interface ExitEvent extends Stamped {
  kind: 'exit';
  pid: number;
  tid: number;
  startTimeNs: number;
  /** exit code (status >> 8) */
  exitCode: number;
  /** terminating signal, 0 if none */
  signal: number;
}

export type ProbeEvent = SocketEvent | ExecEvent | ExitEvent;

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

export function readTask(buf: Buffer, base: number): TaskFacts {
  return {
    pid: buf.readUInt32LE(base + TASK.pid),
    tid: buf.readUInt32LE(base + TASK.tid),
    ppid: buf.readUInt32LE(base + TASK.ppid),
    uid: buf.readUInt32LE(base + TASK.uid),
    euid: buf.readUInt32LE(base + TASK.euid),
    auid: buf.readUInt32LE(base + TASK.auid),
    capInheritable: u64(buf, base + TASK.cap_inheritable),
    capPermitted: u64(buf, base + TASK.cap_permitted),
    capEffective: u64(buf, base + TASK.cap_effective),
    comm: cstr(buf, base + TASK.comm, COMM_LEN),
    cgroupId: u64(buf, base + TASK.cgroup_id),
    cgroupName: cstr(buf, base + TASK.cgroup_name, MAX_CGROUP_NAME),
    startTimeNs: u64(buf, base + TASK.start_time_ns),
  };
}

/** Address text as the spec writes it; the kernel flags IPv4-mapped sockets. */
function addr(buf: Buffer, at: number, family: number, mapped: boolean): string {
  if (family === AF_INET) return formatAddress(buf.subarray(at, at + 4));
  if (mapped) return formatAddress(buf.subarray(at + 12, at + 16));
  return formatAddress(buf.subarray(at, at + 16));
}

export function flagNames(bits: number, table: Record<string, number>): string[] {
  return Object.entries(table)
    .filter(([, v]) => (bits & v) !== 0)
    .map(([k]) => k);
}

const SOCKET_KINDS: Record<number, SocketEventKind> = {
  [Kind.ESTABLISH]: 'establish',
  [Kind.ACCEPT]: 'accept',
  [Kind.CLOSE]: 'close',
};

/** Decodes one record at `off`; undefined for a kind this decoder does not know. */
export function decodeRecord(buf: Buffer, off: number): ProbeEvent | undefined {
  const kind = buf.readUInt16LE(off + HDR.kind);
  const tsNs = u64(buf, off + HDR.ts_ns);
  const sockKind = SOCKET_KINDS[kind];
  if (sockKind) {
    const family = buf.readUInt16LE(off + SOCK.family);
    const flags = buf[off + SOCK.flags];
    const mapped = family === AF_INET6 && (flags & SockFlag.V4MAPPED) !== 0;
    return {
      kind: sockKind,
      tsNs,
      task: readTask(buf, off + SOCK.task),
      family: family === AF_INET6 ? 6 : 4,
      v4mapped: mapped,
      saddr: addr(buf, off + SOCK.saddr, family, mapped),
      daddr: addr(buf, off + SOCK.daddr, family, mapped),
      sport: buf.readUInt16LE(off + SOCK.sport),
      dport: buf.readUInt16LE(off + SOCK.dport),
      cookie: u64(buf, off + SOCK.cookie),
      state: TCP_STATES[buf[off + SOCK.state]] ?? String(buf[off + SOCK.state]),
    };
  }
  if (kind === Kind.EXEC) {
    const flags = buf[off + EXEC.flags];
    const argsLen = buf.readUInt16LE(off + EXEC.args_len);
    const raw = buf.toString('utf8', off + EXEC.args, off + EXEC.args + argsLen);
    const args = raw.length === 0 ? [] : raw.split('\0');
    if (args.length > 0 && args[args.length - 1] === '') args.pop();
    return {
      kind: 'exec',
      tsNs,
      task: readTask(buf, off + EXEC.task),
      binaryPath: cstr(buf, off + EXEC.path, MAX_PATH),
      args,
      argsTruncated: (flags & ExecFlag.ARGS_TRUNCATED) !== 0,
      pathTruncated: (flags & ExecFlag.PATH_TRUNCATED) !== 0,
      secureexec: flagNames(buf.readUInt32LE(off + EXEC.secureexec), SecureExec),
    };
  }
  if (kind === Kind.EXIT) {
    const status = buf.readUInt32LE(off + EXIT.exit_code);
    return {
      kind: 'exit',
      tsNs,
      pid: buf.readUInt32LE(off + EXIT.pid),
      tid: buf.readUInt32LE(off + EXIT.tid),
      startTimeNs: u64(buf, off + EXIT.start_time_ns),
      exitCode: (status >> 8) & 0xff,
      signal: status & 0x7f,
    };
  }
  return undefined;
}

/** Decodes a batch of packed records (each starts with its size). */
export function decodeBatch(buf: Buffer): ProbeEvent[] {
  const out: ProbeEvent[] = [];
  let off = 0;
  while (off + HDR.size <= buf.length) {
    const size = buf.readUInt16LE(off + HDR.recsize);
    if (size < HDR.size || off + size > buf.length) break; // torn batch: never expected
    const ev = decodeRecord(buf, off);
    if (ev) out.push(ev);
    off += size;
  }
  return out;
}

/** Number of records in a batch without decoding them. */
export function countRecords(buf: Buffer): number {
  let n = 0;
  let off = 0;
  while (off + HDR.size <= buf.length) {
    const size = buf.readUInt16LE(off + HDR.recsize);
    if (size < HDR.size) break;
    off += size;
    n++;
  }
  return n;
}

/** Wall clock of a CLOCK_BOOTTIME stamp, given CLOCK_REALTIME - CLOCK_BOOTTIME (ns). */
export function wallClock(tsNs: number, offsetNs: bigint): Date {
  return new Date(Math.floor((tsNs + Number(offsetNs)) / 1e6));
}

function taskJson(t: TaskFacts): Record<string, unknown> {
  return {
    pid: t.pid,
    tid: t.tid,
    ppid: t.ppid,
    uid: t.uid,
    euid: t.euid,
    auid: t.auid,
    cap_inheritable: t.capInheritable,
    cap_permitted: t.capPermitted,
    cap_effective: t.capEffective,
    comm: t.comm,
    cgroup_id: t.cgroupId,
    cgroup_name: t.cgroupName,
    start_time_ns: t.startTimeNs,
  };
}

/** The JSON object `netmon probe` prints for an event (snake_case, numbers where exact). */
export function eventToJson(ev: ProbeEvent, offsetNs: bigint): Record<string, unknown> {
  const base = { kind: ev.kind, timestamp: wallClock(ev.tsNs, offsetNs).toISOString(), ts_ns: ev.tsNs };
  switch (ev.kind) {
    case 'exec':
      return {
        ...base,
        ...taskJson(ev.task),
        binary_path: ev.binaryPath,
        filename: ev.binaryPath.slice(ev.binaryPath.lastIndexOf('/') + 1),
        args: ev.args.join(' '),
        args_truncated: ev.argsTruncated,
        secureexec: ev.secureexec.join(' | '),
      };
    case 'exit':
      return {
        ...base,
        pid: ev.pid,
        tid: ev.tid,
        start_time_ns: ev.startTimeNs,
        exit_code: ev.exitCode,
        signal: ev.signal,
      };
    default:
      return {
        ...base,
        ...taskJson(ev.task),
        family: ev.family === 6 ? 'inet6' : 'inet',
        v4mapped: ev.v4mapped,
        saddr: ev.saddr,
        sport: ev.sport,
        daddr: ev.daddr,
        dport: ev.dport,
        cookie: ev.cookie,
        state: ev.state,
      };
  }
}
