// The enrichment, pure and synchronous: raw records in (with a position, e.g.
// a Kafka offset), NetworkEvents out through a sink, in each host's order.
//
// Ordering. A socket record whose process is not in the table yet waits up to
// `processWaitMs` for the exec/snapshot record (the sensor's /proc scan races
// with kernel events). While it waits, the later records of the SAME host
// queue behind it (they are enriched on arrival, against the table as it was
// at their place in the stream, then held), so each host's output (its events
// and its sensor status records) keeps its input order; other hosts flow
// freely. Process records are applied to the table at once, whatever is
// queued, and resolve the waiting records of their process. Deadlines are in
// arrival order, so a host is held back at most processWaitMs. After a
// timeout the record goes out with what is known
// (filename from comm, empty path/args/secureexec) and a placeholder entry
// remembers the process, so its next records do not wait again.
//
// Fork without exec. A fork record gives the child (its own pid and start
// time) its parent's program facts, so a pre-fork server's workers carry the
// server's binary; a later exec of the child replaces them. It resolves the
// child's waiting records like an exec record does.
//
// Bad records. push() refuses a record that breaks the contract with a
// ContractError before any change (the caller dead-letters or skips it); a
// record whose enrichment fails anyway (a bug) goes out without an event,
// reported to sink.rejected: no single record stops the stream.
//
// Positions. The caller learns, per host, the position up to which every
// record of the host has been handled (`takeDone`), and the oldest position
// still held (`oldestHeld`): a consumer commits up to the latter and, after a
// restart, skips records at or below a host's done position (exactly once
// across restarts while records are held).
//
// DNS names. A host's DNS responses (raw DnsResponse records, as the kernel
// copied them) are parsed here, in the unprivileged enricher, into the host's
// DNS cache (per network namespace, TTL- and size-bounded, carried by the
// changelog); a connection's remote_name is the name the cache gives its
// remote address when it opened. The process filter does not apply to
// answers: a kept process's connection gets its name whoever resolved it.
import {
  type DnsResponse,
  DnsParseError,
  type NetmonConfig,
  NetmonError,
  type NetworkEvent,
  type ProcessExec,
  type ProcessExit,
  type ProcessFork,
  type ProcessFilter,
  type RawPayload,
  type RawPayloadOf,
  type RawRecord,
  type SensorStatus,
  type SocketEvent,
  describeError,
  parseDnsAnswer,
} from '@netmon/common';
import { ContainerIdCache } from './container';
import { DnsCache, type DnsCacheOptions } from './dns-cache';
import { EVENT_TYPE, type EventParts, cachedProcessKey, eventOf, eventParts } from './event';
import { type FilterSubject, type ProcessPredicate, compileFilter } from './filter';
import { type HostTable, type ProcEntry, ProcessTable, type TableOptions, startTicks } from './process-table';

/** A decoded record that breaks the contract (dead-lettered by the service). */
export class ContractError extends NetmonError {
  readonly reason = 'contract';
}

/** A record the checks let through but whose enrichment failed (a bug): skipped. */
export class EnrichError extends NetmonError {
  readonly reason = 'enrich';
}

export interface EnricherSink {
  /** An event that passed the filter, in its host's order (one of event and eventParts is given). */
  event?(event: NetworkEvent, hostId: string): void;
  /** In event's place: the event's parts, for a sink that writes them itself (no NetworkEvent is made). */
  eventParts?(parts: EventParts, hostId: string): void;
  /**
   * A sensor status record (not an event), in its host's order: after the
   * events of the host's records before it, and the host's done position
   * passes it only then (so a consumer that publishes it does so exactly once
   * across restarts, as it does the events).
   */
  status?(record: RawRecord, status: SensorStatus): void;
  /**
   * A record accepted by push() whose enrichment failed: it goes out without
   * an event (counted in `rejected`), and the stream goes on.
   */
  rejected?(record: RawRecord, position: number, error: EnrichError): void;
}

export interface EnricherOptions extends Partial<TableOptions> {
  processWaitMs: number;
  filter: ProcessFilter | null;
  dns?: Partial<DnsCacheOptions>;
}

