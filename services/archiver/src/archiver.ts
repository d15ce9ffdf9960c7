// The archiver service: a consumer group on the events topic (read committed)
// that lands every NetworkEvent in S3 exactly once.
//
// Per partition: records go into an open flush (FlushBuilder); a seal rule
// (policy.ts) closes it; the sealed flush goes through
//   1. its manifest, created with If-None-Match: * (the first writer fixes the range),
//   2. its data objects, one per UTC hour (content fixed by the range),
//   3. the offset commit (fenced by the group generation),
// one flush at a time per partition, in order. A crash at any point leaves at
// most one uncommitted manifest per partition; the replay, starting at the
// committed offset, finds it and ends its first flush exactly where it ends,
// so every object is written again with the same name and the same content.
// See services/archiver/README.md for the cases.
import { hostname } from 'node:os';
import {
  DLQ_HEADERS,
  DecodeError,
  type Logger,
  type MetricsServer,
  type NetmonConfig,
  type NetworkEvent,
  createKafka,
  createRegistry,
  createS3Client,
  describeError,
  networkEventCodec,
  readSchema,
  startMetricsServer,
} from '@netmon/common';
import type { Consumer, EachBatchPayload, Producer } from 'kafkajs';
import type { Registry } from 'prom-client';
import { type ArchiveRecord, FlushBuilder, type SealedBodies } from './batch';
import { type ArchiverSettings, archiverSettings } from './config';
import { FlushAbandoned, ManifestMismatch } from './errors';
import { type HourPartition, hourOf, manifestKey, timeOf } from './layout';
import { type Manifest, sameRange } from './manifest';
import { type ArchiverMetrics, archiverMetrics } from './metrics';
import { type Alignment, type SealReason, backoffMs, overHardLimit, sealReason } from './policy';
import { ArchiveStore } from './store';
import { JsonTranscoder, fastTime } from './transcode';

