// The exactly-once protocol of one assigned partition, as a state machine:
// events in (records, tick(now), the outcome of each I/O it asked for, revoke,
// stop), commands out (read a manifest, seal, create a manifest, put objects,
// commit, seek, pause/resume, dead-letter, wake me at). No Kafka, no S3, no
// timers, no clock: time is an argument. archiver.ts performs the commands.
//
// Per partition: records go into the open flush; a seal rule (policy.ts)
// closes it; a sealed flush goes through
//   1. its manifest, created with If-None-Match: * (the first writer fixes the range),
//   2. its data objects, one per UTC hour (content fixed by the range),
//   3. the offset commit (fenced by the group generation),
// one flush at a time, in order. A crash at any point leaves at most one
// uncommitted manifest; the replay, starting at the committed offset, reads
// the manifest at its first offset and ends its first flush exactly where
// that one ends, so every object is written again with the same name and the
// same content. See services/archiver/README.md for the cases.
//
// A manifest fixes the format of its flush too (JSON or Parquet): a flush that
// replays one is sealed in the manifest's format, whatever this member's own
// (a format switch after a crash, a rolling restart to another format), and a
// manifest another writer created first counts as the same flush only if both
// its range and its format match.
//
// Every I/O command carries an `op` number; its outcome comes back with the
// same number. A reset (rewind, realignment, revoke) forgets every op in
// flight, so late outcomes of an earlier reading are ignored. Failed I/O is
// retried with backoff: the machine answers `wake` with the due time and
// issues the command again from the first tick at or after it.
import type { ArchiveRecord, ObjectBody } from './batch';
import { type ArchiveFormat, manifestKey } from './layout';
import { type Manifest, manifestFormat, sameRange } from './manifest';
import { type Alignment, type FlushFigures, type FlushLimits, type SealReason, backoffMs, overHardLimit, sealReason } from './policy';

/**
 * One record as the Kafka client hands it over. The offset may be a decimal
 * string (kafkajs' messages are passed as they are: no copy per record).
 */
export interface InMessage {
  readonly offset: number | string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
}

/** Where a fetched batch ends: past trailing control records, and the partition's high watermark. */
export interface BatchEnd {
  lastOffset: number;
  highWatermark: number;
}

/** A record that cannot be archived: it goes to the dead-letter topic. */
export class Undecodable {
  constructor(
    readonly reason: string,
    readonly error: unknown,
  ) {}
}

/** The open flush, as the machine sees it (FlushBuilder in production, a counting fake in tests). */
export interface OpenFlush extends FlushFigures {
  readonly firstOffset: number;
  readonly nextOffset: number;
  append(rec: ArchiveRecord, now: number): void;
  coverThrough(offset: number): void;
  discard(): void;
}

export interface PartitionOptions<F extends OpenFlush> {
  topic: string;
  partition: number;
  prefix: string;
  /** The format of the flushes this member fixes (one that replays a manifest takes the manifest's). Default json. */
  format?: ArchiveFormat;
  limits: FlushLimits;
  /** Sealed flushes waiting for S3 before the partition pauses. */
  maxQueuedFlushes: number;
  /** Written into the manifests this member creates. */
  writer: Manifest['writer'];
  /** Opens an empty flush whose first record will be at `firstOffset`. */
  openFlush(firstOffset: number, now: number): F;
  /** A record's JSON line, or why it cannot be archived. Called once per record, in offset order; its result is appended before the next call. */
  decode(m: InMessage, offset: number): ArchiveRecord | Undecodable;
  /** A manifest learnt before reading (a realignment): applies to the flush that opens at its first offset. */
  known?: Manifest;
  /** Jitter of the retry backoff (tests pass a constant). */
  random?: () => number;
  retryBaseMs?: number;
  retryCapMs?: number;
}

/** The figures of a sealed flush. */
export interface FlushRange {
  firstOffset: number;
  lastOffset: number;
  /** Offset committed once the flush is in S3 (past trailing control records). */
  nextOffset: number;
  records: number;
  rawBytes: number;
}

