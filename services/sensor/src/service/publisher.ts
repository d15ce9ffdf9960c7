// Ordered, batched, never-blocking delivery of encoded records to Kafka.
//
// enqueue() is synchronous and cheap: records go to a bounded memory queue,
// or, when that is full, Kafka is slow or down, or the spool already holds
// records (order!), to the on-disk spool; past the spool's bound they are dropped and counted. One
// pump sends one batch at a time (the producer is idempotent, so one
// in-flight batch keeps order): memory first (older), then the spool. A failed
// send is retried with backoff, never dropped.
import type { Spool } from './spool';

export interface PublisherOptions {
  /** Sends one batch; resolves when the broker acknowledged all of it. */
  send(values: Buffer[]): Promise<void>;
  spool: Spool;
  maxBatchRecords: number;
  maxBatchBytes: number;
  lingerMs: number;
  maxMemoryRecords: number;
  /** A send slower than this marks Kafka slow: new records go to the spool (default 1000). */
  slowSendMs?: number;
  onError?(err: unknown, attempt: number): void;
  onSent?(records: number, latencyMs: number): void;
}

export interface PublisherCounters {
  sent: number;
  spooled: number;
  dropped: number;
}

export class Publisher {
  readonly counters: PublisherCounters = { sent: 0, spooled: 0, dropped: 0 };
  private memory: Buffer[] = [];
  private memoryHead = 0;
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
    return this.memory.length - this.memoryHead;
  }

  /** False while sends are failing. */
  get isHealthy(): boolean {
    return this.healthy;
  }

  enqueue(values: readonly Buffer[]): void {
    const { spool } = this.opts;
    let i = 0;
    // While Kafka is slow or down, records go straight to disk: they survive a
    // crash there, and memory stays small.
    if (spool.isEmpty && this.healthy) {
      const room = Math.max(0, this.opts.maxMemoryRecords - this.queued);
      i = Math.min(room, values.length);
      for (let k = 0; k < i; k++) this.memory.push(values[k]!);
    }
    if (i < values.length) {
      const rest = values.slice(i);
      const dropped = spool.append(rest);
      this.counters.spooled += rest.length - dropped;
      this.counters.dropped += dropped;
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
      this.memory = [];
      this.memoryHead = 0;
      const dropped = this.opts.spool.prepend(rest);
      this.counters.spooled += rest.length - dropped;
      this.counters.dropped += dropped;
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
        if (!(await this.sendWithRetry(batch))) return;
        this.memoryHead += batch.length;
        if (this.memoryHead > 65536 && this.memoryHead * 2 > this.memory.length) {
          this.memory = this.memory.slice(this.memoryHead);
          this.memoryHead = 0;
        }
      } else {
        const batch = this.opts.spool.peek(this.opts.maxBatchRecords, this.opts.maxBatchBytes);
        if (!batch) continue;
        if (!(await this.sendWithRetry(batch.records))) return;
        this.opts.spool.commit(batch);
      }
    }
  }

  private takeMemoryBatch(): Buffer[] {
    const end = Math.min(this.memory.length, this.memoryHead + this.opts.maxBatchRecords);
    let bytes = 0;
    let i = this.memoryHead;
    for (; i < end; i++) {
      bytes += this.memory[i]!.length;
      if (bytes > this.opts.maxBatchBytes && i > this.memoryHead) break;
    }
    return this.memory.slice(this.memoryHead, i);
  }

  /** True once sent; false if close() abandoned it (the batch stays queued). */
  private async sendWithRetry(batch: Buffer[]): Promise<boolean> {
    for (let attempt = 1; !this.abandoned; attempt++) {
      const started = performance.now();
      const slow = setTimeout(() => {
        this.healthy = false;
      }, this.opts.slowSendMs ?? 1000);
      try {
        await this.opts.send(batch);
        clearTimeout(slow);
        this.healthy = true;
        this.counters.sent += batch.length;
        this.opts.onSent?.(batch.length, performance.now() - started);
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
