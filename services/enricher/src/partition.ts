// The enricher's per-partition protocol as a pure state machine: records in,
// commands out. No client, no I/O, no timers: the time comes in as an
// argument, and the adapter (service.ts) performs the commands with a Kafka
// client (client.ts) and feeds the outcome back in.
//
//   assigned(generation)           the partition is (still) this member's in a new generation
//     → [prepare{fence, restore}] at once, before its first batch; [] when ready or preparing
//   batch(generation, messages, now)
//     owned and ready for this generation: reads the records → [notes…, transaction | consumed]
//     else → [prepare{fence, restore}]; the batch waits for prepared()
//   readAhead(generation, messages, now)  when readsAhead(generation): reads the first part
//     of a long batch without flushing (its last part goes through batch())
//   prepared(committed, now)       the committed offset, after the fence and the restore (restoreSink())
//     the consumer is past it (the previous owner's last transaction was aborted) → [seek{rewind}]
//     else reads the waiting batch → [notes…, transaction | consumed]
//     (no batch waiting, as after assigned(): that check is the first batch's)
//   tick(now, generation)          deadlines of held records → [notes…, transaction] or []
//   flushDone()                    → [consumed] when the flush came from a batch
//   flushFailed()                  → [close, seek{retry, committed}]: the machine is finished;
//                                  the next batch of the partition goes to a new machine
//                                  (fenced and restored again, so no record is enriched twice)
//   revoked()                      → [close]
//
// Offsets: a partition's committed offset is its oldest record still held
// (waiting for a process record) or the next one. Records of other hosts
// after that offset may have gone out already: each host's done position is
// in the changelog, and after a restart records at or below it are skipped.
import {
  DLQ_HEADERS,
  deadLetterValue,
  DecodeError,
  type ProcessFilter,
  type RawRecord,
  type SensorStatus,
  type SensorStatusRecord,
  describeError,
  networkEventCodec,
  rawRecordCodec,
  sensorStatusCodec,
} from '@netmon/common';
import { type ChangelogMessage, type StateSink, changeMessage, dnsMessage, doneMessage } from './changelog';
import {
  ContractError,
  Enricher,
  type EnrichError,
  type EnricherCounters,
  type EnricherOptions,
  type EventParts,
  NetworkEventEncoder,
  eventOf,
  formatTimestamp,
} from './lib';
import { RawDecoder } from './raw-decoder';

/**
 * A raw message packs up to this many records (the sensor sends at most 4096);
 * record i of the message at offset o has the position o × 2^16 + i, exact in
 * a double up to offset 2^37.
 */
export const RECORDS_PER_MESSAGE = 65536;

/** Message headers, as kafkajs's IHeaders (and any client's). */
export interface MessageHeaders {
  [key: string]: Buffer | string | Array<Buffer | string> | undefined;
}

/** A raw message as the consumer hands it over (kafkajs gives the offset as a string). */
export interface RawMessage {
  offset: number | string;
  value: Buffer | null;
  headers?: MessageHeaders;
}

/** A message to produce. */
export interface OutMessage {
  key?: Buffer | string | null;
  value: Buffer | string | null;
  headers?: MessageHeaders;
  /** Set for the changelog (its partition is the raw partition's number); else the client's partitioner. */
  partition?: number;
}

export interface TopicBatch {
  topic: string;
  messages: OutMessage[];
}

export interface OffsetCommit {
  topic: string;
  partition: number;
  offset: number;
}

/** Bounds of one produce request. */
export interface ChunkLimits {
  /** Estimated bytes: kafkajs puts all the messages of a partition into one record batch, and the broker refuses one over max.message.bytes (1 MiB by default). */
  bytes: number;
  /** Messages: kafkajs 2.2.4 groups a request's messages per partition by copying the partition's array for every message, quadratic in its messages. */
  messages: number;
}

export const DEFAULT_CHUNK_LIMITS: ChunkLimits = { bytes: 768 * 1024, messages: 1000 };