export function enricherOptions(config: NetmonConfig, extra: Partial<TableOptions> = {}): EnricherOptions {
  return { processWaitMs: config.enricher.processWaitMs, filter: config.processFilter, ...extra };
}

export interface EnricherCounters {
  records: number;
  socket: number;
  exec: number;
  /** Fork records (a new process running its parent's program). */
  fork: number;
  exit: number;
  status: number;
  /** DNS responses read, and those too malformed to parse. */
  dns: number;
  dnsUnparsed: number;
  /** Events out (passed the filter). */
  out: number;
  filtered: number;
  /** Socket records that waited for their process record. */
  waited: number;
  /** ...and whose process record came in time. */
  waitResolved: number;
  /** Socket records that went out without their process (after a wait, or at once). */
  unknown: number;
  /** Records a sensor sent twice (same run, sequence number not above the last). */
  duplicates: number;
  /** Records refused by push() (ContractError) or whose enrichment failed (EnrichError). */
  rejected: number;
}

export function zeroCounters(): EnricherCounters {
  return {
    records: 0,
    socket: 0,
    exec: 0,
    fork: 0,
    exit: 0,
    status: 0,
    dns: 0,
    dnsUnparsed: 0,
    out: 0,
    filtered: 0,
    waited: 0,
    waitResolved: 0,
    unknown: 0,
    duplicates: 0,
    rejected: 0,
  };
}

/** A record held in its host's queue. */
interface Held {
  position: number;
  /** The event, null when filtered out or not a socket record. */
  event: EventParts | null;
  /** A sensor status record held to go out in its place. */
  status?: { record: RawRecord; value: SensorStatus };
  /** Waiting for its process: the record, else null (ready). */
  waiting: RawRecord | null;
  socket: SocketEvent | null;
  ticks: number;
  deadline: number;
}

interface HostState {
  table: HostTable;
  hostObj: NetworkEvent['host'];
  queue: Held[];
  head: number;
  waiting: number;
  /** Every record of the host at or below this position is handled. */
  done: number;
  lastStatus: SensorStatus | null;
  /** The sensor run seen last and its highest sequence number. */
  runId: string;
  lastSeq: number;
  /** runId and lastSeq before the oldest held record: dropHeld() goes back to them. */
  runBeforeHeld: string;
  seqBeforeHeld: number;
}

export class Enricher {
  readonly table: ProcessTable;
  readonly dns: DnsCache;
  readonly counters: EnricherCounters = zeroCounters();
  private readonly hosts = new Map<string, HostState>();
  /** Hosts with a non-empty queue. */
  private readonly busy = new Set<HostState>();
  private readonly doneChanged = new Set<HostState>();
  private readonly containers = new ContainerIdCache();
  private keep: ProcessPredicate;
  private readonly waitMs: number;
  private readonly subject: FilterSubject = { uid: 0, euid: 0, auid: 0, filename: '', binary_path: '' };

  constructor(
    options: EnricherOptions,
    private readonly sink: EnricherSink,
  ) {
    if (!sink.event && !sink.eventParts) throw new TypeError('an enricher sink takes events (event or eventParts)');
    this.table = new ProcessTable(options);
    this.dns = new DnsCache(options.dns);
    this.waitMs = options.processWaitMs;
    this.keep = compileFilter(options.filter);
  }

  /** Replaces the filter (SIGHUP); applies to records enriched from now on. */
  setFilter(filter: ProcessFilter | null): void {
    this.keep = compileFilter(filter);
  }

  /** Records held back (waiting, or queued behind a waiting one). */
  get heldCount(): number {
    let n = 0;
    for (const h of this.busy) n += h.queue.length - h.head;
    return n;
  }

  get hostCount(): number {
    return this.hosts.size;
  }

  /** Latest sensor status per host. */
  statuses(): Array<{ hostId: string; hostname: string; status: SensorStatus }> {
    const out = [];
    for (const [hostId, h] of this.hosts) if (h.lastStatus) out.push({ hostId, hostname: h.hostObj.hostname, status: h.lastStatus });
    return out;
  }

  /**
   * Checks a decoded record against what the contract says beyond the schema;
   * throws ContractError.
   */
  static validate(record: RawRecord): void {
    checked(record);
  }

