// The fidelity workloads (a–o of the fidelity tests): real programs doing
// real TCP on this host, each logging what it did, turned into the events the
// spec says must (and must not) come. One scenario runs them all once, against
// whatever sensor is running (`netmon run` or the pipeline), so the same
// expectations are checked in both modes.
//
//   const sc = new FidelityScenario();
//   await sc.beforeSensor();   // the connection that predates the sensor (h), fixtures compiled
//   ...start the sensor...
//   await sc.run();            // every workload, then a marker connection
//   await waitUntil('...', () => sc.complete(events));
//   sc.check('a', events, arrival) → { skip?, mismatches[] }
//   await sc.cleanup();
//
// Every expected event also states its NetworkEvent v2 facts: netns (the
// program's own, which netprog.py logs, else this host's), process_key
// (host id, pid and a start time in the program's clock tick), and on an
// Establish, Accept or Listen the spec's defaults ("" outcome, zero duration
// and bytes); a Close is 'established' unless its workload says otherwise.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, realpathSync, rmSync, rmdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { NetworkEvent } from '@netmon/common';
import { type Child, startChild } from '../processes';
import {
  type Absent,
  type EventType,
  type Expect,
  type Matcher,
  type Want,
  checkAbsent,
  checkExpect,
  describeEvent,
  findExpected,
  matcher,
  near,
} from './expect';
import { type Logged, NETPROG, SERVER_JAVA, compileC, exitedWith, finished, logsOf, netprog, netprogArgs, realPython, waitForLog, which } from './programs';

/** Kernel timestamps vs. the programs' clocks: the window around what was logged. */
const SLACK_MS = 1000;
const ESTABLISH: EventType = 'TcpConnectionEstablish';
const ACCEPT: EventType = 'TcpConnectionAccept';
const CLOSE: EventType = 'TcpConnectionClose';
const LISTEN: EventType = 'TcpListen';
/** The connection types (a TcpListen is not a connection: g's closed listeners have one each). */
const ALL_TYPES: EventType[] = [ESTABLISH, ACCEPT, CLOSE];
const ECONNREFUSED = 111;
const ENETUNREACH = 101;
const ETIMEDOUT = 110;
const EHOSTUNREACH = 113;
const EINPROGRESS = 115;
const ECONNRESET = 104;
/** Kernel (ktime) durations vs. what a program measured around its calls. */
const DURATION_SLACK_MS = 50;

export const WORKLOADS = [
  { id: 'a', title: 'a. Java server on :: accepts 127.0.0.1 and ::1 clients: Accepts show "127.0.0.1" / "::1", real ports, the real java binary' },
  { id: 'b', title: 'b. Node http server on :: served by curl over 127.0.0.1, [::1] and localhost: four-tuples from both sides, IPv4 unmapped' },
  { id: 'c', title: 'c. AF_INET6 client dialling ::ffff:127.0.0.1 (IPv4 listener): Establish shows "127.0.0.1"' },
  { id: 'd', title: "d. pre-fork workers (fork, no exec) and a daemonised grandchild: own pid/tid/ppid, the parent's image, published promptly" },
  { id: 'e', title: 'e. nested container cgroups (docker-<id>.scope/init.scope, libpod-<id>.scope/container): container_id is the 64-hex id' },
  { id: 'f.refused', title: 'f. refused connect: Establish with the real four-tuple, Close with the same four-tuple and cookie, outcome refused' },
  { id: 'f.unreachable', title: 'f. unreachable connect (ENETUNREACH in a fresh netns, IPv4 and IPv6): no Establish, no Close' },
  {
    id: 'f.timeout',
    title: 'f. timed-out connect (SYN dropped by a full accept queue, TCP_SYNCNT=1): Establish, Close with the same four-tuple, outcome timeout',
  },
  { id: 'g', title: 'g. sockets that never connected (listener, bound-only, unused; IPv4 and IPv6) closed: no event but the TcpListen of each listener' },
  {
    id: 'h',
    title: "h. a connection open before the sensor started: both Closes come, with the real ports, established, no bytes, lasting since the sensor's start",
  },
  { id: 'i', title: 'i. a binary under a 600+-byte path with a 6 KiB argv: complete binary_path, args cut at 4096 bytes on a character boundary with "…"' },
  { id: 'j', title: 'j. io_uring accept (IORING_OP_ACCEPT): Accept with the real four-tuple, its Close paired by cookie' },
  { id: 'k', title: 'k. burst of 2000 IPv4 connections to a dual-stack server: exactly 2000 Establish, 2000 Accept, 4000 Close, every cookie paired' },
  {
    id: 'l',
    title: 'l. transfer: 5,000 bytes up, 1 MiB down, held 1.5 s: both Closes established with the exact payload bytes, durations within 50 ms',
  },
  { id: 'm.unreachable', title: 'm. connect answered by ICMP host unreachable (routed test netns): Establish, Close outcome unreachable' },
  { id: 'm.timeout', title: 'm. connect whose SYNs a blackhole route drops (TCP_SYNCNT=1): Close outcome timeout after about 3 s' },
  { id: 'm.aborted', title: 'm. non-blocking connect closed after 300 ms with its SYN unanswered: Close outcome aborted' },
  { id: 'm.reset', title: 'm. connection reset by SO_LINGER {on, 0} (in the test netns): both Closes outcome reset, netns of that namespace' },
  { id: 'n', title: 'n. listeners that never accept (127.0.0.1 and dual-stack ::): one TcpListen each, daddr 0.0.0.0 / ::, no Close after SIGTERM' },
  { id: 'o', title: 'o. pid reuse: two processes with the same pid have different process_key values, each with its own start time' },
] as const;
export type WorkloadId = (typeof WORKLOADS)[number]['id'];

export interface WorkloadResult {
  id: WorkloadId;
  /** Why the workload could not run here (the kernel refused, a tool is missing). */
  skip?: string;
  /** The workload itself went wrong (a program failed): the test fails with this. */
  error?: string;
  expects: Expect[];
  absent: Absent[];
  /** Checks that are not one event each (the burst). */
  custom?: (events: readonly NetworkEvent[]) => string[];
  /** Events needed before the check makes sense: "pid/type" → count. */
  needs?: Map<string, number>;
  /** What the programs logged, for the report. */
  logged: Record<string, unknown>;
}

export interface Verdict {
  skip?: string;
  mismatches: string[];
}

const ipv4Unmapped = (a: string) => (a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a);

/** A program's network namespace (inode) and start time (clock ticks since boot, /proc/PID/stat field 22). */
export interface ProcFacts {
  netns: number;
  startTicks?: number;
}

/** `net:[4026531840]` → 4026531840. */
const nsInode = (link: string) => Number(/\[(\d+)\]/.exec(link)?.[1] ?? Number.NaN);

/** The facts of a running process from /proc (for programs that do not log them); undefined once it is gone. */
export function readProcFacts(pid: number | 'self'): ProcFacts | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields 3.. (comm may hold spaces)
    return { netns: nsInode(readlinkSync(`/proc/${pid}/ns/net`)), startTicks: Number(fields[22 - 3]) };
  } catch {
    return undefined;
  }
}

