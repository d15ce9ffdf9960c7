// The processes already running when the sensor starts, read from /proc, as
// ProcessExec records with snapshot: true, so their connections are attributed.
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { DEFAULT_MAX_ARGS_BYTES, type ProcessExec, type SecureExecFlag } from '@netmon/common';
import { US_PER_TICK, limitArgs, parseStartTicks, splitArgs } from '../probe/exec-facts';
import { type Redaction, redactArgs } from '../probe/redact';

export function parseStatus(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  return fields;
}

/** The cgroup v2 path (`0::/path`), or the first hierarchy's on v1. */
export function parseCgroup(text: string): string {
  const lines = text.trim().split('\n');
  const v2 = lines.find((l) => l.startsWith('0::'));
  return (v2 ?? lines[0] ?? '').split(':').slice(2).join(':');
}

const hexCaps = (value: string | undefined) => Number.parseInt(value ?? '0', 16);

/** One process's snapshot record, or undefined if it vanished or is a kernel thread. */
export function snapshotProcess(pid: number, proc = '/proc', maxArgsBytes = DEFAULT_MAX_ARGS_BYTES, redaction: Redaction = []): ProcessExec | undefined {
  const dir = `${proc}/${pid}`;
  try {
    const status = parseStatus(readFileSync(`${dir}/status`, 'utf8'));
    const cmdline = readFileSync(`${dir}/cmdline`);
    if (cmdline.length === 0) return undefined; // kernel thread (or a zombie)
    let exe = '';
    try {
      exe = readlinkSync(`${dir}/exe`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined; // kernel thread or gone
      throw err;
    }
    const [uid, euid] = (status.get('Uid') ?? '0 0').split(/\s+/).map(Number);
    const [gid, egid] = (status.get('Gid') ?? '0 0').split(/\s+/).map(Number);
    let auid = 4294967295;
    try {
      auid = Number(readFileSync(`${dir}/loginuid`, 'utf8'));
    } catch {}
    const path = exe.replace(/ \(deleted\)$/, '');
    const args = limitArgs(redactArgs(splitArgs(cmdline).slice(1), path.slice(path.lastIndexOf('/') + 1), redaction), maxArgsBytes, false);
    const secureexec: SecureExecFlag[] = [];
    if (uid !== euid) secureexec.push('SETUID');
    if (gid !== egid) secureexec.push('SETGID');
    const fileless = exe.endsWith(' (deleted)') || exe.startsWith('/memfd:');
    if (fileless) secureexec.push('FILELESS_EXEC');
    const startTicks = parseStartTicks(readFileSync(`${dir}/stat`, 'utf8'));
    return {
      task: {
        pid,
        tid: pid,
        ppid: Number(status.get('PPid') ?? 0),
        uid: uid ?? 0,
        euid: euid ?? 0,
        auid,
        cap_inheritable: hexCaps(status.get('CapInh')),
        cap_permitted: hexCaps(status.get('CapPrm')),
        cap_effective: hexCaps(status.get('CapEff')),
        comm: status.get('Name') ?? '',
        cgroup_id: 0,
        cgroup_path: parseCgroup(readFileSync(`${dir}/cgroup`, 'utf8')),
        start_time_us: startTicks * US_PER_TICK,
        ktime_us: 0,
      },
      snapshot: true,
      binary_path: path,
      args: args.args,
      args_truncated: args.truncated,
      secureexec,
    };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ESRCH') return undefined;
    throw err;
  }
}

/** Every running user-space process, and how many could not be read. */
export function snapshotProcesses(proc = '/proc', maxArgsBytes = DEFAULT_MAX_ARGS_BYTES, redaction: Redaction = []): ProcessExec[] & { unreadable?: number } {
  const out: ProcessExec[] & { unreadable?: number } = [];
  let unreadable = 0;
  for (const name of readdirSync(proc)) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const p = snapshotProcess(Number(name), proc, maxArgsBytes, redaction);
      if (p) out.push(p);
    } catch {
      unreadable++; // EACCES without CAP_SYS_PTRACE: counted and logged by the caller
    }
  }
  out.unreadable = unreadable;
  return out;
}