  /**
   * Feeds one record at `position` (increasing) at processing time `nowMs`.
   * Throws ContractError, before any change (but counters.rejected), for a
   * record that breaks the contract, whatever is wrong with it.
   */
  push(record: RawRecord, position: number, nowMs: number): void {
    let payload: RawPayloadOf;
    try {
      payload = checked(record);
    } catch (err) {
      this.counters.rejected++;
      throw err;
    }
    this.counters.records++;
    const h = this.hostState(record);
    if (h.queue.length === h.head) {
      h.runBeforeHeld = h.runId;
      h.seqBeforeHeld = h.lastSeq;
    }
    if (record.run_id === h.runId && record.seq <= h.lastSeq) {
      // A sensor resends a batch whose acknowledgement it never got.
      this.counters.duplicates++;
      if (h.queue.length === h.head) this.markDone(h, position);
      else this.hold(h, { position, event: null, waiting: null, socket: null, ticks: 0, deadline: 0 });
      return;
    }
    h.runId = record.run_id;
    h.lastSeq = record.seq;
    this.table.advance(h.table, record.time_us);
    switch (payload.kind) {
      case 'socket': {
        this.counters.socket++;
        const s = payload.value;
        const ticks = startTicks(s.task.start_time_us);
        const entry = this.table.lookup(h.table, s.task.pid, ticks);
        if (entry === null && this.waitMs > 0) {
          this.counters.waited++;
          this.hold(h, { position, event: null, waiting: record, socket: s, ticks, deadline: nowMs + this.waitMs });
          h.waiting++;
          return;
        }
        if (entry === null || !entry.known) this.counters.unknown++;
        const event = this.enrich(record, position, s, entry);
        if (h.queue.length === h.head) this.emit(h, event, position);
        else this.hold(h, { position, event, waiting: null, socket: null, ticks: 0, deadline: 0 });
        return;
      }
      case 'exec': {
        this.counters.exec++;
        const entry = this.table.exec(h.table, payload.value);
        if (h.waiting > 0) this.resolve(h, entry, payload.value.snapshot ? Number.NEGATIVE_INFINITY : payload.value.task.ktime_us);
        break;
      }
      case 'fork': {
        this.counters.fork++;
        const entry = this.table.fork(h.table, payload.value);
        // The child's records that came before its fork record go out now,
        // with the program it runs since the fork.
        if (h.waiting > 0) this.resolve(h, entry, payload.value.task.ktime_us);
        break;
      }
      case 'exit': {
        this.counters.exit++;
        const x = payload.value;
        // A thread's exit is not its process's.
        if (x.tid === x.pid) this.table.exit(h.table, x.pid, startTicks(x.start_time_us), record.time_us);
        break;
      }
      case 'status':
        this.counters.status++;
        h.lastStatus = payload.value;
        if (h.queue.length === h.head) {
          this.sink.status?.(record, payload.value);
          this.markDone(h, position);
        } else {
          this.hold(h, { position, event: null, status: { record, value: payload.value }, waiting: null, socket: null, ticks: 0, deadline: 0 });
        }
        return;
      case 'dns':
        this.counters.dns++;
        this.rememberDns(record, payload.value);
        break;
    }
    // A record without output: handled now, but the host's done position
    // must not pass a record still held before it.
    if (h.queue.length === h.head) this.markDone(h, position);
    else this.hold(h, { position, event: null, waiting: null, socket: null, ticks: 0, deadline: 0 });
    this.drain(h);
  }

  /** Lets records whose wait has ended go out with what is known. */
  expire(nowMs: number): void {
    for (const h of this.busy) {
      if (h.waiting === 0) continue;
      for (let i = h.head; i < h.queue.length; i++) {
        const held = h.queue[i]!;
        if (held.waiting === null) continue;
        if (held.deadline > nowMs) break;
        const s = held.socket!;
        let entry = this.table.lookup(h.table, s.task.pid, held.ticks);
        entry ??= this.table.placeholder(h.table, s.task.pid, held.ticks, s.task.comm);
        this.counters.unknown++;
        this.ready(h, held, entry);
        // Later records of the same process need not wait any longer.
        for (let j = i + 1; j < h.queue.length; j++) {
          const other = h.queue[j]!;
          if (other.waiting !== null && other.socket!.task.pid === entry.pid && other.ticks === entry.ticks) {
            this.counters.unknown++;
            this.ready(h, other, entry);
          }
        }
      }
      this.drain(h);
    }
  }