let clkTck: number | undefined;
/** USER_HZ, the unit of /proc/PID/stat's start time. */
function clockTicks(): number {
  if (clkTck === undefined) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

/**
 * process_key of a process: "<the event's host.id>:<pid>:<start µs since boot>". The kernel's start
 * time is ns since boot (task start_boottime), /proc/PID/stat's the same clock truncated to clock ticks
 * (nsec_to_clock_t), so with the program's ticks known the µs must fall in that tick:
 * floor(µs × CLK_TCK / 10^6) = ticks. Without them (a short-lived program that logs nothing), the
 * host id and pid are checked, and a Close must repeat its open event's key (checkExpect).
 */
export function processKeyMatcher(pid: number, startTicks?: number): Matcher {
  const hz = clockTicks();
  const tick = startTicks === undefined ? '' : ` with µs in clock tick ${startTicks} (floor(µs × ${hz} / 10^6))`;
  return matcher(`"<host.id>:${pid}:<start µs since boot>"${tick}`, (v, e) => {
    const m = typeof v === 'string' ? /^(.+):(\d+):(\d+)$/.exec(v) : null;
    if (!m || !e.host.id || m[1] !== e.host.id || Number(m[2]) !== pid) return false;
    return startTicks === undefined || Math.floor((Number(m[3]) * hz) / 1_000_000) === startTicks;
  });
}

/** An Establish's, Accept's or Listen's connection facts: the spec's defaults (its Close has the facts). */
const NOT_A_CLOSE: Want = { outcome: '', duration_ms: 0, bytes_sent: 0, bytes_received: 0 };
const num = (v: unknown) => v as number;
const str = (v: unknown) => v as string;

/** A free local port nobody listens on (bound by a node server, then closed). */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** The cgroup v2 mount (pure at /sys/fs/cgroup, or hybrid at /sys/fs/cgroup/unified). */
function cgroup2Mount(): string | undefined {
  return readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .find((f) => f[2] === 'cgroup2')?.[1];
}

export interface LongPathProgram {
  /** The C client at a path of 600+ bytes. */
  path: string;
  /** The same binary at a short path (a control). */
  shortPath: string;
  /** argv after argv[0] for a connection to 127.0.0.1:port: 6 KiB with multi-byte characters. */
  args(port: number): string[];
}

/** The long-path, long-argv client of workload i (also used by the deny-filter test). */
export function longPathProgram(dir: string): LongPathProgram | { error: string } {
  const built = compileC('tcpclient.c', path.join(dir, 'tcpclient'));
  if ('error' in built) return built;
  const deep = path.join(dir, `long-${'d'.repeat(200)}`, `${'e'.repeat(200)}`, `${'f'.repeat(200)}`);
  mkdirSync(deep, { recursive: true });
  const target = path.join(realpathSync(deep), 'tcpclient-long');
  copyFileSync(built.path, target);
  chmodSync(target, 0o755);
  return {
    path: target,
    shortPath: built.path,
    // "é€" is 5 bytes, so the 4096-byte cut falls inside a character.
    args: (port) => ['127.0.0.1', String(port), 'fidelity-6KiB-argv', ...Array.from({ length: 21 }, (_, i) => `${i}:${'é€'.repeat(60)}`)],
  };
}

/** The spec's cut of args at max_args_bytes (default 4096): ≤ max bytes, ends with "…", a prefix of the whole cut at a character boundary. */
export function argsCutMatcher(full: string, max = 4096) {
  const ELLIPSIS = '\u2026';
  return matcher(
    `the ${Buffer.byteLength(full)}-byte argv cut to <= ${max} bytes at a character boundary, ending with "…", keeping >= ${max - 6} bytes of it`,
    (v) => {
      if (typeof v !== 'string' || !v.endsWith(ELLIPSIS) || Buffer.byteLength(v) > max || v.includes('\uFFFD')) return false;
      const kept = v.slice(0, -1);
      return full.startsWith(kept) && Buffer.byteLength(kept) >= max - 6;
    },
  );
}

/** A test host in a network namespace of its own, reached from this host over a veth pair and a route (workloads m). */
export interface RoutedNetns {
  name: string;
  /** This host's end of the veth pair, where the SYNs to the addresses behind the peer leave (sniffed for their local port). */
  hostDev: string;
  /** Behind the peer, on an `unreachable` route: the peer answers a SYN with ICMP host unreachable. */
  unreachable: string;
  /** Behind the peer, on a `blackhole` route: the peer drops a SYN silently. */
  blackhole: string;
  remove(): void;
}

function ip(args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')} failed (${r.status}): ${(r.stderr || r.error?.message || '').trim()}`);
}

/**
 * veth: this host 10.213.A.1/30 ↔ the peer netns 10.213.A.2/30; this host routes 10.213.A+1.0/24 via the
 * peer, which forwards and has 10.213.A+1.1 unreachable and 10.213.A+1.2 blackholed. Pure routing
 * (iproute2 only): no firewall. A is picked among the even third octets nobody on this host uses yet.
 */
export function createRoutedNetns(): RoutedNetns | { skip: string } {
  if (!which('ip')) return { skip: 'ip (iproute2) is not installed' };
  const used = ['route show table all', 'addr show'].map((c) => execFileSync('ip', ['-4', ...c.split(' ')]).toString()).join('\n');
  const free = Array.from({ length: 64 }, (_, i) => ((process.pid + i) % 64) * 2).find(
    (a) => !used.includes(`10.213.${a}.`) && !used.includes(`10.213.${a + 1}.`),
  );
  if (free === undefined) return { skip: 'every 10.213.x.0/24 is in use on this host' };
  const tag = randomBytes(3).toString('hex');
  const name = `netmon-fidelity-${tag}`;
  const hostDev = `nmf${tag}h`; // interface names: at most 15 bytes
  const peerDev = `nmf${tag}p`;
  const [hostAddr, peerAddr, behind] = [`10.213.${free}.1`, `10.213.${free}.2`, `10.213.${free + 1}`];
  try {
    ip(['netns', 'add', name]);
  } catch (err) {
    return { skip: `the kernel refuses a new network namespace: ${(err as Error).message}` };
  }
  const remove = () => {
    spawnSync('ip', ['link', 'del', hostDev]); // its peer and the route go with it
    spawnSync('ip', ['netns', 'del', name]);
  };
  try {
    ip(['link', 'add', hostDev, 'type', 'veth', 'peer', 'name', peerDev, 'netns', name]);
    ip(['addr', 'add', `${hostAddr}/30`, 'dev', hostDev]);
    ip(['link', 'set', hostDev, 'up']);
    ip(['-n', name, 'addr', 'add', `${peerAddr}/30`, 'dev', peerDev]);
    ip(['-n', name, 'link', 'set', peerDev, 'up']);
    ip(['-n', name, 'link', 'set', 'lo', 'up']);
    ip(['netns', 'exec', name, 'sh', '-c', 'echo 1 > /proc/sys/net/ipv4/ip_forward']); // sysctl -w net.ipv4.ip_forward=1
    ip(['-n', name, 'route', 'add', 'unreachable', `${behind}.1/32`]);
    ip(['-n', name, 'route', 'add', 'blackhole', `${behind}.2/32`]);
    ip(['route', 'add', `${behind}.0/24`, 'via', peerAddr]);
  } catch (err) {
    remove();
    throw err;
  }
  return { name, hostDev, unreachable: `${behind}.1`, blackhole: `${behind}.2`, remove };
}

export class FidelityScenario {
  readonly results = new Map<WorkloadId, WorkloadResult>();
  /** A temporary folder of its own (made by beforeSensor, removed by cleanup). */
  dir = '';
  private readonly children: Child[] = [];
  private readonly cgroups: string[] = [];
  private sink?: { child: Child; port: number };
  private pre?: { server: Child; client: Child; port: number; accept: Logged; connected: Logged };
  private longPath?: LongPathProgram | { error: string };
  private uring?: { path: string } | { error: string };
  private marker?: number;
  private markerSeenAt?: number;
  /** Wall-clock ms: beforeSensor done (the sensor starts after) and run() called (it has started). */
  private sensorStartedAfter = 0;
  private sensorStartedBefore = 0;
  /** This test's own netns: the one of every program it starts directly. */
  private readonly hostNetns = readProcFacts('self')?.netns ?? Number.NaN;
  /** Facts read from /proc while a program ran (programs that do not log their own). */
  private readonly noted = new Map<number, ProcFacts>();
  private routed?: Promise<RoutedNetns | { skip: string }>;

  constructor(readonly options: { burst?: number; graceMs?: number; log?: (msg: string) => void } = {}) {}

  private get log() {
    return this.options.log ?? ((m: string) => process.stdout.write(`# ${m}\n`));
  }

  private track(child: Child): Child {
    this.children.push(child);
    // at once, while it runs (curl and the C clients are gone in milliseconds): its start time
    // is the fork's, which exec does not change
    this.note(child.proc.pid);
    return child;
  }

  private py(args: string[]): Child {
    return this.track(netprog(args));
  }

  /** Before the sensor starts: a sink listener, the connection of workload h, the C fixtures. */
  async beforeSensor(): Promise<void> {
    this.dir = mkdtempSync(path.join(tmpdir(), 'netmon-fidelity-'));
    const sink = this.py(['serve', '--host', '127.0.0.1']);
    this.sink = { child: sink, port: num((await waitForLog(sink, 'the sink to listen', (l) => l.event === 'listening')).port) };
    const server = this.py(['serve', '--host', '127.0.0.1', '--count', '1']);
    const port = num((await waitForLog(server, 'the h server to listen', (l) => l.event === 'listening')).port);
    const client = this.py(['hold', '--host', '127.0.0.1', '--port', String(port)]);
    const connected = await waitForLog(client, 'the h client to connect', (l) => l.event === 'connected');
    const accept = await waitForLog(server, 'the h server to accept', (l) => l.event === 'accept');
    this.pre = { server, client, port, accept, connected };
    this.longPath = longPathProgram(this.dir);
    this.uring = compileC('uring_accept.c', path.join(this.dir, 'uring_accept'), ['uring']);
    this.sensorStartedAfter = Date.now();
  }

  /** With the sensor running: every workload, then the marker connection. */
  async run(): Promise<void> {
    const started = Date.now();
    this.sensorStartedBefore = started;
    await Promise.all(
      (
        [
          ['a', () => this.a()],
          ['b', () => this.b()],
          ['c', () => this.c()],
          ['d', () => this.d()],
          ['e', () => this.e()],
          ['f.refused', () => this.refused()],
          ['f.unreachable', () => this.unreachable()],
          ['f.timeout', () => this.timedOut()],
          ['g', () => this.g()],
          ['i', () => this.i()],
          ['j', () => this.j()],
          ['l', () => this.l()],
          ['m.unreachable', () => this.mUnreachable()],
          ['m.timeout', () => this.mTimeout()],
          ['m.aborted', () => this.mAborted()],
          ['m.reset', () => this.mReset()],
          ['n', () => this.n()],
          ['o', () => this.o()],
        ] as const
      ).map(([id, fn]) => this.record(id, fn)),
    );
    // after the others: its Close's duration (from the sensor's start) is then seconds, not a few ms
    await this.record('h', () => this.h());
    await this.record('k', () => this.k());
    const marker = this.py(['connect', '--host', '127.0.0.1', '--port', String(this.sink!.port)]);
    await exitedWith(marker, 'the marker connection');
    this.marker = marker.proc.pid!;
    this.log(`fidelity workloads done in ${Date.now() - started} ms; marker pid ${this.marker}`);
  }

  private async record(id: WorkloadId, fn: () => Promise<Omit<WorkloadResult, 'id'>>): Promise<void> {
    let result: WorkloadResult;
    try {
      result = { id, ...(await fn()) };
      this.addFacts(result);
    } catch (err) {
      result = { id, error: (err as Error).stack ?? String(err), expects: [], absent: [], logged: {} };
    }
    this.results.set(id, result);
    this.log(
      `workload ${id}: ${JSON.stringify({ skip: result.skip, error: result.error?.split('\n')[0], expects: result.expects.length, absent: result.absent.length, logged: result.logged }).slice(0, 1500)}`,
    );
  }

  private skipped(skip: string): Omit<WorkloadResult, 'id'> {
    return { skip, expects: [], absent: [], logged: {} };
  }

  /** The expectations met, by count (right or wrong, the events are in): then the checks make sense. */
  complete(events: readonly NetworkEvent[]): boolean {
    if (this.marker === undefined) return false;
    const counts = new Map<string, number>();
    for (const e of events) {
      const k = `${e.process.pid}/${e.network_event.type}`;
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
    if (this.markerSeenAt === undefined) {
      if (!counts.has(`${this.marker}/${CLOSE}`)) return false;
      this.markerSeenAt = Date.now();
    }
    const needs = new Map<string, number>();
    const add = (k: string, n = 1) => needs.set(k, (needs.get(k) ?? 0) + n);
    for (const r of this.results.values()) {
      for (const x of r.expects) {
        add(`${x.pid}/${x.type}`);
        if (x.close) add(`${x.close.pid}/${CLOSE}`);
      }
      for (const [k, n] of r.needs ?? []) add(k, n);
    }
    const met = [...needs].every(([k, n]) => (counts.get(k) ?? 0) >= n);
    // All in: a short grace for late wrong ones. Not all in: what is missing stays missing after the grace.
    return Date.now() - this.markerSeenAt >= (met ? 1000 : (this.options.graceMs ?? 5000));
  }

  /** The verdict of one workload on the events seen. */
  check(id: WorkloadId, events: readonly NetworkEvent[], arrival?: (e: NetworkEvent) => number | undefined): Verdict {
    const r = this.results.get(id);
    if (!r) return { mismatches: [`workload ${id} did not run (the scenario stopped before it)`] };
    if (r.skip) return { skip: r.skip, mismatches: [] };
    if (r.error) return { mismatches: [`the workload itself failed: ${r.error}`] };
    const markerSeen = this.marker !== undefined && events.some((e) => e.process.pid === this.marker && e.network_event.type === CLOSE);
    const mismatches = [
      ...(r.absent.length > 0 && !markerSeen
        ? [`cannot show the absence of events: the marker connection made after every workload (pid ${this.marker}) never showed up either`]
        : []),
      ...r.expects.flatMap((x) => checkExpect(events, x, arrival)),
      ...r.absent.flatMap((a) => checkAbsent(events, a, arrival)),
      ...(r.custom?.(events) ?? []),
    ];
    if (mismatches.length > 0) mismatches.push(`(what the programs logged: ${JSON.stringify(r.logged).slice(0, 3000)})`);
    return { mismatches };
  }

  /** Every pid a workload's events come from (to compare the topic with the archive). */
  pids(): Set<number> {
    const out = new Set<number>();
    for (const r of this.results.values()) {
      for (const x of r.expects) out.add(x.pid).add(x.close?.pid ?? x.pid);
      for (const a of r.absent) out.add(a.pid);
      for (const k of r.needs?.keys() ?? []) out.add(Number(k.split('/')[0]));
    }
    return out;
  }

  async cleanup(): Promise<void> {
    for (const c of this.children) await c.stop('SIGKILL');
    const routed = await this.routed?.catch(() => undefined);
    if (routed && !('skip' in routed)) routed.remove();
    for (const cg of this.cgroups.reverse()) {
      try {
        rmdirSync(cg);
      } catch (err) {
        this.log(`could not remove cgroup ${cg}: ${(err as Error).message}`);
      }
    }
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }

  // ---- helpers for the workloads ----

  /** Reads a started program's netns and start time from /proc (for one that does not log them). */
  private note(pid: number | undefined): void {
    const f = pid === undefined ? undefined : readProcFacts(pid);
    if (f) this.noted.set(pid!, f);
  }

  /**
   * A program's netns and start time: as netprog.py logged them (any line of that pid), else as read
   * from /proc when it was started (its netns then, before an `unshare` or `ip netns exec` in it
   * switched: only when it logged none). Two start times for one pid (pid reuse) leave it unknown.
   */
  private factsOf(pid: number): ProcFacts | undefined {
    const logged: ProcFacts[] = [];
    for (const c of this.children) {
      for (const l of logsOf(c)) if (l.pid === pid && typeof l.netns === 'number') logged.push({ netns: l.netns, startTicks: num(l.start_ticks) });
    }
    const noted = this.noted.get(pid);
    const all = noted ? [...logged, noted] : logged;
    if (all.length === 0) return undefined;
    const netns = (logged[0] ?? noted)!.netns;
    const ticks = new Set(all.map((f) => f.startTicks));
    return ticks.size === 1 ? { netns, startTicks: all[0]!.startTicks } : { netns };
  }

  /** netns and process_key of a process's events (the host's netns for a program that did not say). */
  private factsWant(pid: number): Want {
    const f = this.factsOf(pid);
    return { netns: f?.netns ?? this.hostNetns, process_key: processKeyMatcher(pid, f?.startTicks) };
  }

  /**
   * The v2 facts every expectation states unless its workload does: netns and process_key of
   * the process; on an Establish, Accept or Listen the spec's defaults; a Close 'established'.
   */
  private addFacts(r: Omit<WorkloadResult, 'id'>): void {
    for (const x of r.expects) {
      x.want = { ...this.factsWant(x.pid), ...(x.type === CLOSE ? {} : NOT_A_CLOSE), ...x.want };
      if (x.type === CLOSE && !('outcome' in x.want)) x.want.outcome = 'established';
      if (x.close) {
        const own = x.close.pid === x.pid ? {} : this.factsWant(x.close.pid);
        x.close.want = { outcome: 'established', ...own, ...x.close.want };
      }
    }
  }

  /** The expected process fields of a netprog.py process. */
  private pyWant(args: string[], ppid: number): Want {
    return { ppid, binary_path: realPython(), filename: path.basename(realPython()), args: netprogArgs(args), container_id: '' };
  }

  /**
   * A netprog `connect` line → its Establish (and paired Close). `connect` sends nothing, and no
   * server it meets here writes: the Close carries no payload bytes unless `closeWant` says so.
   */
  private establishOf(what: string, l: Logged, args: string[], want: Want = {}, closeWant: Want = {}): Expect {
    return {
      what,
      type: ESTABLISH,
      pid: l.pid,
      sport: num(l.sport),
      dport: num(l.dport),
      from: num(l.start) - SLACK_MS,
      to: num(l.end) + SLACK_MS,
      want: { tid: l.tid, ...this.pyWant(args, l.ppid!), saddr: ipv4Unmapped(str(l.saddr)), daddr: ipv4Unmapped(str(l.daddr)), ...want },
      close: { pid: l.pid, tidIn: [l.tid!], want: { bytes_sent: 0, bytes_received: 0, ...closeWant } },
    };
  }

  private connectLog(child: Child, what: string): Logged {
    const l = logsOf(child).find((x) => x.event === 'connect');
    if (!l) throw new Error(`${what}: no connect line; stdout ${child.stdout().slice(-500)} stderr ${child.stderr().slice(-500)}`);
    return l;
  }

  private async connectOnce(what: string, args: string[]): Promise<{ child: Child; log: Logged }> {
    const child = this.py(args);
    await exitedWith(child, what);
    return { child, log: this.connectLog(child, what) };
  }

  // ---- the workloads ----

  private async a(): Promise<Omit<WorkloadResult, 'id'>> {
    const java = which('java');
    if (!java) return this.skipped('java is not installed');
    const javaReal = realpathSync(java);
    const server = this.track(startChild(java, [SERVER_JAVA, '2']));
    const listening = await waitForLog(server, 'the Java server to listen', (l) => l.event === 'listening', 90_000);
    const port = num(listening.port);
    const cargs4 = ['connect', '--host', '127.0.0.1', '--port', String(port)];
    const cargs6 = ['connect', '--host', '::1', '--port', String(port)];
    const c4 = await this.connectOnce('the IPv4 client of the Java server', cargs4);
    const c6 = await this.connectOnce('the IPv6 client of the Java server', cargs6);
    await exitedWith(server, 'java Server.java');
    const logs = logsOf(server);
    const expects: Expect[] = [];
    for (const [c, family, args] of [
      [c4, 'IPv4', cargs4],
      [c6, 'IPv6', cargs6],
    ] as const) {
      const sport = num(c.log.sport);
      const accept = logs.find((l) => l.event === 'accept' && l.rport === sport);
      const closed = logs.find((l) => l.event === 'closed' && l.rport === sport);
      if (!accept || !closed) throw new Error(`the Java server did not log the ${family} client's port ${sport}: ${server.stdout()}`);
      const addr = family === 'IPv4' ? '127.0.0.1' : '::1';
      expects.push({
        what: `Java Accept of the ${family} client`,
        type: ACCEPT,
        pid: server.proc.pid!,
        sport: port,
        dport: sport,
        from: num(c.log.start) - SLACK_MS,
        to: accept.at + SLACK_MS,
        want: {
          pid: server.proc.pid!,
          ppid: process.pid,
          binary_path: javaReal,
          filename: path.basename(javaReal),
          args: `${SERVER_JAVA} 2`,
          container_id: '',
          saddr: addr,
          daddr: addr,
        },
        tidIn: [accept.tid!],
        close: { pid: server.proc.pid!, tidIn: [closed.tid!] },
      });
      expects.push(this.establishOf(`the ${family} client's Establish to the Java server`, c.log, args));
    }
    return { expects, absent: [], logged: { java: javaReal, server: logs, clients: [c4.log, c6.log] } };
  }

  private async b(): Promise<Omit<WorkloadResult, 'id'>> {
    const curl = which('curl');
    if (!curl) return this.skipped('curl is not installed');
    const curlReal = realpathSync(curl);
    const nodeReal = realpathSync(process.execPath);
    const script = path.join(__dirname, 'http-server.js');
    const server = this.track(startChild(process.execPath, [script, '--port', '0']));
    const port = num((await waitForLog(server, 'the Node http server to listen', (l) => l.event === 'listening')).port);
    const expects: Expect[] = [];
    const seen: unknown[] = [];
    const format = '{"local_ip":"%{local_ip}","local_port":%{local_port},"remote_ip":"%{remote_ip}","remote_port":%{remote_port}}';
    for (const [label, url, addr] of [
      ['127.0.0.1', `http://127.0.0.1:${port}/`, '127.0.0.1'],
      ['[::1]', `http://[::1]:${port}/`, '::1'],
      ['localhost', `http://localhost:${port}/`, undefined],
    ] as const) {
      const args = ['-s', '--noproxy', '*', '-o', '/dev/null', '-w', format, url];
      const start = Date.now();
      const c = this.track(startChild(curl, args));
      await exitedWith(c, `curl ${url}`);
      const end = Date.now();
      const w = JSON.parse(c.stdout().trim()) as { local_ip: string; local_port: number; remote_ip: string; remote_port: number };
      const request = await waitForLog(server, `the server to log curl's request over ${label}`, (l) => l.event === 'request' && l.rport === w.local_port);
      const closed = await waitForLog(server, `the server to close curl's connection over ${label}`, (l) => l.event === 'closed' && l.rport === w.local_port);
      seen.push({ label, curl: w, curlPid: c.proc.pid, request, closed });
      const local = addr ?? ipv4Unmapped(w.remote_ip);
      expects.push({
        what: `Node Accept of curl over ${label}`,
        type: ACCEPT,
        pid: server.proc.pid!,
        sport: port,
        dport: w.local_port,
        from: start - SLACK_MS,
        to: end + SLACK_MS,
        want: {
          ppid: process.pid,
          tid: server.proc.pid!,
          binary_path: nodeReal,
          filename: path.basename(nodeReal),
          args: `${script} --port 0`,
          container_id: '',
          saddr: local,
          daddr: ipv4Unmapped(w.local_ip),
        },
        close: { pid: server.proc.pid!, tidIn: [server.proc.pid!] },
      });
      expects.push({
        what: `curl's Establish over ${label}`,
        type: ESTABLISH,
        pid: c.proc.pid!,
        sport: w.local_port,
        dport: port,
        from: start - SLACK_MS,
        to: end + SLACK_MS,
        want: {
          tid: c.proc.pid!,
          ppid: process.pid,
          binary_path: curlReal,
          filename: path.basename(curlReal),
          args: args.join(' '),
          container_id: '',
          saddr: ipv4Unmapped(w.local_ip),
          daddr: ipv4Unmapped(w.remote_ip),
        },
        close: { pid: c.proc.pid!, tidIn: [c.proc.pid!] },
      });
    }
    await server.stop();
    return { expects, absent: [], logged: { node: nodeReal, port, requests: seen } };
  }

  private async c(): Promise<Omit<WorkloadResult, 'id'>> {
    const sargs = ['serve', '--host', '127.0.0.1', '--count', '1'];
    const server = this.py(sargs);
    const port = num((await waitForLog(server, 'the IPv4 listener', (l) => l.event === 'listening')).port);
    const cargs = ['connect', '--family', '6', '--host', '::ffff:127.0.0.1', '--port', String(port)];
    const c = await this.connectOnce('the AF_INET6 client', cargs);
    await exitedWith(server, 'the IPv4 listener');
    if (c.log.saddr !== '::ffff:127.0.0.1') throw new Error(`the AF_INET6 client's local address is ${c.log.saddr}, not ::ffff:127.0.0.1`);
    const accept = logsOf(server).find((l) => l.event === 'accept')!;
    return {
      expects: [
        this.establishOf('Establish of the AF_INET6 socket dialling ::ffff:127.0.0.1', c.log, cargs, { saddr: '127.0.0.1', daddr: '127.0.0.1' }),
        {
          what: "the IPv4 listener's Accept (control)",
          type: ACCEPT,
          pid: server.proc.pid!,
          sport: port,
          dport: num(c.log.sport),
          from: num(c.log.start) - SLACK_MS,
          to: accept.at + SLACK_MS,
          want: { ...this.pyWant(sargs, accept.ppid!), tid: accept.tid, saddr: '127.0.0.1', daddr: '127.0.0.1' },
          close: { pid: server.proc.pid! },
        },
      ],
      absent: [],
      logged: { client: c.log, server: logsOf(server) },
    };
  }

  private async d(): Promise<Omit<WorkloadResult, 'id'>> {
    const workers = 3;
    const pargs = ['prefork', '--workers', String(workers), '--target-port', String(this.sink!.port)];
    const parent = this.py(pargs);
    const listening = await waitForLog(parent, 'the pre-fork parent to listen', (l) => l.event === 'listening');
    const port = num(listening.port);
    await waitUntilCount(parent, 'worker', workers);
    const cargs = ['connect', '--host', '127.0.0.1', '--port', String(port), '--count', String(workers)];
    const clients = this.py(cargs);
    await exitedWith(clients, 'the clients of the pre-fork workers');
    await exitedWith(parent, 'the pre-fork parent');
    const logs = logsOf(parent);
    const parentPid = listening.pid;
    if (parentPid !== parent.proc.pid) throw new Error(`the pre-fork parent logged pid ${parentPid}, spawned as ${parent.proc.pid}`);
    const connects = logsOf(clients).filter((l) => l.event === 'connect');
    const expects: Expect[] = [];
    const parentImage = this.pyWant(pargs, parentPid);
    for (const a of logs.filter((l) => l.event === 'accept')) {
      if (a.pid === parentPid) throw new Error('a worker accepted in the parent');
      const c = connects.find((x) => x.sport === a.rport);
      if (!c) throw new Error(`worker ${a.pid} accepted port ${a.rport}, which no client logged`);
      const closed = logs.find((l) => l.event === 'closed' && l.pid === a.pid)!;
      expects.push({
        what: `Accept of pre-fork worker ${a.worker} (forked, no exec)`,
        type: ACCEPT,
        pid: a.pid,
        sport: port,
        dport: num(a.rport),
        from: num(c.start) - SLACK_MS,
        to: a.at + SLACK_MS,
        want: { ...parentImage, pid: a.pid, tid: a.tid, ppid: parentPid, saddr: '127.0.0.1', daddr: '127.0.0.1' },
        close: { pid: a.pid, tidIn: [a.tid!], at: closed.at },
        promptFrom: a.at,
      });
    }
    if (expects.length !== workers) throw new Error(`${expects.length} workers accepted, expected ${workers}`);
    const daemon = logs.find((l) => l.event === 'connect');
    const daemonClosed = logs.find((l) => l.event === 'closed' && l.pid === daemon?.pid && l.worker === undefined);
    if (!daemon || !daemonClosed) throw new Error(`the daemonised grandchild did not log its connection: ${parent.stdout()}`);
    const forked = logs.find((l) => l.event === 'forked');
    if (daemon.ppid === forked?.middle || daemon.ppid === parentPid) throw new Error(`the grandchild was not reparented (ppid ${daemon.ppid})`);
    expects.push({
      what: 'Establish of the daemonised grandchild (double fork + setsid, no exec)',
      type: ESTABLISH,
      pid: daemon.pid,
      sport: num(daemon.sport),
      dport: this.sink!.port,
      from: num(daemon.start) - SLACK_MS,
      to: num(daemon.end) + SLACK_MS,
      want: { ...parentImage, pid: daemon.pid, tid: daemon.tid, ppid: daemon.ppid, saddr: '127.0.0.1', daddr: '127.0.0.1' },
      close: { pid: daemon.pid, tidIn: [daemon.tid!], at: daemonClosed.at },
      promptFrom: num(daemon.start),
    });
    return { expects, absent: [], logged: { parent: parentPid, logs, clients: connects } };
  }

  private async e(): Promise<Omit<WorkloadResult, 'id'>> {
    const v2 = cgroup2Mount();
    if (!v2) return this.skipped('no cgroup v2 hierarchy is mounted');
    const dockerId = randomBytes(32).toString('hex');
    const podmanId = randomBytes(32).toString('hex');
    const slice = path.join(v2, `netmon-fidelity-${randomBytes(4).toString('hex')}.slice`);
    const dockerScope = path.join(slice, `docker-${dockerId}.scope`);
    const podmanScope = path.join(slice, `libpod-${podmanId}.scope`);
    const leaves = [
      { label: 'docker-<id>.scope/init.scope', id: dockerId, dir: path.join(dockerScope, 'init.scope') },
      { label: 'libpod-<id>.scope/container', id: podmanId, dir: path.join(podmanScope, 'container') },
    ];
    for (const d of [slice, dockerScope, leaves[0]!.dir, podmanScope, leaves[1]!.dir]) {
      try {
        mkdirSync(d);
        this.cgroups.push(d);
      } catch (err) {
        return this.skipped(`the kernel refuses a new cgroup ${d}: ${(err as Error).message}`);
      }
    }
    const sargs = ['serve', '--host', '127.0.0.1', '--count', String(leaves.length)];
    const server = this.py(sargs);
    const port = num((await waitForLog(server, 'the listener for the contained clients', (l) => l.event === 'listening')).port);
    const expects: Expect[] = [];
    const logged: unknown[] = [];
    for (const leaf of leaves) {
      const cargs = ['connect', '--host', '127.0.0.1', '--port', String(port)];
      const script = `echo $$ > ${leaf.dir}/cgroup.procs && exec ${realPython()} ${NETPROG} ${cargs.join(' ')}`;
      const child = this.track(startChild('sh', ['-c', script]));
      const code = await finished(child);
      if (code !== 0 && /cgroup\.procs/.test(child.stderr())) return this.skipped(`the kernel refuses a process in ${leaf.dir}: ${child.stderr().trim()}`);
      if (code !== 0) throw new Error(`the client in ${leaf.label} exited ${code}: ${child.stderr()}`);
      const l = this.connectLog(child, `the client in ${leaf.label}`);
      logged.push({ cgroup: leaf.dir, id: leaf.id, client: l });
      expects.push(this.establishOf(`Establish of a process in ${leaf.label}`, l, cargs, { container_id: leaf.id }));
      const accept = await waitForLog(server, 'the host listener to accept', (x) => x.event === 'accept' && x.rport === l.sport);
      expects.push({
        what: `Accept of the host (uncontained) listener from the ${leaf.label} client (control)`,
        type: ACCEPT,
        pid: server.proc.pid!,
        sport: port,
        dport: num(l.sport),
        from: num(l.start) - SLACK_MS,
        to: accept.at + SLACK_MS,
        want: { ...this.pyWant(sargs, accept.ppid!), container_id: '', saddr: '127.0.0.1', daddr: '127.0.0.1' },
      });
    }
    await exitedWith(server, 'the listener for the contained clients');
    return { expects, absent: [], logged: { clients: logged } };
  }

  private async refused(): Promise<Omit<WorkloadResult, 'id'>> {
    const port = await closedPort();
    const cargs = ['connect', '--host', '127.0.0.1', '--port', String(port), '--sniff'];
    const c = await this.connectOnce('the refused client', cargs);
    if (c.log.errno !== ECONNREFUSED) throw new Error(`the connect to closed port ${port} was not refused: ${JSON.stringify(c.log)}`);
    if (!c.log.sport) throw new Error(`the SYN of the refused connect was not seen on lo: ${JSON.stringify(c.log)}`);
    return { expects: [this.establishOf('refused connect', c.log, cargs, {}, { outcome: 'refused' })], absent: [], logged: { client: c.log } };
  }

  private async unreachable(): Promise<Omit<WorkloadResult, 'id'>> {
    if (!which('unshare') || !which('ip')) return this.skipped('unshare (util-linux) or ip (iproute2) is not installed');
    const absent: Absent[] = [];
    const logged: unknown[] = [];
    for (const host of ['192.0.2.1', '2001:db8::1']) {
      const cargs = ['connect', '--host', host, '--port', '80'];
      const child = this.track(startChild('unshare', ['-n', 'sh', '-c', `ip link set lo up && exec ${realPython()} ${NETPROG} ${cargs.join(' ')}`]));
      const code = await finished(child);
      if (code !== 0 && /unshare/.test(child.stderr())) return this.skipped(`the kernel refuses a new network namespace: ${child.stderr().trim()}`);
      if (code !== 0) throw new Error(`the unreachable client (${host}) exited ${code}: ${child.stderr()}`);
      const l = this.connectLog(child, `the unreachable client (${host})`);
      if (l.errno !== ENETUNREACH) throw new Error(`the connect to ${host} in a fresh netns did not fail with ENETUNREACH: ${JSON.stringify(l)}`);
      logged.push(l);
      absent.push({ what: `connect to ${host}:80 failing with ENETUNREACH in a fresh netns`, pid: l.pid, types: ALL_TYPES });
    }
    return { expects: [], absent, logged: { clients: logged } };
  }

  private async timedOut(): Promise<Omit<WorkloadResult, 'id'>> {
    const listener = this.py(['listen', '--host', '127.0.0.1', '--backlog', '0']);
    const port = num((await waitForLog(listener, 'the backlog-0 listener', (l) => l.event === 'listening')).port);
    const filler = await this.connectOnce('the connection filling the accept queue', ['connect', '--host', '127.0.0.1', '--port', String(port)]);
    if (!filler.log.ok) throw new Error(`the filler did not connect: ${JSON.stringify(filler.log)}`);
    const cargs = ['connect', '--host', '127.0.0.1', '--port', String(port), '--syncnt', '1', '--sniff'];
    const c = await this.connectOnce('the timed-out client', cargs);
    await listener.stop();
    if (c.log.errno !== ETIMEDOUT) throw new Error(`the connect to a full accept queue did not time out: ${JSON.stringify(c.log)}`);
    if (!c.log.sport) throw new Error(`the SYN of the timed-out connect was not seen on lo: ${JSON.stringify(c.log)}`);
    return {
      expects: [this.establishOf('timed-out connect', c.log, cargs, {}, { outcome: 'timeout' })],
      absent: [],
      logged: { filler: filler.log, client: c.log },
    };
  }

  private async g(): Promise<Omit<WorkloadResult, 'id'>> {
    const args = ['never-connected'];
    const start = Date.now();
    const child = this.py(args);
    await exitedWith(child, 'the never-connected sockets program');
    const logs = logsOf(child);
    if (!logs.some((l) => l.event === 'done')) throw new Error(`never-connected did not finish: ${child.stdout()}`);
    // Its listeners did listen(): a TcpListen each (their close emits nothing)
    const listens = logs
      .filter((l) => l.event === 'closed-unconnected')
      .map(
        (l): Expect => ({
          what: `TcpListen of the IPv${l.family} listener closed without a connection`,
          type: LISTEN,
          pid: l.pid,
          sport: num(l.listener_port),
          dport: 0,
          from: start - SLACK_MS,
          to: l.at + SLACK_MS,
          want: { tid: l.tid, ...this.pyWant(args, l.ppid!), saddr: l.family === 6 ? '::1' : '127.0.0.1', daddr: l.family === 6 ? '::' : '0.0.0.0' },
        }),
      );
    return {
      expects: listens,
      absent: [{ what: 'closed listeners, bound-only and unused sockets', pid: child.proc.pid!, types: ALL_TYPES }],
      logged: { logs },
    };
  }

  private async h(): Promise<Omit<WorkloadResult, 'id'>> {
    const { server, client, port, accept, connected } = this.pre!;
    const signalled = Date.now();
    client.proc.kill('SIGUSR1');
    const closed = await waitForLog(client, 'the pre-existing connection to close', (l) => l.event === 'closed');
    await exitedWith(client, 'the pre-existing client');
    await exitedWith(server, 'the pre-existing server');
    const serverClosed = logsOf(server).find((l) => l.event === 'closed')!;
    const sport = num(connected.sport);
    const nonzero = matcher('a nonzero cookie', (v) => typeof v === 'number' && v !== 0);
    // spec: a connection older than the sensor lasts "from the sensor's start", which fell
    // between the end of beforeSensor() and the start of run()
    const sinceSensorStart = (closedAt: number) =>
      matcher(
        `the ms since the sensor started: ${Math.round(closedAt - this.sensorStartedBefore)}..${Math.round(closedAt - this.sensorStartedAfter)} (± ${DURATION_SLACK_MS})`,
        (v) =>
          typeof v === 'number' && v >= closedAt - this.sensorStartedBefore - DURATION_SLACK_MS && v <= closedAt - this.sensorStartedAfter + DURATION_SLACK_MS,
      );
    // neither end wrote a byte
    const facts = (closedAt: number): Want => ({ outcome: 'established', bytes_sent: 0, bytes_received: 0, duration_ms: sinceSensorStart(closedAt) });
    const cargs = ['hold', '--host', '127.0.0.1', '--port', String(port)];
    const sargs = ['serve', '--host', '127.0.0.1', '--count', '1'];
    return {
      expects: [
        {
          what: "the client's Close of a connection older than the sensor",
          type: CLOSE,
          pid: client.proc.pid!,
          sport,
          dport: port,
          from: signalled - SLACK_MS,
          to: closed.at + SLACK_MS,
          want: {
            ...this.pyWant(cargs, connected.ppid!),
            tid: closed.tid,
            saddr: '127.0.0.1',
            daddr: '127.0.0.1',
            cookie: nonzero,
            ...facts(num(closed.closed_at)),
          },
        },
        {
          what: "the server's Close of a connection older than the sensor",
          type: CLOSE,
          pid: server.proc.pid!,
          sport: port,
          dport: sport,
          from: signalled - SLACK_MS,
          to: serverClosed.at + SLACK_MS,
          want: {
            ...this.pyWant(sargs, accept.ppid!),
            tid: serverClosed.tid,
            saddr: '127.0.0.1',
            daddr: '127.0.0.1',
            cookie: nonzero,
            ...facts(serverClosed.at),
          },
        },
      ],
      absent: [],
      logged: { connected, closed, accept, serverClosed },
    };
  }

  private async i(): Promise<Omit<WorkloadResult, 'id'>> {
    const prog = this.longPath!;
    if ('error' in prog) throw new Error(`cannot build the long-path client: ${prog.error}`);
    const args = prog.args(this.sink!.port);
    const full = args.join(' ');
    if (Buffer.byteLength(prog.path) < 600 || Buffer.byteLength(full) < 6 * 1024) throw new Error('the long path or the long argv is not long enough');
    const start = Date.now();
    const child = this.track(startChild(prog.path, args));
    await exitedWith(child, 'the long-path client');
    const l = this.connectLog(child, 'the long-path client');
    return {
      expects: [
        {
          what: `Establish of a binary under a ${Buffer.byteLength(prog.path)}-byte path with a ${Buffer.byteLength(full)}-byte argv`,
          type: ESTABLISH,
          pid: l.pid,
          sport: num(l.sport),
          dport: this.sink!.port,
          from: start - SLACK_MS,
          to: l.at + SLACK_MS,
          want: {
            tid: l.tid,
            ppid: process.pid,
            binary_path: prog.path,
            filename: path.basename(prog.path),
            args: argsCutMatcher(full),
            saddr: '127.0.0.1',
            daddr: '127.0.0.1',
          },
          close: { pid: l.pid },
        },
      ],
      absent: [],
      logged: { path: prog.path, pathBytes: Buffer.byteLength(prog.path), argvBytes: Buffer.byteLength(full), client: l },
    };
  }

  private async j(): Promise<Omit<WorkloadResult, 'id'>> {
    const built = this.uring!;
    if ('error' in built) return this.skipped(`the io_uring fixture cannot be built (Debian package liburing-dev): ${built.error}`);
    const server = this.track(startChild(built.path, []));
    const first = await waitForLog(server, 'the io_uring server to listen', (l) => l.event === 'listening' || l.event === 'unsupported');
    if (first.event === 'unsupported') return this.skipped(`the kernel refuses io_uring: ${first.error} (errno ${first.errno})`);
    const port = num(first.port);
    const cargs = ['connect', '--host', '127.0.0.1', '--port', String(port)];
    const c = await this.connectOnce('the client of the io_uring server', cargs);
    const code = await finished(server);
    const logs = logsOf(server);
    const unsupported = logs.find((l) => l.event === 'unsupported');
    if (code === 3 && unsupported) return this.skipped(`the kernel refuses io_uring accept: ${unsupported.error}`);
    if (code !== 0) throw new Error(`the io_uring server exited ${code}: ${server.stderr()}`);
    const accept = logs.find((l) => l.event === 'accept')!;
    const binary = realpathSync(built.path);
    return {
      expects: [
        {
          what: 'Accept through io_uring (IORING_OP_ACCEPT)',
          type: ACCEPT,
          pid: server.proc.pid!,
          sport: port,
          dport: num(c.log.sport),
          from: num(c.log.start) - SLACK_MS,
          to: accept.at + SLACK_MS,
          want: { ppid: process.pid, binary_path: binary, filename: path.basename(binary), args: '', container_id: '', saddr: '127.0.0.1', daddr: '127.0.0.1' },
          close: { pid: server.proc.pid! },
        },
        this.establishOf("the io_uring server's client", c.log, cargs),
      ],
      absent: [],
      logged: { server: logs, client: c.log },
    };
  }

  private async k(): Promise<Omit<WorkloadResult, 'id'>> {
    const n = this.options.burst ?? 2000;
    const server = this.py(['serve', '--host', '::', '--count', String(n), '--no-read', '--quiet']);
    const port = num((await waitForLog(server, 'the dual-stack burst server', (l) => l.event === 'listening')).port);
    const client = this.track(
      startChild(process.execPath, [path.join(__dirname, 'burst.js'), '--host', '127.0.0.1', '--port', String(port), '--count', String(n)]),
    );
    await exitedWith(client, 'the burst client');
    await exitedWith(server, 'the burst server');
    const conns = logsOf(client).filter((l) => l.event === 'connection');
    const accepts = logsOf(server).filter((l) => l.event === 'accept');
    const errors = logsOf(client).filter((l) => l.event === 'error');
    if (conns.length !== n || errors.length > 0)
      throw new Error(`the burst made ${conns.length} of ${n} connections, ${errors.length} errors: ${JSON.stringify(errors.slice(0, 3))}`);
    if (accepts.length !== n) throw new Error(`the burst server accepted ${accepts.length} of ${n}`);
    const mapped = accepts.filter((a) => a.raddr === '::ffff:127.0.0.1').length;
    if (mapped !== n) throw new Error(`only ${mapped} of ${n} accepted peers were ::ffff:127.0.0.1 (not a dual-stack socket?)`);
    const clientPid = client.proc.pid!;
    const serverPid = server.proc.pid!;
    const needs = new Map([
      [`${clientPid}/${ESTABLISH}`, n],
      [`${clientPid}/${CLOSE}`, n],
      [`${serverPid}/${ACCEPT}`, n],
      [`${serverPid}/${CLOSE}`, n],
    ]);
    const facts = {
      netns: this.hostNetns,
      clientKey: processKeyMatcher(clientPid, this.factsOf(clientPid)?.startTicks),
      serverKey: this.factsWant(serverPid).process_key as Matcher,
    };
    const custom = (events: readonly NetworkEvent[]) => burstCheck(events, { n, port, clientPid, serverPid, conns, ...facts });
    const first = conns.reduce((m, c) => Math.min(m, num(c.start)), Number.POSITIVE_INFINITY);
    const last = conns.reduce((m, c) => Math.max(m, num(c.end)), 0);
    return { expects: [], absent: [], custom, needs, logged: { n, port, clientPid, serverPid, first, last, spanMs: last - first } };
  }

  private async l(): Promise<Omit<WorkloadResult, 'id'>> {
    const up = 5000;
    const down = 1 << 20;
    const sargs = ['transfer-serve', '--host', '127.0.0.1', '--expect', String(up), '--send', String(down)];
    const server = this.py(sargs);
    const port = num((await waitForLog(server, 'the transfer server to listen', (l) => l.event === 'listening')).port);
    const cargs = ['transfer', '--host', '127.0.0.1', '--port', String(port), '--send', String(up), '--expect', String(down), '--hold-ms', '1500'];
    const client = this.py(cargs);
    await exitedWith(client, 'the transfer client');
    await exitedWith(server, 'the transfer server');
    const line = (c: Child, event: string) => {
      const l = logsOf(c).find((x) => x.event === event);
      if (!l) throw new Error(`the transfer ${c === client ? 'client' : 'server'} logged no "${event}": ${c.stdout().slice(-600)}`);
      return l;
    };
    const [connected, closed, accept, served] = [line(client, 'connected'), line(client, 'closed'), line(server, 'accept'), line(server, 'closed')];
    if (closed.sent !== up || closed.received !== down || served.received !== up || served.sent !== down)
      throw new Error(`the transfer did not carry ${up} bytes up and ${down} down: client ${JSON.stringify(closed)}, server ${JSON.stringify(served)}`);
    const sport = num(connected.sport);
    return {
      expects: [
        {
          what: 'Establish of the client that sent 5,000 bytes and received 1 MiB',
          type: ESTABLISH,
          pid: connected.pid,
          sport,
          dport: port,
          from: num(connected.start) - SLACK_MS,
          to: connected.at + SLACK_MS,
          want: { tid: connected.tid, ...this.pyWant(cargs, connected.ppid!), saddr: '127.0.0.1', daddr: '127.0.0.1' },
          close: {
            pid: closed.pid,
            tidIn: [closed.tid!],
            want: {
              outcome: 'established',
              bytes_sent: up,
              bytes_received: down,
              duration_ms: near(num(closed.duration_ms), DURATION_SLACK_MS, 'the client measured it from before connect() to after close()'),
            },
          },
        },
        {
          what: 'Accept of the server that received 5,000 bytes and sent 1 MiB',
          type: ACCEPT,
          pid: accept.pid,
          sport: port,
          dport: sport,
          from: num(connected.start) - SLACK_MS,
          to: accept.at + SLACK_MS,
          want: { tid: accept.tid, ...this.pyWant(sargs, accept.ppid!), saddr: '127.0.0.1', daddr: '127.0.0.1' },
          close: {
            pid: served.pid,
            tidIn: [served.tid!],
            want: {
              outcome: 'established',
              bytes_sent: down,
              bytes_received: up,
              duration_ms: near(num(served.duration_ms), DURATION_SLACK_MS, 'the server measured it from accept() to after close()'),
            },
          },
        },
      ],
      absent: [],
      logged: { connected, closed, accept, served },
    };
  }

  /** The routed test netns of the m workloads: made by the first that asks, removed by cleanup. */
  private routedNetns(): Promise<RoutedNetns | { skip: string }> {
    this.routed ??= Promise.resolve().then(createRoutedNetns);
    return this.routed;
  }

  /** A netprog `connect` through the routed netns; its log, and the program's close line. */
  private async routedConnect(what: string, args: string[]): Promise<{ log: Logged; closedAt: number }> {
    const c = await this.connectOnce(what, args);
    const closed = logsOf(c.child).find((l) => l.event === 'closed');
    if (!closed) throw new Error(`${what}: no "closed" line: ${c.child.stdout().slice(-500)}`);
    return { log: c.log, closedAt: closed.at };
  }

  private async mUnreachable(): Promise<Omit<WorkloadResult, 'id'>> {
    const net = await this.routedNetns();
    if ('skip' in net) return this.skipped(net.skip);
    const cargs = ['connect', '--host', net.unreachable, '--port', '80', '--sniff-dev', net.hostDev];
    // about 1 s: the peer's first ICMP error to a new destination is rate-limited away (ip_error), the retransmitted SYN's is sent
    const { log } = await this.routedConnect('the client of a host behind an unreachable route', cargs);
    if (log.errno !== EHOSTUNREACH)
      throw new Error(`the connect to ${net.unreachable} did not fail with EHOSTUNREACH (ICMP host unreachable): ${JSON.stringify(log)}`);
    if (!log.sport) throw new Error(`the SYN to ${net.unreachable} was not seen on ${net.hostDev}: ${JSON.stringify(log)}`);
    return {
      expects: [this.establishOf('connect answered by ICMP host unreachable', log, cargs, { remote_name: '' }, { outcome: 'unreachable' })],
      absent: [],
      logged: { netns: net.name, client: log },
    };
  }

  private async mTimeout(): Promise<Omit<WorkloadResult, 'id'>> {
    const net = await this.routedNetns();
    if ('skip' in net) return this.skipped(net.skip);
    const cargs = ['connect', '--host', net.blackhole, '--port', '80', '--syncnt', '1', '--sniff-dev', net.hostDev];
    const { log, closedAt } = await this.routedConnect('the client of a blackholed host', cargs);
    if (log.errno !== ETIMEDOUT) throw new Error(`the connect to ${net.blackhole} (blackhole route) did not time out: ${JSON.stringify(log)}`);
    if (!log.sport) throw new Error(`the SYN to ${net.blackhole} was not seen on ${net.hostDev}: ${JSON.stringify(log)}`);
    const duration = near(closedAt - num(log.start), DURATION_SLACK_MS, 'the program measured it from before connect() to after close()');
    return {
      expects: [
        this.establishOf('connect whose SYNs are dropped (TCP_SYNCNT=1)', log, cargs, { remote_name: '' }, { outcome: 'timeout', duration_ms: duration }),
      ],
      absent: [],
      logged: { netns: net.name, client: log, closedAt },
    };
  }

  private async mAborted(): Promise<Omit<WorkloadResult, 'id'>> {
    const net = await this.routedNetns();
    if ('skip' in net) return this.skipped(net.skip);
    const cargs = ['connect', '--host', net.blackhole, '--port', '80', '--abort-ms', '300'];
    const { log, closedAt } = await this.routedConnect('the client giving up on a blackholed host', cargs);
    if (log.errno !== EINPROGRESS || log.pending !== true || log.so_error !== 0)
      throw new Error(`the non-blocking connect to ${net.blackhole} was not still pending after 300 ms: ${JSON.stringify(log)}`);
    const duration = near(closedAt - num(log.start), DURATION_SLACK_MS, 'the program measured it from before connect() to after close()');
    return {
      expects: [
        this.establishOf(
          'non-blocking connect closed while its SYN was unanswered',
          log,
          cargs,
          { remote_name: '' },
          { outcome: 'aborted', duration_ms: duration },
        ),
      ],
      absent: [],
      logged: { netns: net.name, client: log, closedAt },
    };
  }

  private async mReset(): Promise<Omit<WorkloadResult, 'id'>> {
    const net = await this.routedNetns();
    if ('skip' in net) return this.skipped(net.skip);
    // both ends inside the test netns (its loopback): their events carry its netns, not this host's
    const inNetns = (args: string[]) => this.track(startChild('ip', ['netns', 'exec', net.name, realPython(), NETPROG, ...args]));
    const sargs = ['reset-serve', '--host', '127.0.0.1'];
    const server = inNetns(sargs);
    const port = num((await waitForLog(server, 'the resetting server to listen', (l) => l.event === 'listening')).port);
    const cargs = ['reset-client', '--host', '127.0.0.1', '--port', String(port)];
    const client = inNetns(cargs);
    await exitedWith(client, 'the client of the resetting server');
    await exitedWith(server, 'the resetting server');
    const [connected, recv, accept, closed] = [
      logsOf(client).find((l) => l.event === 'connected'),
      logsOf(client).find((l) => l.event === 'recv'),
      logsOf(server).find((l) => l.event === 'accept'),
      logsOf(server).find((l) => l.event === 'closed'),
    ];
    if (!connected || !recv || !accept || !closed) throw new Error(`the reset programs did not log every step: ${client.stdout()} ${server.stdout()}`);
    if (recv.errno !== ECONNRESET) throw new Error(`the client's recv did not fail with ECONNRESET: ${JSON.stringify(recv)}`);
    if (closed.received !== 1 || closed.linger0 !== true)
      throw new Error(`the server did not read the byte and close with SO_LINGER {on, 0}: ${JSON.stringify(closed)}`);
    if (connected.netns === this.hostNetns || accept.netns !== connected.netns)
      throw new Error(`the reset programs did not run in the test netns: ${JSON.stringify({ connected, accept })}`);
    const sport = num(connected.sport);
    return {
      expects: [
        {
          what: "Establish of the client whose connection the server resets (the client's recv gets ECONNRESET)",
          type: ESTABLISH,
          pid: connected.pid,
          sport,
          dport: port,
          from: num(connected.start) - SLACK_MS,
          to: connected.at + SLACK_MS,
          want: { tid: connected.tid, ...this.pyWant(cargs, connected.ppid!), saddr: '127.0.0.1', daddr: '127.0.0.1' },
          // its one byte may or may not be acknowledged before the RST: bytes_sent not stated
          close: { pid: connected.pid, tidIn: [connected.tid!], want: { outcome: 'reset', bytes_received: 0 } },
        },
        {
          what: 'Accept of the server that resets the connection (SO_LINGER {on, 0})',
          type: ACCEPT,
          pid: accept.pid,
          sport: port,
          dport: sport,
          from: num(connected.start) - SLACK_MS,
          to: accept.at + SLACK_MS,
          want: { tid: accept.tid, ...this.pyWant(sargs, accept.ppid!), saddr: '127.0.0.1', daddr: '127.0.0.1' },
          close: { pid: accept.pid, tidIn: [closed.tid!], want: { outcome: 'reset', bytes_sent: 0, bytes_received: 1 } },
        },
      ],
      absent: [],
      logged: { netns: net.name, inode: connected.netns, connected, recv, accept, closed },
    };
  }

  private async n(): Promise<Omit<WorkloadResult, 'id'>> {
    const listeners = await Promise.all(
      (
        [
          ['127.0.0.1', '127.0.0.1', '0.0.0.0'],
          ['::', '::', '::'],
        ] as const
      ).map(async ([host, saddr, daddr]) => {
        const args = ['listen', '--host', host];
        const start = Date.now();
        const child = this.py(args);
        const l = await waitForLog(child, `the listener on ${host}`, (x) => x.event === 'listening');
        const code = await child.stop('SIGTERM');
        if (code !== 0) throw new Error(`the listener on ${host} exited ${code} on SIGTERM: ${child.stderr()}`);
        const x: Expect = {
          what: `TcpListen of a listener on ${host} that never accepts`,
          type: LISTEN,
          pid: l.pid,
          sport: num(l.port),
          dport: 0,
          from: start - SLACK_MS,
          to: l.at + SLACK_MS,
          // cookie: SO_COOKIE read after listen() returned, the socket's kernel cookie
          want: { tid: l.tid, ...this.pyWant(args, l.ppid!), saddr, daddr, cookie: num(l.cookie) },
        };
        return { x, log: l };
      }),
    );
    const custom = (events: readonly NetworkEvent[]) =>
      listeners.flatMap(({ x }) => {
        const all = events.filter((e) => e.process.pid === x.pid && e.network_event.type === LISTEN);
        return all.length === 1
          ? []
          : [`${x.what} [pid ${x.pid}]: ${all.length} TcpListen events, expected exactly one:\n      ${all.map((e) => describeEvent(e)).join('\n      ')}`];
      });
    return {
      expects: listeners.map((l) => l.x),
      absent: listeners.map(({ x }) => ({ what: `${x.what}, stopped by SIGTERM`, pid: x.pid, types: ALL_TYPES })),
      custom,
      logged: { listeners: listeners.map((l) => l.log) },
    };
  }

  private async o(): Promise<Omit<WorkloadResult, 'id'>> {
    const args = ['pid-reuse', '--host', '127.0.0.1', '--port', String(this.sink!.port)];
    const parent = this.py(args);
    await exitedWith(parent, 'the pid-reuse program');
    const logs = logsOf(parent);
    const failed = logs.find((l) => l.event === 'reuse-failed');
    if (failed) return this.skipped(`no second process got the first one's pid: ${failed.reason}`);
    const [a, b] = ['A', 'B'].map((tag) => logs.find((l) => l.event === 'connect' && l.tag === tag));
    if (!a || !b || !logs.some((l) => l.event === 'reused')) throw new Error(`the pid-reuse program did not log both children: ${parent.stdout()}`);
    if (a.pid !== b.pid || a.start_ticks === b.start_ticks) throw new Error(`the children are not two processes with one pid: ${JSON.stringify({ a, b })}`);
    const expects = [a, b].map((l) =>
      this.establishOf(`Establish of child ${l.tag} (pid ${l.pid}, started at tick ${l.start_ticks})`, l, args, {
        process_key: processKeyMatcher(l.pid, num(l.start_ticks)),
      }),
    );
    const custom = (events: readonly NetworkEvent[]) => {
      const [ea, eb] = expects.map((x) => findExpected(events, x)[0]);
      if (!ea || !eb) return []; // the expectations report it
      return ea.process_key === eb.process_key ? [`both processes with pid ${a.pid} carry process_key ${ea.process_key}: pid reuse is not told apart`] : [];
    };
    return { expects, absent: [], custom, logged: { logs } };
  }
}

async function waitUntilCount(child: Child, event: string, n: number): Promise<void> {
  await waitForLog(child, `${n} "${event}" lines`, () => logsOf(child).filter((l) => l.event === event).length >= n);
}

/** The burst: exact counts, every logged connection found by port and time on both sides, every cookie paired. */
function burstCheck(
  events: readonly NetworkEvent[],
  b: { n: number; port: number; clientPid: number; serverPid: number; conns: Logged[]; netns: number; clientKey: Matcher; serverKey: Matcher },
): string[] {
  const of = (pid: number, type: EventType) => events.filter((e) => e.process.pid === pid && e.network_event.type === type);
  const est = of(b.clientPid, ESTABLISH);
  const acc = of(b.serverPid, ACCEPT);
  const closeC = of(b.clientPid, CLOSE);
  const closeS = of(b.serverPid, CLOSE);
  const out: string[] = [];
  for (const [what, list, want] of [
    ['Establish of the client', est, b.n],
    ['Accept of the server', acc, b.n],
    ['Close of the client', closeC, b.n],
    ['Close of the server', closeS, b.n],
  ] as const) {
    if (list.length !== want) out.push(`${what}: ${list.length} events, expected exactly ${want}`);
  }
  const problems = new Map<string, string[]>();
  const problem = (kind: string, example: string) => {
    const l = problems.get(kind) ?? [];
    l.push(example);
    problems.set(kind, l);
  };
  const byCookie = new Map<number, NetworkEvent[]>();
  for (const c of [...closeC, ...closeS]) byCookie.set(c.network_event.cookie, [...(byCookie.get(c.network_event.cookie) ?? []), c]);
  const used = new Set<NetworkEvent>();
  /** The unused event of the list with this port, inside the connection's window, nearest its start. */
  const pick = (list: NetworkEvent[], portOf: (e: NetworkEvent) => number, port: number, c: Logged) => {
    let best: NetworkEvent | undefined;
    for (const e of list) {
      if (used.has(e) || portOf(e) !== port) continue;
      const t = Date.parse(e.timestamp);
      if (t < num(c.start) - SLACK_MS || t > num(c.end) + SLACK_MS) continue;
      if (!best || Math.abs(t - num(c.start)) < Math.abs(Date.parse(best.timestamp) - num(c.start))) best = e;
    }
    if (best) used.add(best);
    return best;
  };
  const cookies = new Set<number>();
  for (const c of b.conns) {
    const sport = num(c.sport);
    for (const [side, list, portOf, closer] of [
      ['Establish', est, (e: NetworkEvent) => e.network_event.sport, b.clientPid],
      ['Accept', acc, (e: NetworkEvent) => e.network_event.dport, b.serverPid],
    ] as const) {
      const e = pick(list, portOf, sport, c);
      if (!e) {
        problem(`no ${side} for a logged connection (port + time)`, `client port ${sport} at ${new Date(num(c.start)).toISOString().slice(11)}`);
        continue;
      }
      const n = e.network_event;
      const tuple = side === 'Establish' ? [sport, b.port] : [b.port, sport];
      if (n.saddr !== '127.0.0.1' || n.daddr !== '127.0.0.1' || n.sport !== tuple[0] || n.dport !== tuple[1]) {
        problem(`${side} with a wrong four-tuple`, describeEvent(e));
      }
      if (cookies.has(n.cookie)) problem('a cookie carried by two connections', describeEvent(e));
      cookies.add(n.cookie);
      const closes = byCookie.get(n.cookie) ?? [];
      if (closes.length !== 1) {
        problem(`${side} without exactly one Close of its cookie`, `${describeEvent(e)} → ${closes.length} Closes`);
        continue;
      }
      const cl = closes[0]!;
      if (
        cl.process.pid !== closer ||
        cl.network_event.sport !== n.sport ||
        cl.network_event.dport !== n.dport ||
        cl.network_event.saddr !== n.saddr ||
        cl.network_event.daddr !== n.daddr
      ) {
        problem(`${side}'s Close from another process or with another four-tuple`, `${describeEvent(e)}\n        Close: ${describeEvent(cl)}`);
      }
    }
  }
  // v2: every event in this host's netns, each process's under one process_key, every connection established
  for (const [who, list, key] of [
    ['client', [...est, ...closeC], b.clientKey],
    ['server', [...acc, ...closeS], b.serverKey],
  ] as const) {
    for (const e of list)
      if (e.connection?.netns !== b.netns) problem(`${who} event not in netns ${b.netns}`, `${describeEvent(e)} netns=${e.connection?.netns}`);
    const keys = [...new Set(list.map((e) => e.process_key))];
    if (keys.length !== 1 || !key.test(keys[0], list[0]!))
      out.push(`the ${who}'s events carry process_key ${JSON.stringify(keys.slice(0, 3))}, expected one: ${key.describe}`);
  }
  for (const e of [...closeC, ...closeS]) if (e.connection?.outcome !== 'established') problem('Close not established', describeEvent(e));
  for (const [kind, examples] of problems) {
    out.push(`${kind}: ${examples.length} of ${b.n}; e.g.\n        ${examples.slice(0, 4).join('\n        ')}`);
  }
  return out;
}