// ---- commands -------------------------------------------------------------

/** Read the manifest at `key` (`align`: of the open flush; `verify`: after a create answered "exists"). Answer: manifestRead. */
export interface ReadManifest {
  kind: 'readManifest';
  op: number;
  attempt: number;
  why: 'align' | 'verify';
  key: string;
}
/** End the flush's compressors and write its objects in `format` (FlushBuilder.seal). Answer: sealed, or failed (the flush is read again). */
export interface Seal<F> extends FlushRange {
  kind: 'seal';
  op: number;
  attempt: number;
  flush: F;
  reason: SealReason;
  format: ArchiveFormat;
}
/** PUT the manifest with If-None-Match: *. Answer: manifestCreated('created' | 'exists'). */
export interface CreateManifest {
  kind: 'createManifest';
  op: number;
  attempt: number;
  key: string;
  manifest: Manifest;
}
/** PUT every object (any order, any concurrency). Answer: uploaded once all are stored. */
export interface PutObjects {
  kind: 'put';
  op: number;
  attempt: number;
  firstOffset: number;
  objects: ObjectBody[];
}
/** Commit `offset` for this partition (fenced by the group generation). Answer: committed. */
export interface Commit {
  kind: 'commit';
  op: number;
  attempt: number;
  offset: number;
}
/** Send the record to the dead-letter topic (at least once). Answer: deadLettered. */
export interface DeadLetter {
  kind: 'deadLetter';
  op: number;
  attempt: number;
  offset: number;
  key: Buffer | null;
  value: Buffer | null;
  reason: string;
  error: unknown;
}

export type IoCommand<F = OpenFlush> = ReadManifest | Seal<F> | CreateManifest | PutObjects | Commit | DeadLetter;

/** Things the adapter reports (logs, metrics); they ask for nothing. */
export type Notice =
  | { kind: 'rewound'; offset: number; held: number }
  | { kind: 'replay'; key: string; firstOffset: number; lastOffset: number }
  | { kind: 'realigned'; cause: 'lookup' | 'mismatch' | 'failed'; from: number; key?: string; manifestEnd?: number; held?: number }
  | { kind: 'archived'; range: FlushRange; objects: number; bytes: number; reason: SealReason; replay: boolean; sealedAt: number; format: ArchiveFormat };

export type Command<F = OpenFlush> =
  | IoCommand<F>
  /** Fetch again from `offset` (everything held was dropped). */
  | { kind: 'seek'; offset: number }
  | { kind: 'pause' }
  | { kind: 'resume' }
  /** Call tick() at or after `at` (a retry is due). */
  | { kind: 'wake'; at: number }
  | Notice;

// ---- state ------------------------------------------------------------------

type Stage = 'sealing' | 'ready' | 'creating' | 'verifying' | 'putting' | 'dead-letters' | 'committing';

interface SealedFlush extends FlushRange {
  reason: SealReason;
  format: ArchiveFormat;
  /** The manifest already in S3 for exactly this range (a replay), if any. */
  existing?: Manifest;
  sealedAt: number;
  stage: Stage;
  sealOp: number;
  /** The op of the current stage. */
  op: number;
  objects?: ObjectBody[];
}

interface Open<F> {
  flush: F;
  /** See policy.ts. */
  alignment: Alignment;
  existing?: Manifest;
  lookupOp?: number;
}

interface Pending<F> {
  cmd: IoCommand<F>;
  /** Set while waiting to be issued again. */
  retryAt?: number;
}

export class PartitionMachine<F extends OpenFlush = OpenFlush> {
  readonly partition: number;
  private open?: Open<F>;
  private queue: SealedFlush[] = [];
  private readonly pending = new Map<number, Pending<F>>();
  /** Dead letters not yet acknowledged, by op: their offsets bound what may be committed. */
  private readonly deadLetters = new Map<number, number>();
  private known?: Manifest;
  private nextOp = 1;
  private lastAppended = -1;
  private stopping = false;
  private gone = false;
  private isPaused = false;
  private committedOffset?: number;
  private hw?: number;
  /** Output of the event being handled. */
  private out: Command<F>[] = [];