  /** The earliest deadline of a waiting record, or undefined. */
  nextDeadline(): number | undefined {
    let next: number | undefined;
    for (const h of this.busy) {
      if (h.waiting === 0) continue;
      for (let i = h.head; i < h.queue.length; i++) {
        const held = h.queue[i]!;
        if (held.waiting !== null) {
          if (next === undefined || held.deadline < next) next = held.deadline;
          break;
        }
      }
    }
    return next;
  }

  /** The smallest position still held, or undefined when nothing is held. */
  oldestHeld(): number | undefined {
    let oldest: number | undefined;
    for (const h of this.busy) {
      const p = h.queue[h.head]!.position;
      if (oldest === undefined || p < oldest) oldest = p;
    }
    return oldest;
  }

  /** Per host, the position up to which it is handled, changed since the last call. */
  takeDone(): Array<[hostId: string, position: number]> {
    const out: Array<[string, number]> = [];
    for (const h of this.doneChanged) out.push([h.table.hostId, h.done]);
    this.doneChanged.clear();
    return out;
  }

  /** A host's done position (restore: records at or below it are skipped by the caller). */
  doneOf(hostId: string): number {
    return this.hosts.get(hostId)?.done ?? -1;
  }

  restoreDone(hostId: string, position: number): void {
    const h = this.hostStateById(hostId, '');
    if (position > h.done) h.done = position;
  }

  /**
   * Drops every held record (their input will be read again), keeps the
   * table. The host's sensor sequence goes back to before the oldest held
   * record, so that the records read again are not taken for a resend.
   */
  dropHeld(): void {
    for (const h of this.busy) {
      h.queue = [];
      h.head = 0;
      h.waiting = 0;
      h.runId = h.runBeforeHeld;
      h.lastSeq = h.seqBeforeHeld;
    }
    this.busy.clear();
  }

  private hostState(record: RawRecord): HostState {
    const h = this.hostStateById(record.host_id, record.hostname);
    if (h.hostObj.hostname !== record.hostname) h.hostObj = { hostname: record.hostname, id: record.host_id };
    return h;
  }

  private hostStateById(hostId: string, hostname: string): HostState {
    let h = this.hosts.get(hostId);
    if (h === undefined) {
      h = {
        table: this.table.host(hostId),
        hostObj: { hostname, id: hostId },
        queue: [],
        head: 0,
        waiting: 0,
        done: -1,
        lastStatus: null,
        runId: '',
        lastSeq: -1,
        runBeforeHeld: '',
        seqBeforeHeld: -1,
      };
      this.hosts.set(hostId, h);
    }
    return h;
  }

  /** A DNS response into the host's cache; one that cannot be parsed is counted, never an error of the stream. */
  private rememberDns(record: RawRecord, r: DnsResponse): void {
    try {
      const answer = parseDnsAnswer(r.payload, r.transport === 'TCP' ? 'tcp' : 'udp');
      if (answer) this.dns.remember(record.host_id, r.netns, answer, record.time_us);
    } catch (err) {
      if (!(err instanceof DnsParseError)) throw err;
      this.counters.dnsUnparsed++;
    }
  }

  /** The name the host's DNS answers gave the remote address when the connection opened, or ''. */
  private remoteName(record: RawRecord, s: SocketEvent): string {
    if (s.kind === 'LISTEN' || s.netns === 0) return '';
    // a Close asks as of its open: the answer that led to the connection
    const openedUs = s.kind === 'CLOSE' && s.opened_ktime_us > 0 ? record.time_us - (s.task.ktime_us - s.opened_ktime_us) : record.time_us;
    return this.dns.lookup(record.host_id, s.netns, s.daddr, openedUs);
  }

