// The NetworkEvent of one socket record: creds from the record's own task,
// program facts from the process table (or the task's comm when unknown).
import {
  type ConnectionEventType,
  type ConnectionOutcome,
  DEFAULT_CONNECTION_FACTS,
  type NetworkEvent,
  type SecureExecFlag,
  type SocketEvent,
  type SocketEventKind,
} from '@netmon/common';
import { addressText } from './addresses';

export const EVENT_TYPE: Readonly<Record<SocketEventKind, ConnectionEventType>> = {
  ESTABLISH: 'TcpConnectionEstablish',
  ACCEPT: 'TcpConnectionAccept',
  CLOSE: 'TcpConnectionClose',
  LISTEN: 'TcpListen',
};

/** What the errno a connection ended with says of it (Linux errno values). */
const OUTCOME_OF_ERRNO: Readonly<Record<number, ConnectionOutcome>> = {
  111: 'refused', // ECONNREFUSED: RST to the SYN
  110: 'timeout', // ETIMEDOUT: SYN retries exhausted
  113: 'unreachable', // EHOSTUNREACH
  101: 'unreachable', // ENETUNREACH
  112: 'unreachable', // EHOSTDOWN
  64: 'unreachable', // ENONET
  104: 'reset', // ECONNRESET
  32: 'reset', // EPIPE: RST after our FIN
};

/**
 * How a closed connection went (spec: Connection facts), from the kernel's
 * facts: whether the handshake completed and the error it ended with. A raw
 * record without facts (netns 0: an older sensor) gives the spec's default "".
 */
export function outcomeOf(s: SocketEvent): ConnectionOutcome {
  if (s.kind !== 'CLOSE' || s.netns === 0) return '';
  const byError = OUTCOME_OF_ERRNO[s.error];
  if (s.handshake) return byError === 'reset' ? 'reset' : 'established';
  if (byError && byError !== 'reset') return byError;
  // the process closed the socket while its SYN was unanswered
  return 'aborted';
}

/** How long a closed connection lived (ms), 0 when not seen opening. */
export function durationMs(s: SocketEvent): number {
  return s.opened_ktime_us > 0 ? Math.max(0, Math.round((s.task.ktime_us - s.opened_ktime_us) / 1000)) : 0;
}

/** The v2 facts of a socket record (remote_name from the host's DNS answers). */
export function connectionFacts(s: SocketEvent, remoteName: string): NetworkEvent['connection'] {
  if (s.kind !== 'CLOSE') return { ...DEFAULT_CONNECTION_FACTS, remote_name: remoteName, netns: s.netns };
  return {
    outcome: outcomeOf(s),
    duration_ms: durationMs(s),
    bytes_sent: s.bytes_acked,
    bytes_received: s.bytes_received,
    remote_name: remoteName,
    netns: s.netns,
  };
}

/**
 * host id:pid:start time (µs since boot): one process across pid reuse.
 * join() makes one flat string, which the process table keeps
 * (cachedProcessKey): a template's would be a tree of pieces, twice the bytes.
 */
export function processKey(hostId: string, s: SocketEvent): string {
  return [hostId, s.task.pid, s.task.start_time_us].join(':');
}

/** What keeps a process's key between its events (the process table's entry). */
export interface ProcessKeyCache {
  keyStartUs: number;
  key: string;
}

/** processKey(), kept in `cache` (the entry of the socket's process: same host, pid and start ticks) for its next events. */
export function cachedProcessKey(cache: ProcessKeyCache | null, hostId: string, s: SocketEvent): string {
  if (cache === null) return processKey(hostId, s);
  if (cache.keyStartUs !== s.task.start_time_us) {
    cache.key = processKey(hostId, s);
    cache.keyStartUs = s.task.start_time_us;
  }
  return cache.key;
}

const FLAG_ORDER: readonly SecureExecFlag[] = ['SETUID', 'SETGID', 'FILE_CAPS', 'FILELESS_EXEC'];

/** secureexec flags in the spec's order, joined by " | "; "" when none. */
export function formatSecureExec(flags: readonly SecureExecFlag[]): string {
  if (flags.length === 0) return '';
  if (flags.length === 1) return flags[0]!;
  return FLAG_ORDER.filter((f) => flags.includes(f)).join(' | ');
}

/** The file name of a path: what follows the last "/". */
export function basename(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash < 0 ? path : path.slice(slash + 1);
}