export type Command =
  /**
   * Make the partition ready: `fence`: open the partition's transactional
   * output, which aborts the previous owner's open transaction and fences it;
   * `restore`: feed the changelog partition into restoreSink(); then read the
   * group's committed offset and call prepared().
   */
  | { kind: 'prepare'; fence: boolean; restore: boolean }
  /**
   * Produce `requests` (in order, one produce request each) and commit
   * `commit`: one transaction when exactly once, else send then commit.
   * Then flushDone() or, on any failure (after aborting), flushFailed().
   */
  | { kind: 'transaction'; requests: TopicBatch[][]; commit: OffsetCommit; events: number; statuses: number; deadLetters: number; changes: number }
  /** Fetch the raw partition from `offset`: the consumer is past the committed offset (rewind) or a flush failed (retry). */
  | { kind: 'seek'; offset: number; reason: 'rewind' | 'retry'; from?: number }
  /** The batch is handled up to `offset` (kafkajs: resolveOffset). */
  | { kind: 'consumed'; offset: number }
  /** The machine is finished (revoked, or a flush failed): close the partition's output and forget the machine. */
  | { kind: 'close' }
  /** Note: a record went to the dead letters (its message is in the next transaction). Count it, log the first of its reason. */
  | { kind: 'rejected'; reason: string; detail: string; offset: number }
  /** Note: a sensor status record. */
  | { kind: 'status'; host: string; status: SensorStatus }
  /** Note: records skipped because their host's done position covers them (output committed before a restart). */
  | { kind: 'skipped'; count: number };

/** What every partition of an instance shares. */
export interface PartitionContext {
  exactlyOnce: boolean;
  /** status: the sensors' heartbeats (SensorStatus records), keyed by host id like the events. */
  topics: { raw: string; events: string; dlq: string; state: string; status: string };
  /** For each machine's Enricher; trackChanges is always on (the changelog). */
  enricher: EnricherOptions;
  chunk: ChunkLimits;
  rawCodec: ReturnType<typeof rawRecordCodec>;
  eventCodec: ReturnType<typeof networkEventCodec>;
  statusCodec: ReturnType<typeof sensorStatusCodec>;
  /** rawCodec.decodeAll, by hand for the current schema (raw-decoder.ts). */
  decodeRaw(message: Buffer): RawRecord[];
  /** eventCodec's encoding of eventOf(parts), by hand into shared slabs (the producer copies the bytes). */
  encodeEvent(parts: EventParts): Buffer;
  /** The events' key: the host id's bytes (cached across partitions). */
  hostKey(hostId: string): Buffer;
}

export function partitionContext(
  over: Pick<PartitionContext, 'exactlyOnce' | 'topics' | 'enricher'> & Partial<Pick<PartitionContext, 'chunk'>>,
): PartitionContext {
  const hostKeys = new Map<string, Buffer>();
  const eventCodec = networkEventCodec();
  const events = new NetworkEventEncoder(eventCodec.header);
  const rawCodec = rawRecordCodec();
  const raw = new RawDecoder(rawCodec);
  return {
    chunk: DEFAULT_CHUNK_LIMITS,
    rawCodec,
    decodeRaw: (message) => raw.decodeAll(message),
    eventCodec,
    statusCodec: sensorStatusCodec(),
    encodeEvent: (parts) => events.encodeParts(parts),
    hostKey: (hostId) => {
      let key = hostKeys.get(hostId);
      if (!key) {
        key = Buffer.from(hostId, 'utf8');
        if (hostKeys.size > 100_000) hostKeys.clear();
        hostKeys.set(hostId, key);
      }
      return key;
    },
    ...over,
  };
}

interface Waiting {
  generation: number;
  messages: readonly RawMessage[];
}

interface InFlight {
  offset: number;
  /** resolve the batch (consumed) when it is done. */
  fromBatch: boolean;
}

const EMPTY = Buffer.alloc(0);