  /** The record's event, or null (filtered out, or its enrichment failed: reported, never thrown). */
  private enrich(record: RawRecord, position: number, s: SocketEvent, entry: ProcEntry | null): EventParts | null {
    try {
      const t = s.task;
      const subject = this.subject;
      subject.uid = t.uid;
      subject.euid = t.euid;
      subject.auid = t.auid;
      subject.filename = entry ? entry.filename : t.comm;
      subject.binary_path = entry ? entry.binaryPath : '';
      if (!this.keep(subject)) {
        this.counters.filtered++;
        return null;
      }
      const hostObj = this.hosts.get(record.host_id)!.hostObj;
      const key = cachedProcessKey(entry, hostObj.id, s);
      return eventParts(s, entry, this.containers.get(t.cgroup_path), record.time_us, hostObj, record.run_id, record.seq, this.remoteName(record, s), key);
    } catch (err) {
      this.counters.rejected++;
      this.sink.rejected?.(record, position, new EnrichError(`cannot enrich the record: ${describeError(err)}`, { cause: err }));
      return null;
    }
  }

  private hold(h: HostState, held: Held): void {
    if (h.queue.length === h.head) this.busy.add(h);
    h.queue.push(held);
  }

  /** A process record came: the waiting records of its process resolve. */
  private resolve(h: HostState, entry: ProcEntry, execKtimeUs: number): void {
    for (let i = h.head; i < h.queue.length; i++) {
      const held = h.queue[i]!;
      const s = held.socket;
      if (held.waiting === null || s === null || s.task.pid !== entry.pid || held.ticks !== entry.ticks) continue;
      // An exec (or fork) later (kernel time) than the socket event started
      // another program: the socket's own program is not known.
      if (execKtimeUs > s.task.ktime_us) {
        this.counters.unknown++;
        this.ready(h, held, null);
      } else if (!entry.known) {
        // A fork of an unknown parent: as after a timeout, at once.
        this.counters.unknown++;
        this.ready(h, held, entry);
      } else {
        this.counters.waitResolved++;
        this.ready(h, held, entry);
      }
    }
  }

  private ready(h: HostState, held: Held, entry: ProcEntry | null): void {
    held.event = this.enrich(held.waiting!, held.position, held.socket!, entry);
    held.waiting = null;
    held.socket = null;
    h.waiting--;
  }

  private drain(h: HostState): void {
    try {
      while (h.head < h.queue.length) {
        const held = h.queue[h.head]!;
        if (held.waiting !== null) return;
        h.head++;
        if (held.status) this.sink.status?.(held.status.record, held.status.value);
        this.emit(h, held.event, held.position);
      }
    } finally {
      // Also when the sink threw: the queue stays consistent.
      if (h.head === h.queue.length) {
        h.queue = [];
        h.head = 0;
        this.busy.delete(h);
      }
    }
  }

  private emit(h: HostState, event: EventParts | null, position: number): void {
    if (event !== null) {
      this.counters.out++;
      if (this.sink.eventParts) this.sink.eventParts(event, h.table.hostId);
      else this.sink.event!(eventOf(event), h.table.hostId);
    }
    this.markDone(h, position);
  }

  private markDone(h: HostState, position: number): void {
    if (position > h.done) {
      h.done = position;
      this.doneChanged.add(h);
    }
  }
}

type Branches = {
  'netmon.raw.SocketEvent'?: SocketEvent;
  'netmon.raw.ProcessExec'?: ProcessExec;
  'netmon.raw.ProcessFork'?: ProcessFork;
  'netmon.raw.ProcessExit'?: ProcessExit;
  'netmon.raw.SensorStatus'?: SensorStatus;
  'netmon.raw.DnsResponse'?: DnsResponse;
};