  constructor(private readonly o: PartitionOptions<F>) {
    this.partition = o.partition;
    this.known = o.known;
  }

  // ---- read-only views (metrics, tests) ----

  get paused(): boolean {
    return this.isPaused;
  }

  /** The last offset committed by this machine. */
  get lastCommitted(): number | undefined {
    return this.committedOffset;
  }

  /** The open flush (the adapter waits for its compressors to drain). */
  get openFlush(): F | undefined {
    return this.open?.flush;
  }

  get alignment(): Alignment {
    return this.open?.alignment;
  }

  get queued(): number {
    return this.queue.length;
  }

  /** Uncompressed bytes held, open and sealed, not yet committed. */
  get heldBytes(): number {
    let n = this.open?.flush.rawBytes ?? 0;
    for (const s of this.queue) n += s.rawBytes;
    return n;
  }

  /** Nothing held, nothing on its way to S3: shutdown may leave. */
  get idle(): boolean {
    return this.open === undefined && this.queue.length === 0;
  }

  /** High watermark minus what is committed (or, before any commit, the first offset held). */
  get lag(): number | undefined {
    if (this.hw === undefined) return undefined;
    const base = this.committedOffset ?? this.queue[0]?.firstOffset ?? this.open?.flush.firstOffset;
    return base === undefined ? undefined : Math.max(0, this.hw - base);
  }

  // ---- events ----

  /**
   * A fetched batch, in offset order. Stops at the first record that makes it
   * seek (the rest of the batch is read again from there).
   */
  records(messages: readonly InMessage[], end: BatchEnd | undefined, now: number): Command<F>[] {
    if (this.gone) return [];
    const { limits } = this.o;
    for (const m of messages) {
      const offset = Number(m.offset);
      if (offset <= this.lastAppended) {
        // The fetch position went back: drop what is held and start over.
        const from = this.lowestHeld();
        this.emit({ kind: 'rewound', offset, held: this.lastAppended });
        this.reset(undefined);
        if (from !== undefined && offset > from) {
          // Some of what was dropped lies before this record: read it again first.
          this.emit({ kind: 'seek', offset: from });
          this.settle(now);
          return this.take();
        }
      }
      // A manifest ends this flush before this record.
      const open = this.open;
      if (open && typeof open.alignment === 'number' && offset > open.alignment) this.seal('aligned', now);
      const rec = this.o.decode(m, offset);
      if (rec instanceof Undecodable) {
        const op = this.nextOp++;
        this.deadLetters.set(op, offset);
        this.issue({ kind: 'deadLetter', op, attempt: 0, offset, key: m.key, value: m.value, reason: rec.reason, error: rec.error });
        continue;
      }
      const o = this.open ?? this.openAt(offset, now);
      o.flush.append(rec, now);
      this.lastAppended = offset;
      const reason = sealReason(o.flush, limits, o.alignment, now);
      if (reason) this.seal(reason, now);
    }
    if (end) {
      const last = messages[messages.length - 1];
      if (this.open && last && this.open.flush.lastOffset === Number(last.offset)) this.open.flush.coverThrough(end.lastOffset);
      this.hw = end.highWatermark;
    }
    this.settle(now);
    return this.take();
  }

  /** The clock moved: idle and span seals, retries that are due, shutdown progress. */
  tick(now: number): Command<F>[] {
    if (this.gone) return [];
    const open = this.open;
    if (open) {
      const reason = sealReason(open.flush, this.o.limits, open.alignment, now);
      if (reason) this.seal(reason, now);
    }
    for (const p of this.pending.values()) {
      if (p.retryAt !== undefined && p.retryAt <= now) {
        p.retryAt = undefined;
        this.emit(p.cmd);
      }
    }
    this.settle(now);
    return this.take();
  }

