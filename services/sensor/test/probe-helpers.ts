// Helpers of the kernel tests (probe*.test.ts): a collecting probe, child
// processes on loopback, wait-until polling.
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { type AttachMode, NetmonProbe, type ProbeEvent, ProbeError, type SocketEvent, type ExecEvent } from '../src/index';

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

/** A running probe that keeps every event it delivers, in delivery order. */
export class Collector {
  readonly events: ProbeEvent[] = [];
  readonly probe: NetmonProbe;

  constructor(mode: AttachMode = 'tracepoint') {
    this.probe = NetmonProbe.start({ mode, onEvents: (evs) => this.events.push(...evs) });
  }

  sockets(pid: number, kind?: SocketEvent['kind']): SocketEvent[] {
    return this.events.filter((e): e is SocketEvent => e.kind !== 'exec' && e.kind !== 'exit' && e.task.pid === pid && (!kind || e.kind === kind));
  }

  exec(pid: number): ExecEvent | undefined {
    return this.events.find((e): e is ExecEvent => e.kind === 'exec' && e.task.pid === pid);
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

/** /proc/PID/stat starttime in ns since boot (tick resolution). */
export function procStartNs(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[19]) * 10_000_000; // USER_HZ = 100 on Linux
}

/** Open fds and threads of this process. */
export function resourceCounts(): { fds: number; threads: number } {
  return { fds: fs.readdirSync('/proc/self/fd').length, threads: fs.readdirSync('/proc/self/task').length };
}