export class PartitionMachine {
  readonly enricher: Enricher;
  /** Generation of the group this partition was made ready for (-1: never, -2: ready again after a rewind). */
  private generation = -1;
  /** Fenced and restored from the changelog. */
  private restored = false;
  /** A rewind was done: accept the next batch as it comes. */
  private seeked = false;
  /** Prepared before any batch (assigned()): the first batch is checked against the committed offset. */
  private firstBatchDue = false;
  /** Offsets below this are ignored (already committed by the previous owner). */
  private skipBelow = 0;
  private read = -1;
  private committedOffset = -1;
  private events: OutMessage[] = [];
  private statuses: OutMessage[] = [];
  private dlq: OutMessage[] = [];
  /** Notes of the current step, returned ahead of its commands. */
  private notes: Command[] = [];
  private waiting: Waiting | undefined;
  private inFlight: InFlight | undefined;
  private finished = false;

  constructor(
    readonly partition: number,
    private readonly ctx: PartitionContext,
  ) {
    const { rawCodec } = ctx;
    this.enricher = new Enricher(
      { ...ctx.enricher, trackChanges: true },
      {
        eventParts: (parts: EventParts, hostId: string) => {
          let value: Buffer;
          try {
            value = ctx.encodeEvent(parts);
          } catch (err) {
            // Not an event of the contract: the event itself is the dead letter.
            this.deadLetter(eventJson(parts), 'encode', `event of run ${parts.runId} seq ${parts.seq}: ${describeError(err)}`, this.read);
            return;
          }
          this.events.push({ key: ctx.hostKey(hostId), value });
        },
        rejected: (record: RawRecord, position: number, err: EnrichError) => {
          // Possibly a record held since an earlier batch: its message may be
          // gone, so the record alone is the dead letter.
          let value: Buffer;
          try {
            value = rawCodec.encode(record);
          } catch {
            value = EMPTY;
          }
          const offset = Math.floor(position / RECORDS_PER_MESSAGE);
          this.deadLetter(value, err.reason, `record ${position % RECORDS_PER_MESSAGE}: ${err.message}`, offset);
        },
        status: (record: RawRecord, status: SensorStatus) => {
          this.notes.push({ kind: 'status', host: record.hostname || record.host_id, status });
          // The heartbeat on the status topic, in its host's order, in the same transaction as the events before it.
          const out: SensorStatusRecord = {
            timestamp: formatTimestamp(record.time_us),
            host: { hostname: record.hostname, id: record.host_id },
            source: { run_id: record.run_id, seq: record.seq },
            seen: status.seen,
            lost_kernel: status.lost_kernel,
            spooled: status.spooled,
            dropped: status.dropped,
            spool_bytes: status.spool_bytes,
          };
          let value: Buffer;
          try {
            value = ctx.statusCodec.encode(out);
          } catch (err) {
            this.deadLetter(Buffer.from(JSON.stringify(out)), 'encode', `status of run ${record.run_id} seq ${record.seq}: ${describeError(err)}`, this.read);
            return;
          }
          this.statuses.push({ key: ctx.hostKey(record.host_id), value });
        },
      },
    );
  }

  /** Last offset read into the enricher (or dead-lettered); committed - 1 right after prepared(). */
  get lastRead(): number {
    return this.read;
  }

  /** Offset committed last (-1 before prepared()). */
  get committed(): number {
    return this.committedOffset;
  }

  /** Revoked, or a flush failed: every input is ignored. */
  get closed(): boolean {
    return this.finished;
  }

  get counters(): EnricherCounters {
    return this.enricher.counters;
  }

  /** Applies a new process_filter to the records enriched from now on. */
  setFilter(filter: ProcessFilter | null): void {
    this.enricher.setFilter(filter);
  }

