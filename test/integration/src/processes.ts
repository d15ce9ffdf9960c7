// Child processes of the tests: started with their output captured, stopped
// (or killed) and awaited, never left behind.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';

export const REPO_ROOT = path.resolve(__dirname, '../../../..');
export const NETMON_BIN = path.join(REPO_ROOT, 'bin/netmon.js');

/**
 * The sensor's capabilities, all it needs as a non-root user: BPF and PERFMON
 * load the programs and read kernel memory, NET_ADMIN attaches the cgroup
 * socket hooks, SYS_PTRACE reads /proc/PID/exe for the start-up snapshot. The
 * least-privilege test runs the sensor with exactly these; the manifests test
 * checks that the DaemonSet and the systemd unit grant exactly these.
 */
export const SENSOR_CAPS = ['BPF', 'PERFMON', 'NET_ADMIN', 'SYS_PTRACE'] as const;

/** bpffs at /sys/fs/bpf, where pinned probes live (mounted at boot on most distributions; not always in CI). */
export function ensureBpffs(): void {
  const mounted = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[1] === '/sys/fs/bpf' && l.split(' ')[2] === 'bpf');
  if (!mounted) execFileSync('mount', ['-t', 'bpf', 'bpf', '/sys/fs/bpf']);
}

export interface Child {
  proc: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
  /** Sends the signal and waits for the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of running) p.kill('SIGKILL');
});

export function startChild(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Child {
  const proc = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(proc);
  let out = '';
  let err = '';
  proc.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  proc.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => {
    proc.on('exit', (code, signal) => {
      running.delete(proc);
      resolve(code ?? (signal ? -1 : null));
    });
  });
  return {
    proc,
    stdout: () => out,
    stderr: () => err,
    exited,
    stop: (signal = 'SIGTERM') => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
}

/** `node bin/netmon.js ARGS` as a child. */
export function startNetmon(args: string[], env: NodeJS.ProcessEnv = {}): Child {
  return startChild(process.execPath, [NETMON_BIN, ...args], env);
}

/** The traffic generator (src/traffic.ts) as a child. */
export function startTraffic(count: number, intervalMs: number, host = '127.0.0.1'): Child {
  return startChild(process.execPath, [path.join(__dirname, 'traffic.js'), '--count', String(count), '--interval-ms', String(intervalMs), '--host', host]);
}
