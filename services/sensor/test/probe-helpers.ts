// Helpers of the kernel tests (probe*.test.ts): a collecting probe, child
// processes on loopback, wait-until polling.
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { ProcessExec, ProcessFork, SocketEvent } from '@netmon/common';
import { type AttachMode, NetmonProbe, ProbeError, type Redaction, type TimedPayload } from '../src/index';

export const NODE = fs.realpathSync(process.execPath);

/** Polls `pred` every 10 ms until it returns a value, or fails after `ms`. */
export async function waitFor<T>(what: string, pred: () => T | undefined | false, ms = 5000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = pred();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A socket record with its wall-clock time (µs) and place in delivery order. */
export type SocketSeen = SocketEvent & { timeUs: number; index: number };

/** A running probe that keeps every record it delivers, in delivery order. */
export class Collector {
  readonly records: TimedPayload[] = [];
  readonly probe: NetmonProbe;

  constructor(mode: AttachMode = 'tracepoint', maxArgsBytes?: number, redaction?: Redaction) {
    this.probe = NetmonProbe.start({ mode, maxArgsBytes, redaction, onPayloads: (batch) => this.records.push(...batch) });
  }

  sockets(pid: number, kind?: SocketEvent['kind']): SocketSeen[] {
    const out: SocketSeen[] = [];
    this.records.forEach(({ payload, timeUs }, index) => {
      if (payload.kind === 'socket' && payload.value.task.pid === pid && (!kind || payload.value.kind === kind)) out.push({ ...payload.value, timeUs, index });
    });
    return out;
  }

  /** Every socket record of a cookie. */
  byCookie(cookie: number): SocketSeen[] {
    const out: SocketSeen[] = [];
    this.records.forEach(({ payload, timeUs }, index) => {
      if (payload.kind === 'socket' && payload.value.cookie === cookie) out.push({ ...payload.value, timeUs, index });
    });
    return out;
  }

  exec(pid: number): (ProcessExec & { index: number }) | undefined {
    const index = this.records.findIndex(({ payload }) => payload.kind === 'exec' && payload.value.task.pid === pid);
    return index < 0 ? undefined : { ...(this.records[index]!.payload.value as ProcessExec), index };
  }

  fork(pid: number): ProcessFork | undefined {
    for (const { payload } of this.records) if (payload.kind === 'fork' && payload.value.task.pid === pid) return payload.value;
    return undefined;
  }

  stop(): Promise<void> {
    return this.probe.stop();
  }
}

/**
 * Why BPF cannot be used at all here (not root, kernel refuses BPF, no BTF),
 * or undefined when a probe loads. Other failures are real failures.
 */
export function bpfUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'not running as root: the kernel refuses BPF to this user';
  try {
    const p = NetmonProbe.start({ mode: 'auto' });
    void p.stop();
    return undefined;
  } catch (err) {
    if (err instanceof ProbeError && (err.code === 'EPRIV' || err.code === 'ENOBTF')) return `kernel refuses BPF: ${err.message}`;
    throw err;
  }
}

let dir: string | undefined;
/** Scripts run as children, written once per test process. */
export function scripts(): { server: string; client: string; waitingClient: string } {
  if (!dir) dir = fs.mkdtempSync(path.join(os.tmpdir(), 'netmon-probe-test-'));
  const server = path.join(dir, 'server.js');
  const client = path.join(dir, 'client.js');
  const waitingClient = path.join(dir, 'waiting-client.js');
  const out = 'const out = (o) => process.stdout.write(JSON.stringify(o) + "\\n");\n';
  fs.writeFileSync(
    server,
    `${out}const net = require('net');
const [host] = process.argv.slice(2);
const srv = net.createServer((s) => {
  out({ accepted: { localPort: s.localPort, remotePort: s.remotePort } });
  s.on('end', () => { s.destroy(); srv.close(); });
  s.resume();
});
srv.on('close', () => process.exit(0));
srv.listen(0, host, () => out({ port: srv.address().port }));
`,
  );
  const connect = `const net = require('net');
const [host, port] = process.argv.slice(2);
function go() {
  const s = net.connect({ host, port: Number(port) }, () => { out({ connected: { localPort: s.localPort } }); s.end(); });
  s.on('error', (e) => { out({ error: e.code }); });
  s.on('close', () => process.exit(0));
  s.resume();
}
`;
  fs.writeFileSync(client, `${out}${connect}go();\n`);
  fs.writeFileSync(waitingClient, `${out}${connect}out({ ready: true });\nprocess.stdin.once('data', go);\n`);
  return { server, client, waitingClient };
}

/** A child process whose stdout JSON lines are collected. */
export class Child {
  readonly proc: ChildProcess;
  readonly lines: Record<string, unknown>[] = [];
  readonly exited: Promise<number | null>;

  constructor(cmd: string, args: string[]) {
    this.proc = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    createInterface({ input: this.proc.stdout! }).on('line', (l) => {
      try {
        this.lines.push(JSON.parse(l) as Record<string, unknown>);
      } catch {
        /* not ours */
      }
    });
    this.exited = new Promise((r) => this.proc.on('exit', (code) => r(code)));
  }

  get pid(): number {
    return this.proc.pid!;
  }

  line<T>(key: string, ms = 5000): Promise<T> {
    return waitFor(`"${key}" from child ${this.pid}`, () => this.lines.find((l) => key in l)?.[key] as T | undefined, ms);
  }

  kill(): void {
    if (this.proc.exitCode === null) this.proc.kill('SIGKILL');
  }
}

/** A loopback port nothing listens on (bound, then released). */
export async function closedPort(host: string): Promise<number> {
  const net = await import('node:net');
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** /proc/PID/stat starttime in µs since boot (tick resolution). */
export function procStartUs(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[19]) * 10_000; // USER_HZ = 100 on Linux
}

/** Open fds and threads of this process. */
export function resourceCounts(): { fds: number; threads: number } {
  return { fds: fs.readdirSync('/proc/self/fd').length, threads: fs.readdirSync('/proc/self/task').length };
}