  /** Where the adapter feeds the changelog during a prepare{restore}. */
  restoreSink(): StateSink {
    const { enricher } = this;
    return {
      entry: (hostId, pid, ticks, state) => (state ? enricher.table.restore(hostId, state) : enricher.table.forget(hostId, pid, ticks)),
      done: (hostId, position) => enricher.restoreDone(hostId, position),
      dns: (c) => {
        enricher.dns.forget(c.hostId, c.netns, c.address);
        if (c.names)
          enricher.dns.load(
            c.names.map(([name, answeredUs, expiresUs]) => [c.hostId, c.netns, c.address, name, answeredUs, expiresUs]),
            Date.now() * 1000,
          );
      },
    };
  }

  /** Whether tick() would flush: a held record's wait ended and the partition is ready for this generation. */
  due(now: number, generation: number): boolean {
    if (this.finished || this.generation !== generation) return false;
    const deadline = this.enricher.nextDeadline();
    return deadline !== undefined && deadline <= now;
  }

  /**
   * A fetched batch of the raw partition (offsets increasing). `live`: false
   * when the consumer is stopping (or the batch went stale): the records are
   * not read, but the flush still runs.
   */
  batch(generation: number, messages: readonly RawMessage[], now: number, live = true): Command[] {
    if (this.finished || messages.length === 0) return [];
    if (this.generation !== generation) {
      this.waiting = { generation, messages };
      return [this.prepare()];
    }
    if (this.firstBatchDue) return this.firstBatch(messages, now, live);
    return this.readBatch(live ? messages : [], now);
  }

  /**
   * The partition is this member's in `generation`: prepare it now rather
   * than on its first batch. Every partition of an assignment then fences
   * and reads its committed offset before any of them opens a transaction:
   * a stable offset read waits while a transaction holding the group's
   * offsets is open, so one partition's first transaction delayed the next
   * one's prepare by about 0.2 s.
   */
  assigned(generation: number): Command[] {
    if (this.finished || this.generation === generation || this.waiting !== undefined) return [];
    this.waiting = { generation, messages: [] };
    return [this.prepare()];
  }

  private prepare(): Command {
    return { kind: 'prepare', fence: this.ctx.exactlyOnce && !this.restored, restore: !this.restored };
  }

  /**
   * The prepare is done: the previous owner is fenced, the changelog restored
   * (through restoreSink()) and `committed` is the group's committed offset,
   * which can no longer move. `live`: as for batch(), checked now.
   */
  prepared(committed: number, now: number, live = true): Command[] {
    const w = this.waiting;
    this.waiting = undefined;
    if (this.finished || w === undefined) return [];
    const { enricher } = this;
    if (!this.restored) {
      // The restore replayed the changelog: nothing of it is a change to write.
      enricher.table.takeChanges();
      enricher.dns.takeChanges();
      enricher.takeDone();
      this.restored = true;
    } else {
      // Still ours after a rebalance: the table agrees with the committed
      // offsets; only held records go (they will be read again).
      enricher.dropHeld();
      this.events = [];
      this.statuses = [];
      this.dlq = [];
    }
    this.generation = w.generation;
    this.skipBelow = committed;
    this.committedOffset = committed;
    this.read = committed - 1;
    this.firstBatchDue = true;
    return w.messages.length > 0 ? this.firstBatch(w.messages, now, live) : [];
  }

  /** The first batch after a prepare: read, unless the consumer started past the committed offset. */
  private firstBatch(messages: readonly RawMessage[], now: number, live: boolean): Command[] {
    this.firstBatchDue = false;
    const first = Number(messages[0]!.offset);
    if (first > this.committedOffset && !this.seeked) {
      // The consumer started past what is committed (the previous owner's
      // last transaction was aborted): go back, and make ready again (light)
      // on the next batch.
      this.seeked = true;
      this.generation = -2;
      return [{ kind: 'seek', offset: this.committedOffset, reason: 'rewind', from: first }];
    }
    this.seeked = false;
    return this.readBatch(live ? messages : [], now);
  }

  /** Lets held records whose wait ended go out (partitions with no new batch). */
  tick(now: number, generation: number): Command[] {
    if (this.finished || this.generation !== generation) return [];
    this.enricher.expire(now);
    return this.flush(false);
  }