/** unwrapPayload without its per-record array allocations (hot path). */
function unwrap(payload: RawPayload): RawPayloadOf {
  const p = payload as Branches;
  if (p['netmon.raw.SocketEvent'] !== undefined) return { kind: 'socket', value: p['netmon.raw.SocketEvent'] };
  if (p['netmon.raw.ProcessExec'] !== undefined) return { kind: 'exec', value: p['netmon.raw.ProcessExec'] };
  if (p['netmon.raw.ProcessFork'] !== undefined) return { kind: 'fork', value: p['netmon.raw.ProcessFork'] };
  if (p['netmon.raw.ProcessExit'] !== undefined) return { kind: 'exit', value: p['netmon.raw.ProcessExit'] };
  if (p['netmon.raw.SensorStatus'] !== undefined) return { kind: 'status', value: p['netmon.raw.SensorStatus'] };
  if (p['netmon.raw.DnsResponse'] !== undefined) return { kind: 'dns', value: p['netmon.raw.DnsResponse'] };
  throw new ContractError('payload has no known branch');
}

/**
 * The record's payload, once checked against what the contract says beyond
 * the schema and what the enrichment relies on. Throws ContractError, also
 * for a record too malformed to check (a field missing or of another type).
 */
function checked(record: RawRecord): RawPayloadOf {
  try {
    const payload = unwrap(record.payload);
    checkRecord(record, payload);
    return payload;
  } catch (err) {
    if (err instanceof ContractError) throw err;
    throw new ContractError(`malformed record: ${describeError(err)}`, { cause: err });
  }
}

/** |time| within what a Date holds (±8.64e15 ms), in µs. */
const MAX_TIME_US = 8.64e18;

function checkRecord(record: RawRecord, p: RawPayloadOf): void {
  if (typeof record.host_id !== 'string' || record.host_id.length === 0) throw new ContractError('host_id is empty');
  if (!(Math.abs(record.time_us) <= MAX_TIME_US)) throw new ContractError(`time_us out of range (${record.time_us})`);
  switch (p.kind) {
    case 'socket': {
      const s = p.value;
      checkTask(s.task);
      if (!Object.hasOwn(EVENT_TYPE, s.kind)) throw new ContractError(`unknown socket event kind ${String(s.kind)}`);
      // Strict: IPv4 (mapped ones included, since the sensor sends those as
      // INET) in 4 bytes, IPv6 in 16; a 16-byte ::ffff:a.b.c.d is valid IPv6
      // and prints as the IPv4 address.
      let len: number;
      if (s.family === 'INET') len = 4;
      else if (s.family === 'INET6') len = 16;
      else throw new ContractError(`unknown address family ${String(s.family)}`);
      if (!(s.saddr instanceof Uint8Array) || !(s.daddr instanceof Uint8Array)) throw new ContractError('addresses are not bytes');
      if (s.saddr.length !== len || s.daddr.length !== len) {
        throw new ContractError(`${s.family} addresses of ${s.saddr.length} and ${s.daddr.length} bytes, expected ${len}`);
      }
      if (!isPort(s.sport) || !isPort(s.dport)) throw new ContractError(`port out of range (${s.sport}, ${s.dport})`);
      return;
    }
    case 'exec': {
      const x = p.value;
      checkTask(x.task);
      if (typeof x.binary_path !== 'string' || !Array.isArray(x.args) || !Array.isArray(x.secureexec))
        throw new ContractError('exec record without path, args or secureexec');
      return;
    }
    case 'fork': {
      const f = p.value;
      checkTask(f.task);
      if (!Number.isInteger(f.parent_pid) || !Number.isFinite(f.parent_start_time_us)) throw new ContractError('fork record without its parent');
      return;
    }
    case 'exit': {
      const x = p.value;
      if (!Number.isInteger(x.pid) || !Number.isInteger(x.tid) || !Number.isFinite(x.start_time_us)) throw new ContractError('exit record without its process');
      return;
    }
    case 'status':
      return;
    case 'dns':
      if (!(p.value.payload instanceof Uint8Array) || !Number.isSafeInteger(p.value.netns)) throw new ContractError('DNS response without payload or netns');
      return;
  }
}

/** What the table and the event take from a task. */
function checkTask(t: SocketEvent['task']): void {
  if (!Number.isInteger(t.pid) || !Number.isFinite(t.start_time_us) || !Number.isFinite(t.ktime_us)) throw new ContractError('task without pid or times');
  if (typeof t.comm !== 'string' || typeof t.cgroup_path !== 'string') throw new ContractError('task without comm or cgroup path');
}

function isPort(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 65535;
}
