// The per-host process table: who ran what, keyed by (pid, start ticks) so
// that a reused pid never inherits the previous program. Start ticks are
// floor(start_time_us / 10000), the clock ticks of /proc/PID/stat, because
// /proc snapshot records know only ticks while kernel exec records know µs.
//
// Memory is bounded twice:
//  - an exited process stays for `exitGraceUs` of its host's time (closes of
//    its sockets may still be on their way), then leaves;
//  - the whole table (all hosts) holds at most `maxEntries`; beyond that,
//    exited entries go first (oldest exit first), then live ones by a clock
//    (second chance) sweep in insertion order, and each eviction is counted.
// About 330 bytes per entry with typical strings (test/enricher.test.ts
// measures it), and ~65 more once the process had an event (its process key,
// kept for its next events), so the default 1,000,000 entries is ~430 MB at
// worst.
import type { ProcessExec, ProcessFork, SecureExecFlag } from '@netmon/common';
import { type ProcessKeyCache, type ProgramFacts, basename, formatArgs, formatSecureExec } from './event';

export const TICK_US = 10_000;

export function startTicks(startTimeUs: number): number {
  return Math.floor(startTimeUs / TICK_US);
}

export class ProcEntry implements ProgramFacts, ProcessKeyCache {
  /** Another process with the same pid (pid reuse), if any. */
  next: ProcEntry | null = null;
  /** The process key of its events (cachedProcessKey), and the start time it was made for. */
  key = '';
  keyStartUs = -1;
  /** Host time (µs) of the exit, or -1 while running. */
  exitUs = -1;
  /** Set on every lookup; cleared by the eviction sweep (second chance). */
  referenced = false;
  /** False for a placeholder made when the wait for its record timed out. */
  known = true;
  constructor(
    readonly host: HostTable,
    readonly pid: number,
    readonly ticks: number,
    public filename: string,
    public binaryPath: string,
    public args: string,
    public secureexec: string,
    /**
     * Kernel time (µs since boot) of the exec, or of the fork for a process
     * that runs its parent's program; 0 for a snapshot.
     */
    public execKtimeUs: number,
  ) {}
}

/** The durable form of an entry (changelog value). */
export interface EntryState {
  pid: number;
  ticks: number;
  binary_path: string;
  args: string;
  secureexec: string;
  exec_ktime_us: number;
  exit_us: number;
}

export interface TableChange {
  hostId: string;
  pid: number;
  ticks: number;
  /** null: the entry left the table. */
  state: EntryState | null;
}

export class HostTable {
  readonly byPid = new Map<number, ProcEntry>();
  /** Exited entries in exit order (queue with a head index). */
  exited: ProcEntry[] = [];
  exitedHead = 0;
  /** Latest record time of this host (µs), the clock of the exit grace. */
  nowUs = 0;
  constructor(readonly hostId: string) {}

  lookup(pid: number, ticks: number): ProcEntry | null {
    let e: ProcEntry | null = this.byPid.get(pid) ?? null;
    while (e !== null && e.ticks !== ticks) e = e.next;
    return e;
  }
}

export interface TableOptions {
  /** Host time an exited process stays in the table (µs). */
  exitGraceUs: number;
  maxEntries: number;
  /** Record changes for takeChanges() (the service's changelog). */
  trackChanges: boolean;
}

export const DEFAULT_TABLE_OPTIONS: TableOptions = { exitGraceUs: 60_000_000, maxEntries: 1_000_000, trackChanges: false };

export class ProcessTable {
  private readonly hosts = new Map<string, HostTable>();
  /** Live and exited entries in insertion order: the eviction clock. */
  private readonly clock = new Set<ProcEntry>();
  private readonly changes = new Map<string, TableChange>();
  readonly options: TableOptions;
  evicted = 0;
  expired = 0;
  /** Exited entries still in the table. */
  private exitedCount = 0;

  constructor(options: Partial<TableOptions> = {}) {
    this.options = { ...DEFAULT_TABLE_OPTIONS, ...options };
  }

  get size(): number {
    return this.clock.size;
  }

  get hostCount(): number {
    return this.hosts.size;
  }