  manifestRead(op: number, manifest: Manifest | undefined, now: number): Command<F>[] {
    const p = this.complete(op);
    if (p?.cmd.kind !== 'readManifest') return [];
    if (p.cmd.why === 'align') this.aligned(op, p.cmd.key, manifest, now);
    else {
      const head = this.queue[0];
      if (head?.op === op) {
        if (manifest && sameRange(manifest, head) && manifestFormat(manifest) === head.format) this.put(head);
        else
          this.realign(head.firstOffset, undefined, {
            kind: 'realigned',
            cause: 'mismatch',
            from: head.firstOffset,
            key: p.cmd.key,
            manifestEnd: manifest?.lastOffset,
          });
      }
    }
    this.settle(now);
    return this.take();
  }

  sealed(op: number, objects: ObjectBody[], now: number): Command<F>[] {
    if (!this.complete(op)) return [];
    const s = this.queue.find((q) => q.sealOp === op);
    if (s) {
      s.objects = objects;
      s.stage = 'ready';
      this.pump();
    }
    this.settle(now);
    return this.take();
  }

  manifestCreated(op: number, outcome: 'created' | 'exists', now: number): Command<F>[] {
    if (!this.complete(op)) return [];
    const head = this.queue[0];
    if (head?.op === op) {
      if (outcome === 'created') this.put(head);
      else {
        // Another writer fixed this first offset first: same range, or read again.
        head.stage = 'verifying';
        head.op = this.nextOp++;
        this.issue({ kind: 'readManifest', op: head.op, attempt: 0, why: 'verify', key: this.keyOf(head.firstOffset) });
      }
    }
    this.settle(now);
    return this.take();
  }

  uploaded(op: number, now: number): Command<F>[] {
    if (!this.complete(op)) return [];
    const head = this.queue[0];
    if (head?.op === op) this.commitWhenSafe(head);
    this.settle(now);
    return this.take();
  }

  committed(op: number, now: number): Command<F>[] {
    if (!this.complete(op)) return [];
    const head = this.queue[0];
    if (head?.op === op) {
      this.queue.shift();
      this.committedOffset = head.nextOffset;
      const objects = head.objects ?? [];
      this.emit({
        kind: 'archived',
        range: { firstOffset: head.firstOffset, lastOffset: head.lastOffset, nextOffset: head.nextOffset, records: head.records, rawBytes: head.rawBytes },
        objects: objects.length,
        bytes: objects.reduce((n, b) => n + b.body.length, 0),
        reason: head.reason,
        replay: head.existing !== undefined,
        sealedAt: head.sealedAt,
        format: head.format,
      });
      this.pump();
    }
    this.settle(now);
    return this.take();
  }

  deadLettered(op: number, now: number): Command<F>[] {
    if (!this.complete(op)) return [];
    this.deadLetters.delete(op);
    const head = this.queue[0];
    if (head?.stage === 'dead-letters') this.commitWhenSafe(head);
    this.settle(now);
    return this.take();
  }

  /**
   * An I/O command failed. A failed seal (compression) reads the flush again;
   * anything else is issued again after a backoff.
   */
  failed(op: number, now: number): Command<F>[] {
    const p = this.gone ? undefined : this.pending.get(op);
    if (!p || p.retryAt !== undefined) return [];
    if (p.cmd.kind === 'seal') {
      const from = this.lowestHeld() ?? p.cmd.firstOffset;
      this.realign(from, undefined, { kind: 'realigned', cause: 'failed', from });
    } else {
      const attempt = p.cmd.attempt;
      p.cmd = { ...p.cmd, attempt: attempt + 1 };
      p.retryAt = now + backoffMs(attempt, this.o.retryBaseMs ?? 200, this.o.retryCapMs ?? 5_000, this.o.random);
      this.emit({ kind: 'wake', at: p.retryAt });
    }
    this.settle(now);
    return this.take();
  }

