// The open flush of one partition: records appended in offset order, split by
// UTC hour into groups, each group streamed through its own gzip compressor so
// that memory holds compressed bytes. Sealing ends the compressors and yields
// one object body per hour group. Pure of Kafka and S3.
import { constants, createGzip, type Gzip } from 'node:zlib';
import { type HourPartition, dataKey } from './layout';

/** Lines are handed to the compressor in chunks of about this size. */
const CHUNK_BYTES = 256 << 10;

/** One hour group of a flush: the records of one (dt, hour), compressed as they come. */
class GroupWriter {
  records = 0;
  rawBytes = 0;
  compressedBytes = 0;
  private chunk = Buffer.allocUnsafe(CHUNK_BYTES);
  private used = 0;
  private readonly out: Buffer[] = [];
  private readonly gzip: Gzip;
  private readonly done: Promise<void>;

  constructor(
    readonly part: HourPartition,
    readonly firstOffset: number,
    level: number,
  ) {
    this.gzip = createGzip({ level, memLevel: 9, chunkSize: 64 << 10 });
    this.gzip.on('data', (chunk: Buffer) => {
      this.out.push(chunk);
      this.compressedBytes += chunk.length;
    });
    this.done = new Promise((resolve, reject) => {
      this.gzip.once('end', resolve);
      this.gzip.once('error', reject);
    });
    // Keep an early failure from being unhandled before finish() awaits it.
    this.done.catch(() => undefined);
  }

  /** Appends src[0..end) and a newline; returns the bytes added. */
  pushBytes(src: Buffer, end: number): number {
    if (this.used + end + 1 > this.chunk.length) {
      this.writePending();
      if (end + 1 > this.chunk.length) this.chunk = Buffer.allocUnsafe(end + 1);
    }
    this.used += src.copy(this.chunk, this.used, 0, end);
    this.chunk[this.used++] = 0x0a;
    this.records++;
    this.rawBytes += end + 1;
    return end + 1;
  }

  /** Appends one JSON line (without its newline); returns the bytes added. */
  pushLine(line: string): number {
    const bytes = Buffer.from(line, 'utf8');
    return this.pushBytes(bytes, bytes.length);
  }

  private writePending(): void {
    if (this.used === 0) return;
    this.gzip.write(this.chunk.subarray(0, this.used));
    this.chunk = Buffer.allocUnsafe(CHUNK_BYTES);
    this.used = 0;
  }

  /** Whether the compressor has more queued input than its high-water mark. */
  get congested(): boolean {
    return this.gzip.writableNeedDrain;
  }

  /** Resolves once the compressor wants more input, or is ended or destroyed (sealed or discarded meanwhile). */
  drained(): Promise<void> {
    const gz = this.gzip;
    if (!gz.writableNeedDrain || gz.writableEnded || gz.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        for (const e of ['drain', 'finish', 'close', 'error']) gz.off(e, done);
        resolve();
      };
      for (const e of ['drain', 'finish', 'close', 'error']) gz.once(e, done);
    });
  }

  async finish(): Promise<Buffer> {
    this.writePending();
    this.gzip.end();
    await this.done;
    return Buffer.concat(this.out, this.compressedBytes);
  }

  destroy(): void {
    this.gzip.destroy();
  }
}

export interface ArchiveRecord {
  offset: number;
  /** The NetworkEvent as one JSON line, without the newline: a string, or bytes[0..bytesEnd). */
  line?: string;
  bytes?: Buffer;
  bytesEnd?: number;
  part: HourPartition;
  /** Event time, ms since the epoch. */
  timeMs: number;
}

export interface ObjectBody {
  key: string;
  part: HourPartition;
  firstOffset: number;
  records: number;
  rawBytes: number;
  body: Buffer;
}

export interface SealedBodies {
  objects: ObjectBody[];
}

/** The open (not yet sealed) flush of one partition. */
export class FlushBuilder {
  lastOffset: number;
  /** Offset to commit once this flush is in S3: after its last record, or past trailing control records. */
  nextOffset: number;
  records = 0;
  rawBytes = 0;
  firstTimeMs = Number.NaN;
  maxTimeMs = Number.NaN;
  /** Wall-clock ms of the last append (idle detection). */
  lastAppendAt: number;
  readonly createdAt: number;
  private readonly groups = new Map<string, GroupWriter>();

  constructor(
    readonly prefix: string,
    readonly topic: string,
    readonly partition: number,
    readonly firstOffset: number,
    private readonly gzipLevel: number = constants.Z_DEFAULT_COMPRESSION,
    now = Date.now(),
  ) {
    this.lastOffset = firstOffset - 1;
    this.nextOffset = firstOffset;
    this.lastAppendAt = now;
    this.createdAt = now;
  }

  append(rec: ArchiveRecord, now = Date.now()): void {
    if (rec.offset <= this.lastOffset) throw new RangeError(`offset ${rec.offset} after ${this.lastOffset}: records must come in offset order`);
    const id = `${rec.part.dt}/${rec.part.hour}`;
    let group = this.groups.get(id);
    if (!group) {
      group = new GroupWriter(rec.part, rec.offset, this.gzipLevel);
      this.groups.set(id, group);
    }
    const bytes = rec.bytes ? group.pushBytes(rec.bytes, rec.bytesEnd ?? rec.bytes.length) : group.pushLine(rec.line ?? '');
    this.records++;
    this.rawBytes += bytes;
    this.lastOffset = rec.offset;
    this.nextOffset = rec.offset + 1;
    if (this.records === 1) this.firstTimeMs = rec.timeMs;
    // Clamp to the wall clock: a host whose clock runs ahead must not end flushes early.
    const t = Math.min(rec.timeMs, now);
    if (!(t <= this.maxTimeMs)) this.maxTimeMs = t;
    this.lastAppendAt = now;
  }

  /** Marks the records up to `offset` (control records of a transaction) as covered too. */
  coverThrough(offset: number): void {
    if (offset + 1 > this.nextOffset) this.nextOffset = offset + 1;
  }

  get groupCount(): number {
    return this.groups.size;
  }

  get congested(): boolean {
    for (const g of this.groups.values()) if (g.congested) return true;
    return false;
  }

  async drained(): Promise<void> {
    for (const g of this.groups.values()) await g.drained();
  }

  /** Ends every compressor; one object per hour group, in key order. */
  async seal(): Promise<SealedBodies> {
    const groups = [...this.groups.values()];
    const bodies = await Promise.all(groups.map((g) => g.finish()));
    const objects = groups.map((g, i) => ({
      key: dataKey(this.prefix, this.topic, this.partition, g.part, g.firstOffset),
      part: g.part,
      firstOffset: g.firstOffset,
      records: g.records,
      rawBytes: g.rawBytes,
      body: bodies[i]!,
    }));
    objects.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return { objects };
  }

  /** Frees the compressors of a flush that is thrown away. */
  discard(): void {
    for (const g of this.groups.values()) g.destroy();
    this.groups.clear();
  }
}
