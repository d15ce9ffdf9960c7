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

export type SocketEventKind = 'ESTABLISH' | 'ACCEPT' | 'CLOSE';
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
  | { 'netmon.raw.SensorStatus': SensorStatus };

/** A payload unwrapped into a tagged value, for switch statements. */
export type RawPayloadOf =
  | { kind: 'socket'; value: SocketEvent }
  | { kind: 'exec'; value: ProcessExec }
  | { kind: 'fork'; value: ProcessFork }
  | { kind: 'exit'; value: ProcessExit }
  | { kind: 'status'; value: SensorStatus };

const BRANCH_KIND = {
  'netmon.raw.SocketEvent': 'socket',
  'netmon.raw.ProcessExec': 'exec',
  'netmon.raw.ProcessFork': 'fork',
  'netmon.raw.ProcessExit': 'exit',
  'netmon.raw.SensorStatus': 'status',
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

export type ConnectionEventType = 'TcpConnectionEstablish' | 'TcpConnectionAccept' | 'TcpConnectionClose';

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
}