  /**
   * The partition is no longer ours (a new generation, or a shutdown that ran
   * out of time): everything held is dropped, outcomes still on their way are
   * ignored, nothing more is committed. Resumes it if it was paused, so that
   * the client does not keep it paused for the next owner.
   */
  revoked(): Command<F>[] {
    if (this.gone) return [];
    this.reset(undefined);
    this.gone = true;
    return this.take();
  }

  /**
   * SIGTERM: stop fetching; seal what is held, unless it waits to reach an
   * earlier run's flush end (that is left to the next run); finish uploading.
   * `idle` tells when it is done.
   */
  stop(now: number): Command<F>[] {
    if (this.gone) return [];
    this.stopping = true;
    this.settle(now);
    return this.take();
  }

  // ---- internals ----

  private emit(c: Command<F>): void {
    this.out.push(c);
  }

  private take(): Command<F>[] {
    const out = this.out;
    this.out = [];
    return out;
  }

  private issue(cmd: IoCommand<F>): void {
    this.pending.set(cmd.op, { cmd });
    this.emit(cmd);
  }

  /** The pending op `op` if it is still ours and in flight, now done. */
  private complete(op: number): Pending<F> | undefined {
    if (this.gone) return undefined;
    const p = this.pending.get(op);
    if (!p || p.retryAt !== undefined) return undefined;
    this.pending.delete(op);
    return p;
  }

  private keyOf(firstOffset: number): string {
    return manifestKey(this.o.prefix, this.o.topic, this.partition, firstOffset);
  }

  private lowestHeld(): number | undefined {
    return this.queue[0]?.firstOffset ?? this.open?.flush.firstOffset;
  }

  /** Opens a flush at `offset` and asks S3 whether a manifest already starts there. */
  private openAt(offset: number, now: number): Open<F> {
    const open: Open<F> = { flush: this.o.openFlush(offset, now), alignment: undefined };
    this.open = open;
    const known = this.known;
    this.known = undefined;
    if (known?.firstOffset === offset) {
      open.alignment = known.lastOffset;
      open.existing = known;
    } else {
      open.lookupOp = this.nextOp++;
      this.issue({ kind: 'readManifest', op: open.lookupOp, attempt: 0, why: 'align', key: this.keyOf(offset) });
    }
    return open;
  }

  /** What S3 says about the open flush's first offset. */
  private aligned(op: number, key: string, manifest: Manifest | undefined, now: number): void {
    const open = this.open;
    if (!open || open.lookupOp !== op) return;
    open.lookupOp = undefined;
    if (!manifest) open.alignment = null;
    else if (open.flush.lastOffset > manifest.lastOffset) {
      // Read past the end another writer fixed: read again from the first offset held.
      const from = this.lowestHeld()!;
      this.realign(from, from === manifest.firstOffset ? manifest : undefined, {
        kind: 'realigned',
        cause: 'lookup',
        from,
        key,
        manifestEnd: manifest.lastOffset,
        held: open.flush.lastOffset,
      });
      return;
    } else {
      this.emit({ kind: 'replay', key, firstOffset: manifest.firstOffset, lastOffset: manifest.lastOffset });
      open.alignment = manifest.lastOffset;
      open.existing = manifest;
    }
    const reason = sealReason(open.flush, this.o.limits, open.alignment, now);
    if (reason) this.seal(reason, now);
  }

  private seal(reason: SealReason, now: number): void {
    const open = this.open;
    if (!open || open.flush.records === 0) return;
    this.open = undefined;
    const f = open.flush;
    const existing = open.existing && sameRange(open.existing, f) ? open.existing : undefined;
    const s: SealedFlush = {
      firstOffset: f.firstOffset,
      lastOffset: f.lastOffset,
      nextOffset: f.nextOffset,
      records: f.records,
      rawBytes: f.rawBytes,
      reason,
      // A replay writes what the manifest says; a new flush, this member's format.
      format: existing ? manifestFormat(existing) : (this.o.format ?? 'json'),
      existing,
      sealedAt: now,
      stage: 'sealing',
      sealOp: this.nextOp++,
      op: 0,
    };
    s.op = s.sealOp;
    this.queue.push(s);
    const { firstOffset, lastOffset, nextOffset, records, rawBytes } = s;
    this.issue({ kind: 'seal', op: s.sealOp, attempt: 0, flush: f, reason, format: s.format, firstOffset, lastOffset, nextOffset, records, rawBytes });
    this.pump();
  }

