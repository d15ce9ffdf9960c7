// The sensor's source of kernel facts: the probes, their packed batches
// decoded straight into the raw contract's payloads. Addresses stay bytes
// (the enricher formats them), so the per-host sensor does the least work.
import type { AttachMode, ProcessExec, SecureExecFlag, SocketEvent, TaskFacts } from '@netmon/common';
import { cstr, flagNames, readTask, u64 } from '../probe/decode';
import { AF_INET, AF_INET6, EXEC, EXIT, ExecFlag, HDR, Kind, MAX_PATH, SOCK, SecureExec, SockFlag } from '../probe/layout';
import { NetmonProbe } from '../probe/probe';
import type { KernelSource, StartSource, TimedPayload } from './source';

const SOCKET_KIND = { [Kind.ESTABLISH]: 'ESTABLISH', [Kind.ACCEPT]: 'ACCEPT', [Kind.CLOSE]: 'CLOSE' } as const;

function contractTask(buf: Buffer, base: number, tsNs: number): TaskFacts {
  const t = readTask(buf, base);
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
    cgroup_path: t.cgroupName,
    start_time_us: Math.floor(t.startTimeNs / 1000),
    ktime_us: Math.floor(tsNs / 1000),
  };
}

/** Address bytes as the contract wants them: 4 for IPv4 (mapped ones included), else 16. */
function address(buf: Buffer, at: number, family: number, mapped: boolean): Buffer {
  if (family === AF_INET) return buf.subarray(at, at + 4);
  return mapped ? buf.subarray(at + 12, at + 16) : buf.subarray(at, at + 16);
}

/** One batch of packed records → payloads with wall-clock times. */
export function batchToPayloads(buf: Buffer, clockOffsetNs: number): TimedPayload[] {
  const out: TimedPayload[] = [];
  for (let off = 0; off + HDR.size <= buf.length; ) {
    const size = buf.readUInt16LE(off + HDR.recsize);
    if (size < HDR.size || off + size > buf.length) break;
    const kind = buf.readUInt16LE(off + HDR.kind);
    const tsNs = u64(buf, off + HDR.ts_ns);
    const timeUs = Math.floor((tsNs + clockOffsetNs) / 1000);
    const socketKind = SOCKET_KIND[kind as keyof typeof SOCKET_KIND];
    if (socketKind) {
      const family = buf.readUInt16LE(off + SOCK.family);
      const mapped = family === AF_INET6 && (buf[off + SOCK.flags]! & SockFlag.V4MAPPED) !== 0;
      const value: SocketEvent = {
        kind: socketKind,
        task: contractTask(buf, off + SOCK.task, tsNs),
        family: family === AF_INET6 ? 'INET6' : 'INET',
        saddr: address(buf, off + SOCK.saddr, family, mapped),
        daddr: address(buf, off + SOCK.daddr, family, mapped),
        sport: buf.readUInt16LE(off + SOCK.sport),
        dport: buf.readUInt16LE(off + SOCK.dport),
        cookie: u64(buf, off + SOCK.cookie),
      };
      out.push({ payload: { kind: 'socket', value }, timeUs });
    } else if (kind === Kind.EXEC) {
      const argsLen = buf.readUInt16LE(off + EXEC.args_len);
      const args = argsLen === 0 ? [] : buf.toString('utf8', off + EXEC.args, off + EXEC.args + argsLen).split('\0');
      if (args.at(-1) === '') args.pop();
      const value: ProcessExec = {
        task: contractTask(buf, off + EXEC.task, tsNs),
        snapshot: false,
        binary_path: cstr(buf, off + EXEC.path, MAX_PATH),
        args,
        args_truncated: (buf[off + EXEC.flags]! & ExecFlag.ARGS_TRUNCATED) !== 0,
        secureexec: flagNames(buf.readUInt32LE(off + EXEC.secureexec), SecureExec) as SecureExecFlag[],
      };
      out.push({ payload: { kind: 'exec', value }, timeUs });
    } else if (kind === Kind.EXIT) {
      const status = buf.readUInt32LE(off + EXIT.exit_code);
      const value = {
        pid: buf.readUInt32LE(off + EXIT.pid),
        tid: buf.readUInt32LE(off + EXIT.tid),
        start_time_us: Math.floor(u64(buf, off + EXIT.start_time_ns) / 1000),
        exit_code: status,
      };
      out.push({ payload: { kind: 'exit', value }, timeUs });
    }
    off += size;
  }
  return out;
}

/** Starts the probes; their batches arrive as payloads. */
export function kernelSource(options: { mode: AttachMode; ringBufferBytes: number }): StartSource {
  return (onPayloads) => {
    let offset = 0;
    const probe = NetmonProbe.start({
      mode: options.mode,
      ringBufferBytes: options.ringBufferBytes,
      onBatch: (batch) => onPayloads(batchToPayloads(batch, offset)),
    });
    // Batches arrive through the event loop, so never before this line runs.
    offset = Number(probe.clockOffsetNs);
    const source: KernelSource = {
      mode: probe.mode,
      reason: probe.reason,
      lost: () => probe.lost().total,
      stop: () => probe.stop(),
    };
    return source;
  };
}
