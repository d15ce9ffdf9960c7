// The real programs of the fidelity workloads: where the fixtures are, the
// interpreters and tools on this host (by their real paths), C fixtures
// compiled at test time, and the JSON lines each program logs on stdout.
import { execFileSync, spawnSync } from 'node:child_process';
import { realpathSync } from 'node:fs';
import path from 'node:path';
import { type Child, REPO_ROOT, startChild } from '../processes';
import { waitUntil } from '../wait';

export const FIXTURES = path.join(REPO_ROOT, 'test/integration/fixtures');
export const NETPROG = path.join(FIXTURES, 'netprog.py');
export const SERVER_JAVA = path.join(FIXTURES, 'Server.java');

/** The absolute path of a command on PATH, '' when absent. */
export function which(cmd: string): string {
  try {
    return execFileSync('sh', ['-c', `command -v ${cmd}`])
      .toString()
      .trim();
  } catch {
    return '';
  }
}

let python: string | undefined;
/**
 * The real python3 binary (symlinks and shims such as pyenv's resolved): the
 * workloads run it directly, so its path is the `binary_path` to expect.
 */
export function realPython(): string {
  if (python === undefined) {
    const exe = execFileSync('python3', ['-c', 'import os, sys; print(os.path.realpath(sys.executable))']).toString().trim();
    python = realpathSync(exe);
  }
  return python;
}

/** `python3 netprog.py ARGS` as a child (the real binary, no shim). */
export function netprog(args: string[]): Child {
  return startChild(realPython(), [NETPROG, ...args]);
}

/** The args the sensor should report for `netprog ARGS`: argv after argv[0], joined by spaces. */
export const netprogArgs = (args: string[]) => [NETPROG, ...args].join(' ');

/** Compiles a C fixture; the binary's path, or why it could not be built. */
export function compileC(source: string, out: string, libs: string[] = []): { path: string } | { error: string } {
  const cc = which('cc') || which('gcc');
  if (!cc) return { error: 'no C compiler (cc) on PATH' };
  const r = spawnSync(cc, ['-O2', '-o', out, path.join(FIXTURES, source), ...libs.map((l) => `-l${l}`)], { encoding: 'utf8' });
  if (r.status !== 0)
    return {
      error: `cc ${source} ${libs.map((l) => `-l${l}`).join(' ')} failed: ${(r.stderr || r.error?.message || '').trim().split('\n').slice(0, 3).join(' | ')}`,
    };
  return { path: out };
}

/** One JSON line a workload program logged. */
export interface Logged {
  event: string;
  pid: number;
  tid?: number;
  ppid?: number;
  /** Wall-clock ms. */
  at: number;
  [key: string]: unknown;
}

/** Every JSON line the child printed so far (other lines ignored). */
export function logsOf(child: Child): Logged[] {
  const out: Logged[] = [];
  for (const line of child.stdout().split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as Logged);
    } catch {
      // a line still being written
    }
  }
  return out;
}

/** The first logged line matching `pred`; fails early (with its stderr) if the child exits without it. */
export async function waitForLog(child: Child, what: string, pred: (l: Logged) => boolean, timeoutMs = 30_000): Promise<Logged> {
  return waitUntil(
    what,
    () => {
      const hit = logsOf(child).find(pred);
      if (hit) return hit;
      // exited, and its output read to the end (it may come after the exit)
      if ((child.proc.exitCode !== null || child.proc.signalCode !== null) && child.proc.stdout?.closed !== false) {
        throw new Error(`${what}: the program exited (${child.proc.exitCode ?? child.proc.signalCode}) without it; stderr: ${child.stderr().slice(-800)}`);
      }
      return undefined;
    },
    timeoutMs,
    50,
  ).catch((err: Error) => {
    // waitUntil keeps the last error in its message; make the exit the headline.
    throw new Error(`${err.message}\nstdout: ${child.stdout().slice(-800)}\nstderr: ${child.stderr().slice(-800)}`);
  });
}

/**
 * The child's exit code once it has exited AND its stdout and stderr are read to their end: Node may
 * emit 'exit' before the last output arrives, and a log read at 'exit' can miss its final lines.
 * (A grandchild that keeps the pipes open is not waited for beyond `drainMs`.)
 */
export async function finished(child: Child, drainMs = 2000): Promise<number | null> {
  const code = await child.exited;
  const open = [child.proc.stdout, child.proc.stderr].filter((s) => s !== null && !s.closed && !s.destroyed);
  if (open.length > 0) {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(open.map((s) => new Promise((resolve) => s!.once('close', resolve)))),
      new Promise((resolve) => {
        timer = setTimeout(resolve, drainMs);
      }),
    ]);
    clearTimeout(timer);
  }
  return code;
}

/** Waits for the child to exit (and its output to be read); fails with its stderr when the exit code is not `code`. */
export async function exitedWith(child: Child, what: string, code = 0): Promise<void> {
  const got = await finished(child);
  if (got !== code) throw new Error(`${what} exited ${got}, not ${code}: ${child.stderr().slice(-1000)}`);
}
