// TypeScript shapes of the Avro contracts in schemas/avro. The .avsc files are
// the source of truth; test/contracts.test.ts checks these against them.

/** Facts of the task that caused a kernel event. */
export interface TaskFacts {
  pid: number;
  tid: number;
  ppid: number;
  uid: number;
  euid: number;
  auid: number;
  cap_inheritable: number;
  cap_permitted: number;
  cap_effective: number;
  comm: string;
  cgroup_id: number;
  /** Cgroup v2 path from the hierarchy root ("/" for the root cgroup). */
  cgroup_path: string;
  start_time_us: number;
  ktime_us: number;
}

export type SocketEventKind = 'ESTABLISH' | 'ACCEPT' | 'CLOSE' | 'LISTEN';
export type AddressFamily = 'INET' | 'INET6';
export type SecureExecFlag = 'SETUID' | 'SETGID' | 'FILE_CAPS' | 'FILELESS_EXEC';

export interface SocketEvent {
  kind: SocketEventKind;
  task: TaskFacts;
  family: AddressFamily;
  saddr: Buffer;
  daddr: Buffer;
  sport: number;
  dport: number;
  cookie: number;
  /** Facts of the socket (raw v2; defaults 0/false in v1 records). */
  netns: number;
  /** On a CLOSE: µs since boot when the socket was seen connecting or accepted; 0 if not seen. */
  opened_ktime_us: number;
  /** On a CLOSE: the TCP handshake had completed. */
  handshake: boolean;
  /** On a CLOSE: the errno the connection ended with, 0 for none. */
  error: number;
  /** On a CLOSE: the TCP state when the process released the socket. */
  state: number;
  bytes_acked: number;
  bytes_received: number;
}

export interface ProcessExec {
  task: TaskFacts;
  snapshot: boolean;
  binary_path: string;
  args: string[];
  args_truncated: boolean;
  secureexec: SecureExecFlag[];
}

/** A new process (not a thread): until it execs it runs its parent's program. */
export interface ProcessFork {
  /** The child, as the kernel saw it at the fork. */
  task: TaskFacts;
  parent_pid: number;
  parent_start_time_us: number;
}

export interface ProcessExit {
  pid: number;
  tid: number;
  start_time_us: number;
  exit_code: number;
}

/** A DNS response seen on the host, unparsed (the enricher parses it). */
export interface DnsResponse {
  netns: number;
  transport: 'UDP' | 'TCP';
  payload: Buffer;
  truncated: boolean;
}

export interface SensorStatus {
  seen: number;
  lost_kernel: number;
  spooled: number;
  dropped: number;
  spool_bytes: number;
}

/**
 * The payload union, in avsc's wrapped form (Avro's JSON encoding of a union):
 * an object with one key, the branch's full name.
 */
export type RawPayload =
  | { 'netmon.raw.SocketEvent': SocketEvent }
  | { 'netmon.raw.ProcessExec': ProcessExec }
  | { 'netmon.raw.ProcessFork': ProcessFork }
  | { 'netmon.raw.ProcessExit': ProcessExit }
  | { 'netmon.raw.SensorStatus': SensorStatus }
  | { 'netmon.raw.DnsResponse': DnsResponse };

/** A payload unwrapped into a tagged value, for switch statements. */
export type RawPayloadOf =
  | { kind: 'socket'; value: SocketEvent }
  | { kind: 'exec'; value: ProcessExec }
  | { kind: 'fork'; value: ProcessFork }
  | { kind: 'exit'; value: ProcessExit }
  | { kind: 'status'; value: SensorStatus }
  | { kind: 'dns'; value: DnsResponse };

const BRANCH_KIND = {
  'netmon.raw.SocketEvent': 'socket',
  'netmon.raw.ProcessExec': 'exec',
  'netmon.raw.ProcessFork': 'fork',
  'netmon.raw.ProcessExit': 'exit',
  'netmon.raw.SensorStatus': 'status',
  'netmon.raw.DnsResponse': 'dns',
} as const;
type BranchName = keyof typeof BRANCH_KIND;
const KIND_BRANCH = Object.fromEntries(Object.entries(BRANCH_KIND).map(([b, k]) => [k, b])) as Record<RawPayloadOf['kind'], BranchName>;

export function unwrapPayload(payload: RawPayload): RawPayloadOf {
  const [branch, value] = Object.entries(payload)[0] as [BranchName, never];
  return { kind: BRANCH_KIND[branch], value };
}

export function wrapPayload(tagged: RawPayloadOf): RawPayload {
  return { [KIND_BRANCH[tagged.kind]]: tagged.value } as RawPayload;
}

export interface RawRecord {
  host_id: string;
  hostname: string;
  run_id: string;
  seq: number;
  time_us: number;
  payload: RawPayload;
}

export type ConnectionEventType = 'TcpConnectionEstablish' | 'TcpConnectionAccept' | 'TcpConnectionClose' | 'TcpListen';

/** How a connection went (NetworkEvent v2), on a Close; "" on the other types. */
export type ConnectionOutcome = '' | 'established' | 'refused' | 'timeout' | 'unreachable' | 'reset' | 'aborted';

/** The enriched event, field for field as shared/spec/netmon.md, in its order. */
export interface NetworkEvent {
  type: 'NetworkEvent';
  process: {
    pid: number;
    tid: number;
    ppid: number;
    uid: number;
    euid: number;
    auid: number;
    cap_inheritable: number;
    cap_permitted: number;
    cap_effective: number;
    secureexec: string;
    filename: string;
    binary_path: string;
    args: string;
    container_id: string;
  };
  network_event: {
    type: ConnectionEventType;
    saddr: string;
    daddr: string;
    sport: number;
    dport: number;
    cookie: number;
  };
  timestamp: string;
  host: { hostname: string; id: string };
  source: { run_id: string; seq: number };
  /** NetworkEvent v2 (shared/spec/netmon.md, "Connection facts"). */
  connection: {
    outcome: ConnectionOutcome;
    duration_ms: number;
    bytes_sent: number;
    bytes_received: number;
    remote_name: string;
    netns: number;
  };
  process_key: string;
}

/**
 * A sensor's heartbeat on the status topic (schemas/avro/sensor-status.avsc):
 * the raw SensorStatus record's counters with its time, host and source, as
 * the enricher publishes them and the archiver stores them (one JSON line each).
 */
export interface SensorStatusRecord {
  timestamp: string;
  host: { hostname: string; id: string };
  source: { run_id: string; seq: number };
  seen: number;
  lost_kernel: number;
  spooled: number;
  dropped: number;
  spool_bytes: number;
}

/** The spec's defaults of the v2 fields: what an Establish, Accept or Listen carries before its facts, and what a v1 record reads as. */
export const DEFAULT_CONNECTION_FACTS: Readonly<NetworkEvent['connection']> = Object.freeze({
  outcome: '',
  duration_ms: 0,
  bytes_sent: 0,
  bytes_received: 0,
  remote_name: '',
  netns: 0,
});

/** A SocketEvent's facts when none are known: what a raw v1 record reads as, and what an Establish, Accept or Listen carries. */
export const NO_SOCKET_FACTS: Readonly<Pick<SocketEvent, 'netns' | 'opened_ktime_us' | 'handshake' | 'error' | 'state' | 'bytes_acked' | 'bytes_received'>> =
  Object.freeze({
    netns: 0,
    opened_ktime_us: 0,
    handshake: false,
    error: 0,
    state: 0,
    bytes_acked: 0,
    bytes_received: 0,
  });