  /** The last transaction committed. */
  flushDone(): Command[] {
    const f = this.inFlight;
    this.inFlight = undefined;
    if (f === undefined || this.finished) return [];
    this.committedOffset = f.offset;
    return f.fromBatch && this.read >= 0 ? [{ kind: 'consumed', offset: this.read }] : [];
  }

  /**
   * The last transaction failed (and was aborted). The enricher has moved past
   * what is committed, so this machine is finished: the partition is read
   * again from the committed offset into a new machine, restored from the
   * changelog, which agrees with that offset.
   */
  flushFailed(): Command[] {
    this.inFlight = undefined;
    if (this.finished) return [];
    this.finished = true;
    return [{ kind: 'close' }, { kind: 'seek', offset: this.committedOffset, reason: 'retry' }];
  }

  /** The partition went to another member. */
  revoked(): Command[] {
    if (this.finished) return [];
    this.finished = true;
    this.waiting = undefined;
    return [{ kind: 'close' }];
  }

  /**
   * Whether readAhead() may take the next part of a batch of `generation`:
   * the partition is ready for it, past its first batch, and not finished.
   */
  readsAhead(generation: number): boolean {
    return !this.finished && this.generation === generation && !this.firstBatchDue && this.waiting === undefined && this.inFlight === undefined;
  }

  /**
   * Reads the first part of a batch without flushing (only when
   * readsAhead()): the adapter reads a long batch in parts and lets its I/O
   * callbacks run between them, so that a transaction in progress moves on
   * while this partition is enriched. The batch's last part goes through
   * batch(), which flushes all of it as one transaction. Its notes come with
   * that flush.
   */
  readAhead(generation: number, messages: readonly RawMessage[], now: number): void {
    if (!this.readsAhead(generation)) throw new Error(`partition ${this.partition}: readAhead() while not ready for generation ${generation}`);
    this.readMessages(messages, now);
  }

  private readBatch(messages: readonly RawMessage[], now: number): Command[] {
    this.readMessages(messages, now);
    return this.flush(true);
  }

  private readMessages(messages: readonly RawMessage[], now: number): void {
    const { enricher, ctx } = this;
    enricher.expire(now);
    let skipped = 0;
    for (const m of messages) {
      const offset = Number(m.offset);
      if (offset < this.skipBelow) continue;
      this.read = offset;
      if (m.value === null || m.value.length === 0) {
        this.deadLetter(m.value ?? EMPTY, 'empty', 'record without a value', offset, m.headers);
        continue;
      }
      let records: RawRecord[];
      try {
        records = ctx.decodeRaw(m.value);
        if (records.length > RECORDS_PER_MESSAGE) throw new ContractError(`${records.length} records in one message, at most ${RECORDS_PER_MESSAGE}`);
      } catch (err) {
        if (!(err instanceof DecodeError || err instanceof ContractError)) throw err;
        this.deadLetter(m.value, err.reason, err.message, offset, m.headers);
        continue;
      }
      for (let i = 0; i < records.length; i++) {
        const record = records[i]!;
        const position = offset * RECORDS_PER_MESSAGE + i;
        if (position <= enricher.doneOf(record.host_id)) {
          skipped++;
          continue;
        }
        try {
          enricher.push(record, position, now);
        } catch (err) {
          // A record that breaks the contract, for whatever reason, or
          // anything else thrown while enriching it: one record must not
          // stop the consumer (a rethrow would crash it on every retry).
          const reason = err instanceof ContractError ? err.reason : 'enrich';
          this.deadLetter(m.value, reason, `record ${i}: ${describeError(err)}`, offset, m.headers);
        }
      }
    }
    if (skipped > 0) this.notes.push({ kind: 'skipped', count: skipped });
  }

