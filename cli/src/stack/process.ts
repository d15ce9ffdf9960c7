// Long-running server processes: started detached (own session, stdio to a log file,
// so they outlive the node process that started them), found again by pid file and
// by a marker in their command line, stopped with SIGTERM then SIGKILL.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export interface DetachedSpec {
  command: string;
  args: string[];
  cwd: string;
  logFile: string;
  pidFile: string;
  env?: NodeJS.ProcessEnv;
}

/** Starts a process in its own session with stdout+stderr appended to logFile. */
export async function spawnDetached(spec: DetachedSpec): Promise<number> {
  fs.mkdirSync(path.dirname(spec.logFile), { recursive: true });
  fs.mkdirSync(path.dirname(spec.pidFile), { recursive: true });
  const fd = fs.openSync(spec.logFile, 'a');
  try {
    fs.writeSync(fd, `\n=== ${new Date().toISOString()} netmon stack starts: ${spec.command} ${spec.args.join(' ')}\n`);
    const child = spawn(spec.command, spec.args, {
      cwd: spec.cwd,
      detached: true,
      stdio: ['ignore', fd, fd],
      env: spec.env ?? process.env,
    });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
    child.unref();
    const pid = child.pid!;
    fs.writeFileSync(spec.pidFile, `${pid}\n`);
    return pid;
  } finally {
    fs.closeSync(fd);
  }
}

/** True while pid names a live (not zombie) process. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

function cmdline(pid: number): string[] {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return [];
  }
}

/** Pids of live processes whose command line holds every one of the markers. */
export function findByMarkers(markers: string[]): number[] {
  const found: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    const args = cmdline(pid);
    if (markers.every((m) => args.includes(m)) && isAlive(pid)) found.push(pid);
  }
  return found;
}

export function readPidFile(pidFile: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** The pid of our running process: from the pid file if it still is ours, else by marker. */
export function runningPid(pidFile: string, markers: string[]): number | undefined {
  const pid = readPidFile(pidFile);
  if (pid !== undefined && isAlive(pid) && markers.every((m) => cmdline(pid).includes(m))) return pid;
  return findByMarkers(markers)[0];
}

async function waitExit(pid: number, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (!isAlive(pid)) return true;
    await sleep(100);
  }
  return !isAlive(pid);
}

/** Waits (a little) until a dead process is reaped, so no zombie shows in `pgrep`. */
async function waitReaped(pid: number, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (fs.existsSync(`/proc/${pid}`) && Date.now() < until) await sleep(50);
}

/** SIGTERM, then SIGKILL after graceMs. Resolves once the process is gone. */
export async function stopPid(pid: number, graceMs: number): Promise<'stopped' | 'killed'> {
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
  };
  signal('SIGTERM');
  if (await waitExit(pid, graceMs)) {
    await waitReaped(pid);
    return 'stopped';
  }
  signal('SIGKILL');
  if (await waitExit(pid, 10_000)) {
    await waitReaped(pid);
    return 'killed';
  }
  throw new Error(`process ${pid} survived SIGKILL`);
}

/** True when something accepts TCP connections on host:port. */
export function portOpen(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (open: boolean) => {
      socket.destroy();
      resolve(open);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * A lock file so that two `stack up|down` never run at once on one state dir.
 * A lock left by a dead process is taken over.
 */
export async function withLock<T>(lockFile: string, waitMs: number, body: () => Promise<T>): Promise<T> {
  fs.mkdirSync(path.dirname(lockFile), { recursive: true });
  const until = Date.now() + waitMs;
  for (;;) {
    try {
      fs.writeFileSync(lockFile, `${process.pid}\n`, { flag: 'wx' });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = readPidFile(lockFile);
      if (owner === undefined || !isAlive(owner)) {
        fs.rmSync(lockFile, { force: true });
        continue;
      }
      if (Date.now() > until) {
        throw new Error(`another netmon stack command (pid ${owner}) holds ${lockFile}`);
      }
      await sleep(250);
    }
  }
  try {
    return await body();
  } finally {
    fs.rmSync(lockFile, { force: true });
  }
}

/**
 * Stops every process of one service: its pid file's, and any other its
 * markers find (SIGTERM, SIGKILL after graceMs); says each as `<name>:
 * stopped pid …`, removes the pid file, returns how many it stopped.
 */
export async function stopService(name: string, pidFile: string, markers: string[], graceMs: number, log: (msg: string) => void): Promise<number> {
  const pids = new Set<number>(findByMarkers(markers));
  const fromFile = runningPid(pidFile, markers);
  if (fromFile !== undefined) pids.add(fromFile);
  for (const pid of pids) {
    const started = Date.now();
    const how = await stopPid(pid, graceMs);
    log(
      `${name}: stopped pid ${pid} (${how === 'stopped' ? 'SIGTERM' : `SIGKILL after ${graceMs / 1000} s`}, ${((Date.now() - started) / 1000).toFixed(1)} s)`,
    );
  }
  fs.rmSync(pidFile, { force: true });
  return pids.size;
}