  host(hostId: string): HostTable {
    let h = this.hosts.get(hostId);
    if (h === undefined) {
      h = new HostTable(hostId);
      this.hosts.set(hostId, h);
    }
    return h;
  }

  /** Advances a host's clock and lets exited processes past their grace go. */
  advance(h: HostTable, timeUs: number): void {
    if (timeUs > h.nowUs) h.nowUs = timeUs;
    const limit = h.nowUs - this.options.exitGraceUs;
    while (h.exitedHead < h.exited.length) {
      const e = h.exited[h.exitedHead]!;
      if (e.exitUs < 0 || !this.clock.has(e)) {
        h.exitedHead++; // evicted already, or replaced
        continue;
      }
      if (e.exitUs > limit) break;
      h.exitedHead++;
      this.remove(e);
      this.expired++;
    }
    if (h.exitedHead > 1024 && h.exitedHead * 2 > h.exited.length) {
      h.exited = h.exited.slice(h.exitedHead);
      h.exitedHead = 0;
    }
  }

  lookup(h: HostTable, pid: number, ticks: number): ProcEntry | null {
    const e = h.lookup(pid, ticks);
    if (e !== null) e.referenced = true;
    return e;
  }

  /** An exec or snapshot record: the process now runs this program. */
  exec(h: HostTable, rec: ProcessExec): ProcEntry {
    const t = rec.task;
    return this.upsert(
      h,
      t.pid,
      startTicks(t.start_time_us),
      rec.binary_path,
      formatArgs(rec.args, rec.args_truncated),
      secureExecOf(rec.secureexec),
      rec.snapshot ? 0 : t.ktime_us,
      true,
    );
  }

  /**
   * A fork record: until it execs, the child runs its parent's program, so
   * its entry copies the parent's program facts (a later exec replaces them).
   * An entry made this way is tracked like an exec's (changelog).
   *
   * A parent that is not in the table (its records lost, or evicted), or is
   * only a placeholder, gives the child a placeholder (filename from its
   * comm): that is what the child's socket records would get after waiting
   * for a record that, with its parent unknown, will not come; so they go out
   * at once instead of holding back their host. Any exec or snapshot record
   * of the child still replaces it.
   *
   * Returns the child's entry.
   */
  fork(h: HostTable, rec: ProcessFork): ProcEntry {
    const t = rec.task;
    const ticks = startTicks(t.start_time_us);
    const child = h.lookup(t.pid, ticks);
    // The child exec'd after this fork already (a duplicate or late fork
    // record): its own program stays.
    if (child?.known && child.execKtimeUs > t.ktime_us) return child;
    const parent = this.lookup(h, rec.parent_pid, startTicks(rec.parent_start_time_us));
    if (!parent?.known) return child ?? this.placeholder(h, t.pid, ticks, t.comm);
    return this.upsert(h, t.pid, ticks, parent.binaryPath, parent.args, parent.secureexec, t.ktime_us, true);
  }

  /** A placeholder for a process whose record never came (filename from comm). */
  placeholder(h: HostTable, pid: number, ticks: number, comm: string): ProcEntry {
    const e = this.upsert(h, pid, ticks, '', '', '', 0, false);
    e.filename = comm;
    e.known = false;
    return e;
  }

  upsert(h: HostTable, pid: number, ticks: number, binaryPath: string, args: string, secureexec: string, execKtimeUs: number, track: boolean): ProcEntry {
    let e = h.lookup(pid, ticks);
    if (e === null) {
      this.makeRoom();
      e = new ProcEntry(h, pid, ticks, basename(binaryPath), binaryPath, args, secureexec, execKtimeUs);
      e.next = h.byPid.get(pid) ?? null;
      h.byPid.set(pid, e);
      this.clock.add(e);
    } else {
      e.filename = basename(binaryPath);
      e.binaryPath = binaryPath;
      e.args = args;
      e.secureexec = secureexec;
      e.execKtimeUs = execKtimeUs;
      e.known = true;
    }
    if (track) this.track(e);
    return e;
  }

