// The one TypeScript definition of the records in bpf/netmon.h. The C++ bridge
// static_asserts the same sizes and offsets (native/src/addon.cc), so a change
// to the header that is not mirrored here fails the native build.

export const COMM_LEN = 16;
export const MAX_CGROUP_PATH = 256;
export const MAX_PATH = 4096;
export const MAX_ARGS = 4096;

/** enum netmon_kind */
export const Kind = {
  ESTABLISH: 1,
  ACCEPT: 2,
  CLOSE: 3,
  EXEC: 4,
  EXIT: 5,
  FORK: 6,
  LISTEN: 7,
  DNS: 8,
} as const;
export const KIND_MAX = 9;

/** enum netmon_mode (0 = auto, chosen by the loader) */
export const ModeCode = { auto: 0, fentry: 1, kprobe: 2, tracepoint: 3 } as const;

export const SockFlag = { V4MAPPED: 0x1, UNTRACKED: 0x2, HANDSHAKE: 0x4 } as const;
export const SecureExec = { SETUID: 0x1, SETGID: 0x2, FILE_CAPS: 0x4, FILELESS_EXEC: 0x8 } as const;
export const ExecFlag = { ARGS_TRUNCATED: 0x1, PATH_TRUNCATED: 0x2 } as const;

export const AF_INET = 2;
export const AF_INET6 = 10;

/** struct netmon_hdr */
export const HDR = { size: 16, ts_ns: 0, kind: 8, recsize: 10 } as const;

/** struct netmon_task, relative to its start */
export const TASK = {
  size: 336,
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
  cgroup_path: 80,
} as const;

/** struct netmon_tuple, relative to its start */
export const TUPLE = { size: 40, saddr: 0, daddr: 16, sport: 32, dport: 34, family: 36, flags: 38, state: 39 } as const;

/** struct netmon_sock_event */
export const SOCK = { size: 432, task: 16, tuple: 352, cookie: 392, open_ns: 400, bytes_acked: 408, bytes_received: 416, netns: 424, err: 428 } as const;

/** struct netmon_exec_event */
export const EXEC = {
  size: 8552,
  task: 16,
  secureexec: 352,
  args_len: 356,
  flags: 358,
  path: 360,
  args: 4456,
} as const;

/** struct netmon_fork_event */
export const FORK = { size: 368, task: 16, parent_start_time_ns: 352, parent_pid: 360 } as const;

/** struct netmon_dns_event */
export const DNS = { size: 1264, netns: 16, len: 20, orig_len: 22, transport: 24, payload: 32 } as const;
export const IPPROTO_TCP = 6;

/** struct netmon_exit_event */
export const EXIT = { size: 40, start_time_ns: 16, pid: 24, tid: 28, exit_code: 32 } as const;