/** What ends the args of a process whose arguments the sensor cut (U+2026). */
export const ARGS_TRUNCATED_MARK = '\u2026';

/**
 * The args text: the arguments after argv[0] joined by single spaces, ending
 * with "…" when the sensor cut them at sensor.max_args_bytes (it cuts the
 * array so that the text and the 3-byte mark fit).
 */
export function formatArgs(args: readonly string[], truncated: boolean): string {
  const text = args.join(' ');
  return truncated ? text + ARGS_TRUNCATED_MARK : text;
}

/** The last second formatted: "YYYY-MM-DDTHH:MM:SS." (consecutive records mostly share it). */
let cachedSecond = Number.NaN;
let cachedPrefix = '';
/** The last millisecond and its text: a busy host's records share it, and so does every event of a raw message of quiet hosts' records. */
let cachedMs = Number.NaN;
let cachedText = '';
/** 10000-01-01T00:00:00Z in ms: beyond, toISOString writes a six-digit year. */
const YEAR_10000_MS = 253402300800000;

/** RFC 3339 UTC with milliseconds and Z, from µs since the epoch. */
export function formatTimestamp(timeUs: number): string {
  const ms = Math.floor(timeUs / 1000);
  if (ms === cachedMs) return cachedText;
  if (!(ms >= 0 && ms < YEAR_10000_MS)) return new Date(ms).toISOString();
  const second = Math.floor(ms / 1000);
  if (second !== cachedSecond) {
    cachedPrefix = new Date(second * 1000).toISOString().slice(0, 20);
    cachedSecond = second;
  }
  const frac = ms - second * 1000;
  cachedText = `${cachedPrefix}${frac < 10 ? '00' : frac < 100 ? '0' : ''}${frac}Z`;
  cachedMs = ms;
  return cachedText;
}

/** What the process table knows of a program. */
export interface ProgramFacts {
  filename: string;
  binaryPath: string;
  args: string;
  secureexec: string;
}

/**
 * A socket record's event as it was enriched: the record's socket facts and
 * what was known then (program, container, DNS name, process key), in one
 * flat object, since the process table and the DNS cache change after.
 * eventOf() makes the NetworkEvent; the service's encoder writes the parts
 * straight to bytes (event-encoder.ts), without the five objects of a
 * NetworkEvent per record.
 */
export interface EventParts {
  socket: SocketEvent;
  /** The process table's program facts, else the task's comm and ''. */
  filename: string;
  binaryPath: string;
  args: string;
  secureexec: string;
  containerId: string;
  timeUs: number;
  host: NetworkEvent['host'];
  runId: string;
  seq: number;
  remoteName: string;
  processKey: string;
}

export function eventParts(
  socket: SocketEvent,
  program: ProgramFacts | null,
  containerId: string,
  timeUs: number,
  host: NetworkEvent['host'],
  runId: string,
  seq: number,
  remoteName = '',
  key = processKey(host.id, socket),
): EventParts {
  return {
    socket,
    filename: program ? program.filename : socket.task.comm,
    binaryPath: program ? program.binaryPath : '',
    args: program ? program.args : '',
    secureexec: program ? program.secureexec : '',
    containerId,
    timeUs,
    host,
    runId,
    seq,
    remoteName,
    processKey: key,
  };
}

/** The NetworkEvent of an event's parts. */
export function eventOf(p: EventParts): NetworkEvent {
  const socket = p.socket;
  const t = socket.task;
  return {
    type: 'NetworkEvent',
    process: {
      pid: t.pid,
      tid: t.tid,
      ppid: t.ppid,
      uid: t.uid,
      euid: t.euid,
      auid: t.auid,
      cap_inheritable: t.cap_inheritable,
      cap_permitted: t.cap_permitted,
      cap_effective: t.cap_effective,
      secureexec: p.secureexec,
      filename: p.filename,
      binary_path: p.binaryPath,
      args: p.args,
      container_id: p.containerId,
    },
    network_event: {
      type: EVENT_TYPE[socket.kind],
      saddr: addressText(socket.saddr),
      daddr: addressText(socket.daddr),
      sport: socket.sport,
      dport: socket.dport,
      cookie: socket.cookie,
    },
    timestamp: formatTimestamp(p.timeUs),
    host: p.host,
    source: { run_id: p.runId, seq: p.seq },
    connection: connectionFacts(socket, p.remoteName),
    process_key: p.processKey,
  };
}
