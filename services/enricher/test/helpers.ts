// Builders of typed raw records for the tests.
import {
  NO_SOCKET_FACTS,
  type ProcessExec,
  type ProcessFork,
  type RawRecord,
  type SecureExecFlag,
  type SocketEvent,
  type SocketEventKind,
  type TaskFacts,
} from '@netmon/common';

export const HOST = { id: '4c4c4544004e3510804bb4c04f4a3332', hostname: 'web-17' };
const RUN = '0b6f2c1e-6a53-4c6e-9d36-1d0f0f5a7c11';
/** 2025-05-31T10:05:51.282Z in µs. */
export const T0 = 1748685951282000;

export function task(pid: number, startTimeUs: number, over: Partial<TaskFacts> = {}): TaskFacts {
  return {
    pid,
    tid: pid,
    ppid: 1,
    uid: 1000,
    euid: 1000,
    auid: 1000,
    cap_inheritable: 0,
    cap_permitted: 0,
    cap_effective: 0,
    comm: 'comm',
    cgroup_id: 1,
    cgroup_path: '/user.slice/user-1000.slice/session-1.scope',
    start_time_us: startTimeUs,
    ktime_us: 5_000_000_000,
    ...over,
  };
}

let seq = 0;
export function record(payload: RawRecord['payload'], over: Partial<RawRecord> = {}): RawRecord {
  const s = seq++;
  return { host_id: HOST.id, hostname: HOST.hostname, run_id: RUN, seq: s, time_us: T0 + s * 1000, payload, ...over };
}

export function exec(
  t: TaskFacts,
  binaryPath: string,
  args: string[] = [],
  secureexec: SecureExecFlag[] = [],
  snapshot = false,
  over: Partial<RawRecord> = {},
): RawRecord {
  const value: ProcessExec = { task: t, snapshot, binary_path: binaryPath, args, args_truncated: false, secureexec };
  return record({ 'netmon.raw.ProcessExec': value }, over);
}

/** A fork record: `child` (its own task) forked by the process (parentPid, parentStartUs). */
export function fork(child: TaskFacts, parentPid: number, parentStartUs: number, over: Partial<RawRecord> = {}): RawRecord {
  const value: ProcessFork = { task: child, parent_pid: parentPid, parent_start_time_us: parentStartUs };
  return record({ 'netmon.raw.ProcessFork': value }, over);
}

export function exit(pid: number, startTimeUs: number, over: Partial<RawRecord> = {}): RawRecord {
  return record({ 'netmon.raw.ProcessExit': { pid, tid: pid, start_time_us: startTimeUs, exit_code: 0 } }, over);
}

export function socket(t: TaskFacts, kind: SocketEventKind = 'ESTABLISH', over: Partial<RawRecord> = {}, sock: Partial<SocketEvent> = {}): RawRecord {
  const value: SocketEvent = {
    kind,
    task: t,
    family: 'INET',
    saddr: Buffer.from([10, 0, 0, 1]),
    daddr: Buffer.from([93, 184, 216, 34]),
    sport: 33340,
    dport: 80,
    cookie: 4109,
    ...NO_SOCKET_FACTS,
    ...sock,
  };
  return record({ 'netmon.raw.SocketEvent': value }, over);
}

export function status(over: Partial<RawRecord> = {}): RawRecord {
  return record({ 'netmon.raw.SensorStatus': { seen: 10, lost_kernel: 0, spooled: 0, dropped: 0, spool_bytes: 0 } }, over);
}