  /** Starts the head flush's upload once it is compressed: one flush at a time, in order. */
  private pump(): void {
    const head = this.queue[0];
    if (head?.stage !== 'ready') return;
    if (head.existing) {
      this.put(head);
      return;
    }
    const objects = head.objects ?? [];
    head.stage = 'creating';
    head.op = this.nextOp++;
    const manifest: Manifest = {
      version: 1,
      topic: this.o.topic,
      partition: this.partition,
      firstOffset: head.firstOffset,
      lastOffset: head.lastOffset,
      nextOffset: head.nextOffset,
      records: head.records,
      format: head.format,
      objects: objects.map((b) => ({ key: b.key, firstOffset: b.firstOffset, records: b.records, bytes: b.body.length })),
      writer: this.o.writer,
      createdAt: new Date(head.sealedAt).toISOString(),
    };
    this.issue({ kind: 'createManifest', op: head.op, attempt: 0, key: this.keyOf(head.firstOffset), manifest });
  }

  private put(head: SealedFlush): void {
    head.stage = 'putting';
    head.op = this.nextOp++;
    this.issue({ kind: 'put', op: head.op, attempt: 0, firstOffset: head.firstOffset, objects: head.objects ?? [] });
  }

  /** Commits the head flush, once every dead letter before its end is acknowledged (they are at least once). */
  private commitWhenSafe(head: SealedFlush): void {
    for (const offset of this.deadLetters.values()) {
      if (offset < head.nextOffset) {
        head.stage = 'dead-letters';
        return;
      }
    }
    head.stage = 'committing';
    head.op = this.nextOp++;
    this.issue({ kind: 'commit', op: head.op, attempt: 0, offset: head.nextOffset });
  }

  /** Drops everything held and forgets every op in flight; resumes the partition if paused. */
  private reset(known: Manifest | undefined): void {
    this.open?.flush.discard();
    this.open = undefined;
    this.queue = [];
    this.pending.clear();
    this.deadLetters.clear();
    this.lastAppended = -1;
    this.known = known;
    if (this.isPaused) {
      this.isPaused = false;
      this.emit({ kind: 'resume' });
    }
  }

  /** Drops what is held and fetches again from `from`, knowing the manifest that starts there if any. */
  private realign(from: number, known: Manifest | undefined, notice: Notice): void {
    this.emit(notice);
    this.reset(known);
    this.emit({ kind: 'seek', offset: from });
  }

  /** Shutdown progress and back-pressure, after every event. */
  private settle(now: number): void {
    if (this.gone) return;
    if (this.stopping && this.open) {
      const a = this.open.alignment;
      if (a === null || (typeof a === 'number' && this.open.flush.lastOffset >= a)) this.seal('shutdown', now);
      else if (typeof a === 'number') {
        // Short of an earlier run's flush end: leave it to the next run.
        this.open.flush.discard();
        this.open = undefined;
      }
    }
    const open = this.open;
    // A replay must read to the end an earlier run fixed, however far past this
    // run's limits that is (its own limits bound it): pausing it there would
    // wait for records that only the resume can fetch.
    const replaying = open !== undefined && typeof open.alignment === 'number' && open.flush.lastOffset < open.alignment;
    const overLimit = open !== undefined && !replaying && overHardLimit(open.flush, this.o.limits);
    const want = this.stopping || this.queue.length >= this.o.maxQueuedFlushes || overLimit;
    if (want !== this.isPaused) {
      this.isPaused = want;
      this.emit({ kind: want ? 'pause' : 'resume' });
    }
  }
}
