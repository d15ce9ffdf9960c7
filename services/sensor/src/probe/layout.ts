// The one TypeScript definition of the records in bpf/netmon.h. The C++ bridge
// static_asserts the same sizes and offsets (native/src/addon.cc), so a change
// to the header that is not mirrored here fails the native build.

export const COMM_LEN = 16;
export const MAX_CGROUP_NAME = 128;
export const MAX_PATH = 512;
export const MAX_ARGS = 1024;

/** enum netmon_kind */
export const Kind = {
  ESTABLISH: 1,
  ACCEPT: 2,
  CLOSE: 3,
  EXEC: 4,
  EXIT: 5,
} as const;
export const KIND_MAX = 6;

/** enum netmon_mode (0 = auto, chosen by the loader) */
export const ModeCode = { auto: 0, fentry: 1, kprobe: 2, tracepoint: 3 } as const;

export const SockFlag = { V4MAPPED: 0x1 } as const;
export const SecureExec = { SETUID: 0x1, SETGID: 0x2, FILE_CAPS: 0x4, FILELESS_EXEC: 0x8 } as const;
export const ExecFlag = { ARGS_TRUNCATED: 0x1, PATH_TRUNCATED: 0x2 } as const;

export const AF_INET = 2;
export const AF_INET6 = 10;

/** struct netmon_hdr */
export const HDR = { size: 16, ts_ns: 0, kind: 8, recsize: 10 } as const;

/** struct netmon_task, relative to its start */
export const TASK = {
  size: 208,
  start_time_ns: 0,
  cgroup_id: 8,
  cap_inheritable: 16,
  cap_permitted: 24,
  cap_effective: 32,
  pid: 40,
  tid: 44,
  ppid: 48,
  uid: 52,
  euid: 56,
  auid: 60,
  comm: 64,
  cgroup_name: 80,
} as const;

/** struct netmon_sock_event */
export const SOCK = {
  size: 272,
  task: 16,
  saddr: 224,
  daddr: 240,
  cookie: 256,
  sport: 264,
  dport: 266,
  family: 268,
  flags: 270,
  state: 271,
} as const;

/** struct netmon_exec_event */
export const EXEC = {
  size: 1768,
  task: 16,
  secureexec: 224,
  args_len: 228,
  flags: 230,
  path: 232,
  args: 744,
} as const;

/** struct netmon_exit_event */
export const EXIT = { size: 40, start_time_ns: 16, pid: 24, tid: 28, exit_code: 32 } as const;

/** TCP states (include/net/tcp_states.h) */
export const TCP_STATES = [
  '',
  'ESTABLISHED',
  'SYN_SENT',
  'SYN_RECV',
  'FIN_WAIT1',
  'FIN_WAIT2',
  'TIME_WAIT',
  'CLOSE',
  'CLOSE_WAIT',
  'LAST_ACK',
  'LISTEN',
  'CLOSING',
  'NEW_SYN_RECV',
] as const;
