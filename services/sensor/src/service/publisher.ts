// Ordered, batched, never-blocking delivery of encoded records to Kafka, in
// runs of records (runs.ts); every bound and counter is in records.
//
// enqueue() is synchronous and cheap: records go to a bounded memory queue,
// or, when that is full, Kafka is slow or down, or the spool already holds
// records (order!), to the on-disk spool; past the spool's bound they are dropped and counted. One
// pump sends one batch at a time (the producer is idempotent, so one
// in-flight batch keeps order): memory first (older), then the spool. A failed
// send is retried with backoff, never dropped.
import { type RecordRun, recordsIn } from './runs';
import type { Spool } from './spool';

export interface PublisherOptions {
  /** Sends one batch; resolves when the broker acknowledged all of it. */
  send(runs: RecordRun[]): Promise<void>;
  spool: Spool;
  maxBatchRecords: number;
  maxBatchBytes: number;
  lingerMs: number;
  /** Records held in memory; a run that starts below the bound is taken whole. */
  maxMemoryRecords: number;
  /** A send slower than this marks Kafka slow: new records go to the spool (default 1000). */
  slowSendMs?: number;
  onError?(err: unknown, attempt: number): void;
  onSent?(records: number, latencyMs: number): void;
  /**
   * Runs given to enqueue() that the publisher no longer refers to (sent,
   * spooled or dropped), each exactly once: their memory may be reused.
   */
  onReleased?(runs: readonly RecordRun[]): void;
}

export interface PublisherCounters {
  sent: number;
  spooled: number;
  dropped: number;
}

export class Publisher {
  readonly counters: PublisherCounters = { sent: 0, spooled: 0, dropped: 0 };
  private memory: RecordRun[] = [];
  private memoryHead = 0;
  /** Records in memory[memoryHead..]. */
  private memoryRecords = 0;
  private wake: (() => void) | undefined;
  private closing = false;
  /** close() gave up waiting: the pump must end without sending more. */
  private abandoned = false;
  /** The pump waits for records (not lingering over a batch). */
  private idle = false;
  private healthy = true;
  private readonly pumping: Promise<void>;

  constructor(private readonly opts: PublisherOptions) {
    this.pumping = this.pump();
  }

  /** Records waiting in memory. */
  get queued(): number {
    return this.memoryRecords;
  }

  /** False while sends are failing. */
  get isHealthy(): boolean {
    return this.healthy;
  }

  enqueue(runs: readonly RecordRun[]): void {
    const { spool } = this.opts;
    let i = 0;
    // While Kafka is slow or down, records go straight to disk: they survive a
    // crash there, and memory stays small.
    if (spool.isEmpty && this.healthy) {
      for (; i < runs.length && this.memoryRecords < this.opts.maxMemoryRecords; i++) {
        this.memory.push(runs[i]!);
        this.memoryRecords += runs[i]!.count;
      }
    }
    if (i < runs.length) {
      const rest = runs.slice(i);
      const records = recordsIn(rest);
      const dropped = spool.append(rest);
      this.counters.spooled += records - dropped;
      this.counters.dropped += dropped;
      this.opts.onReleased?.(rest);
    }
    if (this.idle || this.queued >= this.opts.maxBatchRecords) this.wake?.();
  }

  /** Sends what is queued (memory, then spool) and stops; on timeout, spools the rest of memory. */
  async close(timeoutMs: number): Promise<void> {
    this.closing = true;
    this.wake?.();
    const timedOut = await Promise.race([this.pumping.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), timeoutMs).unref())]);
    if (timedOut) {
      // Kafka is away: keep what memory holds for the next run.
      this.abandoned = true;
      this.wake?.();
      const rest = this.memory.slice(this.memoryHead);
      const records = this.memoryRecords;
      this.memory = [];
      this.memoryHead = 0;
      this.memoryRecords = 0;
      const dropped = this.opts.spool.prepend(rest);
      this.counters.spooled += records - dropped;
      this.counters.dropped += dropped;
      this.opts.onReleased?.(rest);
    }
    this.opts.spool.close();
  }

  private async pump(): Promise<void> {
    while (!this.abandoned) {
      const fromMemory = this.queued > 0;
      if (!fromMemory && this.opts.spool.isEmpty) {
        if (this.closing) return;
        this.idle = true;
        await this.sleep(1000);
        this.idle = false;
        continue;
      }
      if (fromMemory && this.queued < this.opts.maxBatchRecords && this.opts.spool.isEmpty && !this.closing) {
        await this.sleep(this.opts.lingerMs); // linger: let the batch fill
      }
      if (fromMemory) {
        const batch = this.takeMemoryBatch();
        if (!(await this.sendWithRetry(batch.runs, batch.records))) return;
        // close() gave up meanwhile: it spooled and released the whole memory queue
        if (this.abandoned) return;
        this.memoryHead += batch.runs.length;
        this.memoryRecords -= batch.records;
        this.opts.onReleased?.(batch.runs);
        // Sent runs go from the array soon: they hold their memory while in it.
        if (this.memoryHead > 1024 && this.memoryHead * 2 > this.memory.length) {
          this.memory = this.memory.slice(this.memoryHead);
          this.memoryHead = 0;
        }
      } else {
        const batch = this.opts.spool.peek(this.opts.maxBatchRecords, this.opts.maxBatchBytes);
        if (!batch) continue;
        if (!(await this.sendWithRetry(batch.runs, batch.records))) return;
        this.opts.spool.commit(batch);
      }
    }
  }

  /** The oldest runs, within the batch limits (at least one run). */
  private takeMemoryBatch(): { runs: RecordRun[]; records: number } {
    let bytes = 0;
    let records = 0;
    let i = this.memoryHead;
    for (; i < this.memory.length; i++) {
      const run = this.memory[i]!;
      if (i > this.memoryHead && (bytes + run.bytes.length > this.opts.maxBatchBytes || records + run.count > this.opts.maxBatchRecords)) break;
      bytes += run.bytes.length;
      records += run.count;
    }
    return { runs: this.memory.slice(this.memoryHead, i), records };
  }

  /** True once sent; false if close() abandoned it (the batch stays queued). */
  private async sendWithRetry(batch: RecordRun[], records: number): Promise<boolean> {
    for (let attempt = 1; !this.abandoned; attempt++) {
      const started = performance.now();
      const slow = setTimeout(() => {
        this.healthy = false;
      }, this.opts.slowSendMs ?? 1000);
      try {
        await this.opts.send(batch);
        clearTimeout(slow);
        this.healthy = true;
        this.counters.sent += records;
        this.opts.onSent?.(records, performance.now() - started);
        return true;
      } catch (err) {
        clearTimeout(slow);
        this.healthy = false;
        this.opts.onError?.(err, attempt);
        await this.sleep(Math.min(5000, 100 * 2 ** Math.min(attempt, 6)));
      }
    }
    return false;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }
}