  private deadLetter(original: Buffer, reason: string, detail: string, offset: number, originalHeaders?: MessageHeaders): void {
    this.notes.push({ kind: 'rejected', reason, detail, offset });
    const { value, headers: cut } = deadLetterValue(original);
    const headers: MessageHeaders = {
      ...originalHeaders,
      ...cut,
      [DLQ_HEADERS.reason]: reason,
      [DLQ_HEADERS.detail]: detail.slice(0, 1000),
      [DLQ_HEADERS.sourceTopic]: this.ctx.topics.raw,
      [DLQ_HEADERS.sourcePartition]: String(this.partition),
      [DLQ_HEADERS.sourceOffset]: String(offset),
    };
    this.dlq.push({ value: value!, headers });
  }

  /** The step's notes, then its transaction, or `consumed` when there is nothing to write. */
  private flush(fromBatch: boolean): Command[] {
    const { enricher, ctx, partition } = this;
    const out = this.notes;
    this.notes = [];
    const held = enricher.oldestHeld();
    // The message of the oldest held record is read again after a restart;
    // its records at or below their host's done position are skipped then.
    const offset = held !== undefined ? Math.floor(held / RECORDS_PER_MESSAGE) : this.read + 1;
    const state: ChangelogMessage[] = [];
    for (const c of enricher.table.takeChanges()) state.push(changeMessage(c, partition));
    for (const c of enricher.dns.takeChanges()) state.push(dnsMessage(c, partition));
    for (const [hostId, position] of enricher.takeDone()) state.push(doneMessage(hostId, position, partition));
    const batches: TopicBatch[] = [];
    if (this.events.length > 0) batches.push({ topic: ctx.topics.events, messages: this.events });
    if (this.statuses.length > 0) batches.push({ topic: ctx.topics.status, messages: this.statuses });
    if (this.dlq.length > 0) batches.push({ topic: ctx.topics.dlq, messages: this.dlq });
    if (state.length > 0) batches.push({ topic: ctx.topics.state, messages: state });
    const events = this.events.length;
    const statuses = this.statuses.length;
    const deadLetters = this.dlq.length;
    this.events = [];
    this.statuses = [];
    this.dlq = [];
    if (batches.length === 0 && offset === this.committedOffset) {
      if (fromBatch && this.read >= 0) out.push({ kind: 'consumed', offset: this.read });
      return out;
    }
    this.inFlight = { offset, fromBatch };
    out.push({
      kind: 'transaction',
      requests: chunks(batches, ctx.chunk),
      commit: { topic: ctx.topics.raw, partition, offset },
      events,
      statuses,
      deadLetters,
      changes: state.length,
    });
    return out;
  }
}

/** A dead letter's bytes for an event that would not encode: its JSON, or as much as can be said. */
function eventJson(parts: EventParts): Buffer {
  try {
    return Buffer.from(JSON.stringify(eventOf(parts)));
  } catch (err) {
    return Buffer.from(JSON.stringify({ host: parts.host, source: { run_id: parts.runId, seq: parts.seq }, error: describeError(err) }));
  }
}

/** An estimate of a message's bytes in a request. */
function sizeOf(m: OutMessage): number {
  return 32 + (m.key ? m.key.length : 0) + (m.value ? m.value.length : 0);
}

/** Splits output into produce requests within `limits`, keeping the order of topics and messages. */
export function chunks(batches: readonly TopicBatch[], limits: ChunkLimits = DEFAULT_CHUNK_LIMITS): TopicBatch[][] {
  const out: TopicBatch[][] = [];
  let chunk: TopicBatch[] = [];
  let bytes = 0;
  let count = 0;
  for (const tm of batches) {
    let current: OutMessage[] = [];
    for (const m of tm.messages) {
      const size = sizeOf(m);
      if ((bytes + size > limits.bytes || count >= limits.messages) && bytes > 0) {
        if (current.length > 0) chunk.push({ topic: tm.topic, messages: current });
        out.push(chunk);
        chunk = [];
        current = [];
        bytes = 0;
        count = 0;
      }
      current.push(m);
      bytes += size;
      count++;
    }
    if (current.length > 0) chunk.push({ topic: tm.topic, messages: current });
  }
  if (chunk.length > 0) out.push(chunk);
  return out;
}