  /** An exit record: the process leaves after the grace period. */
  exit(h: HostTable, pid: number, ticks: number, timeUs: number): ProcEntry | null {
    const e = h.lookup(pid, ticks);
    if (e === null || e.exitUs >= 0) return e;
    e.exitUs = Math.max(timeUs, 0);
    h.exited.push(e);
    this.exitedCount++;
    if (e.known) this.track(e);
    return e;
  }

  /** Restores one entry from its durable form (changelog). */
  restore(hostId: string, s: EntryState): void {
    const h = this.host(hostId);
    const e = this.upsert(h, s.pid, s.ticks, s.binary_path, s.args, s.secureexec, s.exec_ktime_us, false);
    if (s.exit_us >= 0 && e.exitUs < 0) {
      e.exitUs = s.exit_us;
      h.exited.push(e);
      this.exitedCount++;
    }
    if (s.exit_us > h.nowUs) h.nowUs = s.exit_us;
  }

  /** Forgets an entry restored earlier (changelog tombstone). */
  forget(hostId: string, pid: number, ticks: number): void {
    const h = this.hosts.get(hostId);
    const e = h?.lookup(pid, ticks);
    if (e) this.remove(e, false);
  }

  /** Changes since the last call, one per (host, pid, ticks), latest state. */
  takeChanges(): TableChange[] {
    if (this.changes.size === 0) return [];
    const out = [...this.changes.values()];
    for (const c of out) {
      if (c.state !== null) {
        const e = this.host(c.hostId).lookup(c.pid, c.ticks);
        c.state = e ? stateOf(e) : null;
      }
    }
    this.changes.clear();
    return out;
  }

  private track(e: ProcEntry): void {
    if (!this.options.trackChanges) return;
    const key = `${e.host.hostId}\u0000${e.pid}\u0000${e.ticks}`;
    this.changes.set(key, { hostId: e.host.hostId, pid: e.pid, ticks: e.ticks, state: PENDING_STATE });
  }

  private remove(e: ProcEntry, track = true): void {
    const h = e.host;
    const head = h.byPid.get(e.pid);
    if (head === e) {
      if (e.next) h.byPid.set(e.pid, e.next);
      else h.byPid.delete(e.pid);
    } else {
      let p = head;
      while (p && p.next !== e) p = p.next ?? undefined;
      if (p) p.next = e.next;
    }
    e.next = null;
    if (this.clock.delete(e) && e.exitUs >= 0) this.exitedCount--;
    if (track && this.options.trackChanges && e.known) {
      const key = `${h.hostId}\u0000${e.pid}\u0000${e.ticks}`;
      this.changes.set(key, { hostId: h.hostId, pid: e.pid, ticks: e.ticks, state: null });
    }
  }

  private makeRoom(): void {
    if (this.clock.size < this.options.maxEntries) return;
    // Exited entries first: they are leaving anyway.
    for (const e of this.clock) {
      if (e.exitUs >= 0) {
        this.remove(e);
        this.evicted++;
        return;
      }
      break;
    }
    if (this.exitedCount > 0)
      for (const h of this.hosts.values()) {
        while (h.exitedHead < h.exited.length) {
          const e = h.exited[h.exitedHead++]!;
          if (this.clock.has(e)) {
            this.remove(e);
            this.evicted++;
            return;
          }
        }
      }
    // Then a clock sweep: a recently used entry gets a second chance.
    for (;;) {
      const first = this.clock.values().next();
      if (first.done) return;
      const e = first.value;
      if (e.referenced) {
        e.referenced = false;
        this.clock.delete(e);
        this.clock.add(e);
        continue;
      }
      this.remove(e);
      this.evicted++;
      return;
    }
  }
}

/** Marker replaced by the entry's state in takeChanges(). */
const PENDING_STATE: EntryState = { pid: 0, ticks: 0, binary_path: '', args: '', secureexec: '', exec_ktime_us: 0, exit_us: -1 };

function stateOf(e: ProcEntry): EntryState {
  return { pid: e.pid, ticks: e.ticks, binary_path: e.binaryPath, args: e.args, secureexec: e.secureexec, exec_ktime_us: e.execKtimeUs, exit_us: e.exitUs };
}

function secureExecOf(flags: readonly SecureExecFlag[]): string {
  return formatSecureExec(flags);
}