/** The fast path for the current NetworkEvent schema (undefined if the schema has types it does not know). */
function makeTranscoder(codec: ReturnType<typeof networkEventCodec>): JsonTranscoder | undefined {
  try {
    return new JsonTranscoder(readSchema('network-event.avsc'), codec.header, 'timestamp');
  } catch {
    return undefined;
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

interface Sealed {
  st: PartitionState;
  firstOffset: number;
  lastOffset: number;
  nextOffset: number;
  records: number;
  rawBytes: number;
  reason: SealReason;
  /** The manifest already in S3 for exactly this range (a replay), if any. */
  existing?: Manifest;
  bodies: Promise<SealedBodies>;
  sealedAt: number;
}

/** One assigned partition, for one generation. A rebalance or a realignment replaces it. */
class PartitionState {
  /** Set when replaced: its flushes in flight stop before their commit. */
  dropped = false;
  builder?: FlushBuilder;
  /** Of the open builder: see policy.ts. */
  alignment: Alignment = undefined;
  existing?: Manifest;
  /** A manifest learnt before re-reading (realignment): applies to the builder opening at its first offset. */
  knownManifest?: Manifest;
  queue: Sealed[] = [];
  uploading = false;
  paused = false;
  committed?: number;
  highWatermark?: number;
  /** Offset of the last record appended in this state (open or sealed). */
  lastAppended = -1;
  constructor(readonly partition: number) {}

  get heldBytes(): number {
    return (this.builder?.rawBytes ?? 0) + this.queue.reduce((n, s) => n + s.rawBytes, 0);
  }
}

async function mapLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

export interface ArchiverOptions {
  logger: Logger;
  registry?: Registry;
  /** Wall clock, for tests. */
  now?: () => number;
}

export class Archiver {
  readonly settings: ArchiverSettings;
  readonly store: ArchiveStore;
  readonly metrics: ArchiverMetrics;
  readonly registry: Registry;
  private readonly log: Logger;
  private readonly consumer: Consumer;
  private readonly producer: Producer;
  private readonly codec = networkEventCodec();
  private readonly transcoder = makeTranscoder(this.codec);
  private readonly lastPartBytes = Buffer.alloc(13);
  private lastPart?: HourPartition;
  private readonly now: () => number;
  private states = new Map<number, PartitionState>();
  private memberId = '';
  private stopping = false;
  private hardStop = false;
  private activeBatches = 0;
  private uploadedFlushes = 0;
  private timer?: NodeJS.Timeout;
  private metricsServer?: MetricsServer;
  private stopped?: Promise<void>;
  private problem: string | undefined = 'starting';
  private lastWarn = 0;

  constructor(
    readonly config: NetmonConfig,
    opts: ArchiverOptions,
  ) {
    this.settings = archiverSettings(config);
    this.log = opts.logger;
    this.now = opts.now ?? Date.now;
    this.registry = opts.registry ?? createRegistry('archiver');
    this.metrics = archiverMetrics(this.registry);
    this.store = new ArchiveStore(createS3Client(config.s3), config.s3, { partSize: this.settings.partSize, queueSize: 4 });
    const kafka = createKafka(config.kafka, this.log, 'archiver');
    this.consumer = kafka.consumer({
      groupId: this.settings.groupId,
      readUncommitted: false,
      allowAutoTopicCreation: false,
      sessionTimeout: 30_000,
      rebalanceTimeout: 60_000,
      heartbeatInterval: 3_000,
      maxBytesPerPartition: 8 << 20,
      maxBytes: 32 << 20,
      maxWaitTimeInMs: 500,
    });
    this.producer = kafka.producer({ allowAutoTopicCreation: false });
  }

  /** The /healthz answer: undefined when healthy. */
  health(): string | undefined {
    return this.problem;
  }

  get metricsPort(): number | undefined {
    return this.metricsServer?.port;
  }

  async start(): Promise<void> {
    const s = this.settings;
    this.metricsServer = await startMetricsServer(this.registry, s.metricsPort, () => this.health());
    await this.producer.connect();
    await this.consumer.connect();
    const { GROUP_JOIN, CRASH } = this.consumer.events;
    this.consumer.on(GROUP_JOIN, (e) => this.onJoin(e.payload.memberAssignment[s.topic] ?? [], e.payload.memberId));
    this.consumer.on(CRASH, (e) => {
      this.problem = `consumer crashed: ${describeError(e.payload.error)}${e.payload.restart ? ' (restarting)' : ''}`;
      this.log.error({ err: e.payload.error, restart: e.payload.restart }, 'consumer crashed');
    });
    await this.consumer.subscribe({ topic: s.topic, fromBeginning: true });
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: true,
      partitionsConsumedConcurrently: 1,
      eachBatch: (payload) => this.onBatch(payload),
    });
    this.timer = setInterval(() => this.tick(), 500);
    this.timer.unref();
    this.log.info(
      {
        topic: s.topic,
        groupId: s.groupId,
        bucket: s.s3.bucket,
        prefix: s.s3.prefix,
        endpoint: s.s3.endpoint || '(AWS)',
        limits: s.limits,
        metricsPort: this.metricsPort,
      },
      'archiver started',
    );
  }

  // ---- group membership -------------------------------------------------

  /**
   * A new generation: kafkajs restarts every assigned partition at its committed
   * offset, so everything held and not committed is dropped (it will be read
   * again). Flushes in flight finish their upload but do not commit.
   */
  private onJoin(partitions: number[], memberId: string): void {
    this.memberId = memberId;
    const resume: number[] = [];
    for (const st of this.states.values()) {
      if (st.paused) resume.push(st.partition);
      this.drop(st);
    }
    this.states = new Map(partitions.map((p) => [p, new PartitionState(p)]));
    if (resume.length > 0) this.consumer.resume([{ topic: this.settings.topic, partitions: resume }]);
    this.metrics.paused.set(0);
    if (this.problem === 'starting' || this.problem?.startsWith('consumer crashed')) this.problem = undefined;
    this.log.info({ memberId, partitions }, 'joined the group');
  }

  private drop(st: PartitionState): void {
    st.dropped = true;
    st.builder?.discard();
    st.builder = undefined;
    for (const s of st.queue) s.bodies.catch(() => undefined);
    st.queue = [];
  }

  private state(partition: number): PartitionState {
    let st = this.states.get(partition);
    if (!st) {
      st = new PartitionState(partition);
      this.states.set(partition, st);
    }
    return st;
  }

  // ---- consuming --------------------------------------------------------

  private async onBatch({ batch, isStale }: EachBatchPayload): Promise<void> {
    this.log.debug({ partition: batch.partition, first: batch.firstOffset(), n: batch.messages.length, stale: isStale() }, 'batch');
    if (this.stopping || isStale() || batch.messages.length === 0) return;
    this.activeBatches++;
    try {
      await this.consumeBatch(batch, isStale);
    } finally {
      this.activeBatches--;
    }
  }

  private async consumeBatch(batch: EachBatchPayload['batch'], isStale: () => boolean): Promise<void> {
    const { limits } = this.settings;
    let st = this.state(batch.partition);
    const now = this.now();
    for (const m of batch.messages) {
      const offset = Number(m.offset);
      if (offset <= st.lastAppended) {
        // The fetch position went back (kafkajs reset it): start over from here.
        this.log.warn({ partition: st.partition, offset, held: st.lastAppended }, 'fetch position rewound; dropping what is held');
        st = this.replace(st);
      }
      // A manifest ends this flush before this record.
      if (st.builder && typeof st.alignment === 'number' && offset > st.alignment) this.seal(st, 'aligned');

      // Fast path: Avro bytes straight to the JSON line (transcode.ts); else decode once, stringify once.
      let rec: ArchiveRecord | undefined;
      const fast = m.value ? this.transcoder?.transcode(m.value) : undefined;
      if (fast) {
        const out = this.transcoder!.out;
        const timeMs = fastTime(out, fast.markStart, fast.markEnd);
        if (timeMs !== undefined) rec = { offset, bytes: out, bytesEnd: fast.end, part: this.partOf(out, fast.markStart), timeMs };
      }
      if (!rec) {
        let event: NetworkEvent;
        try {
          event = this.codec.decode(m.value ?? Buffer.alloc(0));
        } catch (err) {
          await this.deadLetter(batch.topic, batch.partition, m, err);
          if (st.dropped || isStale()) return;
          continue;
        }
        const part = hourOf(event.timestamp);
        if (!part) {
          await this.deadLetter(batch.topic, batch.partition, m, new Error(`timestamp ${JSON.stringify(event.timestamp)} is not RFC 3339`), 'bad-timestamp');
          if (st.dropped || isStale()) return;
          continue;
        }
        rec = { offset, line: JSON.stringify(event), part, timeMs: timeOf(event.timestamp) };
      }
      if (!st.builder) this.open(st, offset, now);
      st.builder!.append(rec, now);
      st.lastAppended = offset;
      const reason = sealReason(st.builder!, limits, st.alignment, now);
      if (reason) this.seal(st, reason);
    }
    const last = batch.messages[batch.messages.length - 1]!;
    if (st.builder && st.builder.lastOffset === Number(last.offset)) st.builder.coverThrough(Number(batch.lastOffset()));
    st.highWatermark = Number(batch.highWatermark);
    this.updateLag(st);
    this.updatePause(st);
    // Back-pressure on the compressors: do not fetch faster than gzip keeps up.
    if (st.builder?.congested) await st.builder.drained();
  }

  /** The hour partition of "YYYY-MM-DDTHH" at buf[start..], reusing the last one while it repeats. */
  private partOf(buf: Buffer, start: number): HourPartition {
    if (this.lastPart && buf.compare(this.lastPartBytes, 0, 13, start, start + 13) === 0) return this.lastPart;
    buf.copy(this.lastPartBytes, 0, start, start + 13);
    this.lastPart = { dt: buf.toString('latin1', start, start + 10), hour: buf.toString('latin1', start + 11, start + 13) };
    return this.lastPart;
  }

  private async deadLetter(topic: string, partition: number, m: EachBatchPayload['batch']['messages'][number], err: unknown, reason?: string): Promise<void> {
    const why = reason ?? (err instanceof DecodeError ? err.reason : 'error');
    this.metrics.decodeErrors.inc({ reason: why });
    this.log.warn({ partition, offset: m.offset, reason: why, err: describeError(err) }, 'record not archivable; dead-lettered');
    await this.producer.send({
      topic: this.settings.dlqTopic,
      acks: -1,
      messages: [
        {
          key: m.key,
          value: m.value,
          headers: {
            [DLQ_HEADERS.reason]: why,
            [DLQ_HEADERS.detail]: describeError(err).slice(0, 1000),
            [DLQ_HEADERS.sourceTopic]: topic,
            [DLQ_HEADERS.sourcePartition]: String(partition),
            [DLQ_HEADERS.sourceOffset]: m.offset,
          },
        },
      ],
    });
  }

  /** Replaces a partition's state with a fresh one (nothing held), keeping the pause flag truthful. */
  private replace(st: PartitionState, known?: Manifest): PartitionState {
    const fresh = new PartitionState(st.partition);
    fresh.knownManifest = known;
    if (st.paused) {
      this.consumer.resume([{ topic: this.settings.topic, partitions: [st.partition] }]);
      st.paused = false;
    }
    this.drop(st);
    if (this.states.get(st.partition) === st) this.states.set(st.partition, fresh);
    this.countPaused();
    return fresh;
  }

  /** Opens a flush at `offset` and finds out whether a manifest already starts there. */
  private open(st: PartitionState, offset: number, now: number): void {
    const s = this.settings;
    const builder = new FlushBuilder(s.s3.prefix, s.topic, st.partition, offset, s.gzipLevel, now);
    st.builder = builder;
    st.existing = undefined;
    if (st.knownManifest?.firstOffset === offset) {
      st.alignment = st.knownManifest.lastOffset;
      st.existing = st.knownManifest;
      st.knownManifest = undefined;
      return;
    }
    st.knownManifest = undefined;
    st.alignment = undefined;
    const key = manifestKey(s.s3.prefix, s.topic, st.partition, offset);
    const current = () => !st.dropped && st.builder === builder && !this.hardStop;
    this.retry('lookup', key, () => this.store.getManifest(key), current).then(
      (manifest) => {
        if (!current()) return;
        if (!manifest) {
          st.alignment = null;
        } else if (builder.lastOffset > manifest.lastOffset) {
          // Read past the end another writer fixed: read again from the first offset.
          this.log.info({ partition: st.partition, key, manifestEnd: manifest.lastOffset, held: builder.lastOffset }, 'realigning to an existing flush');
          this.metrics.realigned.inc();
          this.seekBack(st, offset, manifest);
          return;
        } else {
          this.log.info({ partition: st.partition, key, firstOffset: offset, lastOffset: manifest.lastOffset }, 'replaying a flush of an earlier run');
          st.alignment = manifest.lastOffset;
          st.existing = manifest;
        }
        const reason = sealReason(builder, this.settings.limits, st.alignment, this.now());
        if (reason) this.seal(st, reason);
        this.updatePause(st);
      },
      (err) => {
        if (!(err instanceof FlushAbandoned)) this.log.error({ err: describeError(err) }, 'manifest lookup failed');
      },
    );
  }

  /** Drops what is held and fetches again from `offset`, knowing the manifest that starts there. */
  private seekBack(st: PartitionState, offset: number, manifest?: Manifest): void {
    const fresh = this.replace(st, manifest);
    if (this.states.get(st.partition) !== fresh) return;
    this.consumer.seek({ topic: this.settings.topic, partition: st.partition, offset: String(offset) });
  }

  private seal(st: PartitionState, reason: SealReason): void {
    const b = st.builder;
    if (!b || b.records === 0) return;
    st.builder = undefined;
    const sealed: Sealed = {
      st,
      firstOffset: b.firstOffset,
      lastOffset: b.lastOffset,
      nextOffset: b.nextOffset,
      records: b.records,
      rawBytes: b.rawBytes,
      reason,
      existing: st.existing && sameRange(st.existing, b) ? st.existing : undefined,
      bodies: b.seal(),
      sealedAt: this.now(),
    };
    sealed.bodies.catch(() => undefined);
    st.alignment = undefined;
    st.existing = undefined;
    st.queue.push(sealed);
    this.log.debug({ partition: st.partition, firstOffset: b.firstOffset, lastOffset: b.lastOffset, records: b.records, reason }, 'flush sealed');
    this.pump(st);
  }

  // ---- uploading ----------------------------------------------------------

  private pump(st: PartitionState): void {
    if (st.uploading || st.dropped || st.queue.length === 0) return;
    st.uploading = true;
    const sealed = st.queue[0]!;
    this.flush(sealed).then(
      () => {
        st.uploading = false;
        if (st.queue[0] === sealed) st.queue.shift();
        this.updatePause(st);
        this.pump(st);
      },
      (err) => {
        st.uploading = false;
        if (err instanceof FlushAbandoned || st.dropped) return;
        if (err instanceof ManifestMismatch) {
          this.log.warn({ partition: st.partition, err: err.message }, 'another writer fixed this flush first; realigning');
          this.metrics.realigned.inc();
          this.seekBack(st, sealed.firstOffset, undefined);
          return;
        }
        this.log.error({ partition: st.partition, err: describeError(err) }, 'flush failed; reading the partition again from its first offset');
        this.seekBack(st, sealed.firstOffset, undefined);
      },
    );
  }

  /** Retries `fn` with backoff until it succeeds; gives up (FlushAbandoned) once `current()` is false. */
  private async retry<T>(op: string, key: string, fn: () => Promise<T>, current: () => boolean): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      if (!current()) throw new FlushAbandoned(`${op} ${key}: no longer ours`);
      try {
        return await fn();
      } catch (err) {
        this.metrics.uploadErrors.inc({ op });
        const now = this.now();
        if (attempt === 0 || now - this.lastWarn > 5000) {
          this.lastWarn = now;
          this.log.warn({ op, key, attempt, err: describeError(err) }, 'S3 call failed; retrying with backoff');
        }
        await sleep(backoffMs(attempt, 200, 5_000));
      }
    }
  }

  private async flush(s: Sealed): Promise<void> {
    const { st } = s;
    const set = this.settings;
    const current = () => !st.dropped && !this.hardStop;
    const { objects } = await s.bodies;
    const mkey = manifestKey(set.s3.prefix, set.topic, st.partition, s.firstOffset);
    if (!s.existing) {
      const manifest: Manifest = {
        version: 1,
        topic: set.topic,
        partition: st.partition,
        firstOffset: s.firstOffset,
        lastOffset: s.lastOffset,
        nextOffset: s.nextOffset,
        records: s.records,
        objects: objects.map((o) => ({ key: o.key, firstOffset: o.firstOffset, records: o.records, bytes: o.body.length })),
        writer: { host: hostname(), pid: process.pid, memberId: this.memberId },
        createdAt: new Date(this.now()).toISOString(),
      };
      const created = await this.retry('manifest', mkey, () => this.store.createManifest(mkey, manifest), current);
      if (created === 'exists') {
        const other = await this.retry('manifest', mkey, () => this.store.getManifest(mkey), current);
        if (!other || !sameRange(other, s)) {
          throw new ManifestMismatch(mkey, other ?? { firstOffset: s.firstOffset, lastOffset: -1 }, s);
        }
      }
    }
    await mapLimit(objects, set.uploadConcurrency, async (o) => {
      await this.retry('put', o.key, () => this.store.putObject(o.key, o.body), current);
    });
    this.uploadedFlushes++;
    if (set.crashAfterUpload > 0 && this.uploadedFlushes >= set.crashAfterUpload) {
      // Test hook: the worst moment to die. Everything is in S3, nothing committed.
      this.log.warn({ partition: st.partition, firstOffset: s.firstOffset, lastOffset: s.lastOffset }, 'test hook: SIGKILL after upload, before commit');
      process.kill(process.pid, 'SIGKILL');
      await sleep(60_000);
    }
    await this.retry(
      'commit',
      `${set.topic}/${st.partition}@${s.nextOffset}`,
      () => this.consumer.commitOffsets([{ topic: set.topic, partition: st.partition, offset: String(s.nextOffset) }]),
      current,
    );
    st.committed = s.nextOffset;
    const bytes = objects.reduce((n, o) => n + o.body.length, 0);
    this.metrics.records.inc({ topic: set.topic }, s.records);
    this.metrics.objects.inc({ topic: set.topic }, objects.length);
    this.metrics.bytes.inc({ topic: set.topic }, bytes);
    this.metrics.flushes.inc({ reason: s.reason });
    this.metrics.flushSeconds.observe((this.now() - s.sealedAt) / 1000);
    this.updateLag(st);
    this.log.info(
      {
        partition: st.partition,
        firstOffset: s.firstOffset,
        lastOffset: s.lastOffset,
        records: s.records,
        objects: objects.length,
        bytes,
        reason: s.reason,
        replay: Boolean(s.existing),
      },
      'flush committed',
    );
  }

  // ---- housekeeping -------------------------------------------------------

  private updatePause(st: PartitionState): void {
    if (st.dropped) return;
    const want =
      this.stopping || st.queue.length >= this.settings.maxQueuedFlushes || (st.builder !== undefined && overHardLimit(st.builder, this.settings.limits));
    if (want === st.paused) return;
    st.paused = want;
    const tp = [{ topic: this.settings.topic, partitions: [st.partition] }];
    if (want) this.consumer.pause(tp);
    else this.consumer.resume(tp);
    this.log.info({ partition: st.partition, queued: st.queue.length }, want ? 'partition paused (back-pressure)' : 'partition resumed');
    this.countPaused();
  }

  private countPaused(): void {
    let n = 0;
    for (const st of this.states.values()) if (st.paused) n++;
    this.metrics.paused.set(n);
  }

  private updateLag(st: PartitionState): void {
    if (st.highWatermark === undefined) return;
    const base = st.committed ?? st.queue[0]?.firstOffset ?? st.builder?.firstOffset;
    if (base !== undefined) this.metrics.lag.set({ partition: String(st.partition) }, Math.max(0, st.highWatermark - base));
  }

  /** Seals flushes whose partition went idle (or whose span or alignment is reached). */
  private tick(): void {
    const now = this.now();
    let held = 0;
    for (const st of this.states.values()) {
      if (st.builder && !st.dropped) {
        const reason = sealReason(st.builder, this.settings.limits, st.alignment, now);
        if (reason) this.seal(st, reason);
        this.updatePause(st);
      }
      held += st.heldBytes;
    }
    this.metrics.buffered.set(held);
  }

  // ---- shutdown -----------------------------------------------------------

  /** SIGTERM: stop fetching, seal and upload what is held, commit, leave the group. Idempotent. */
  stop(): Promise<void> {
    this.stopped ??= this.shutdown();
    return this.stopped;
  }

  private async shutdown(): Promise<void> {
    this.log.info('stopping: sealing and uploading what is held');
    this.stopping = true;
    this.problem = 'stopping';
    if (this.timer) clearInterval(this.timer);
    try {
      this.consumer.pause([{ topic: this.settings.topic }]);
    } catch {
      // Not running yet: nothing to pause.
    }
    const deadline = this.now() + this.settings.shutdownTimeoutMs;
    while (this.activeBatches > 0 && this.now() < deadline) await sleep(10);
    for (;;) {
      let busy = false;
      for (const st of this.states.values()) {
        if (st.dropped) continue;
        if (st.builder) {
          if (st.alignment === null || (typeof st.alignment === 'number' && st.builder.lastOffset >= st.alignment)) this.seal(st, 'shutdown');
          else if (typeof st.alignment === 'number') {
            // Short of an earlier run's flush end: leave it to the next run.
            st.builder.discard();
            st.builder = undefined;
          }
        }
        if (st.builder || st.queue.length > 0) busy = true;
      }
      if (!busy) break;
      if (this.now() >= deadline) {
        this.hardStop = true;
        this.log.warn('shutdown timeout: leaving with flushes not uploaded (they will be read again)');
        break;
      }
      await sleep(20);
    }
    await this.consumer.disconnect().catch((err) => this.log.warn({ err: describeError(err) }, 'consumer disconnect failed'));
    await this.producer.disconnect().catch(() => undefined);
    await this.metricsServer?.close();
    this.store.client.destroy();
    this.log.info('stopped');
  }
}
