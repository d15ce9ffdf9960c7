// The open flush of one partition: records appended in offset order, split by
// UTC hour into groups. Sealing yields one object body per hour group, in the
// format the seal asks for (JSON or Parquet: a replay writes the format of the
// manifest it replays, which may not be this member's). Pure of Kafka and S3.
//
// How a group holds its lines until then:
// - JSON mode: streamed through its own gzip compressor, so that memory holds
//   compressed bytes; the JSON object is that gzip stream.
// - Parquet mode: appended to a spool file (SpoolDir), raw NDJSON, so that
//   neither memory nor CPU goes into compressing what DuckDB reads once at the
//   seal (measured: gzip at level 1 and back costs 6.9 µs per event, as much
//   as the whole conversion from a spool file).
// Either can be turned into the other format at the seal: gzip bodies are
// written to a scratch file for DuckDB; spool files are gzip'd.
import { randomBytes } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { type FileHandle, mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GzipWriter } from './gzip';
import { type ArchiveFormat, type HourPartition, dataKey } from './layout';
import type { ParquetWriter } from './parquet';

/** Lines are handed to the compressor (or the spool file) in chunks of about this size (fewer, larger writes: less stream overhead per line). */
const CHUNK_BYTES = 1 << 20;
/** Spool bytes handed to the file system and not yet written above which a group is congested. */
const SPOOL_HIGH_WATER = 8 << 20;

/** What a group holds once its input is ended: gzip NDJSON in memory, or a plain NDJSON spool file. */
type Held = { gzip: Buffer } | { file: string };

/** The lines of one hour group, gathered into chunks handed on to `emit` (a compressor, a file). */
abstract class LineChunks {
  records = 0;
  rawBytes = 0;
  private chunk = Buffer.allocUnsafe(CHUNK_BYTES);
  private used = 0;

  /** Takes a full (or the last) chunk; it is the callee's from then on. */
  protected abstract emit(chunk: Buffer): void;

  /** Appends src[start..end) and a newline; returns the bytes added. */
  pushBytes(src: Buffer, start: number, end: number): number {
    const len = end - start;
    // Written in place (roomFor) unless elsewhere.
    if (src !== this.chunk || start !== this.used) {
      this.makeRoom(len + 1);
      src.copy(this.chunk, this.used, start, end);
    }
    return this.commitInPlace(len);
  }

  /** Appends one JSON line (without its newline); returns the bytes added. */
  pushLine(line: string): number {
    const bytes = Buffer.from(line, 'utf8');
    return this.pushBytes(bytes, 0, bytes.length);
  }

  /**
   * The chunk with room for `max` bytes and a newline at `freeAt`: a line
   * written there by the caller is appended by pushBytes without a copy.
   */
  roomFor(max: number): Buffer {
    this.makeRoom(max + 1);
    return this.chunk;
  }

  /** Where roomFor's space starts. */
  get freeAt(): number {
    return this.used;
  }

  private makeRoom(bytes: number): void {
    if (this.used + bytes <= this.chunk.length) return;
    this.emitPending();
    if (bytes > this.chunk.length) this.chunk = Buffer.allocUnsafe(bytes);
  }

  /** The `len` bytes at `used` are a line: ends it with a newline. */
  private commitInPlace(len: number): number {
    this.used += len;
    this.chunk[this.used++] = 0x0a;
    this.records++;
    this.rawBytes += len + 1;
    return len + 1;
  }

  protected emitPending(): void {
    if (this.used === 0) return;
    const chunk = this.chunk.subarray(0, this.used);
    this.chunk = Buffer.allocUnsafe(CHUNK_BYTES);
    this.used = 0;
    this.emit(chunk);
  }
}

/** One hour group of a flush, JSON mode: the records of one (dt, hour), compressed as they come. */
class GzipGroup extends LineChunks {
  private readonly gzip: GzipWriter;

  constructor(
    readonly part: HourPartition,
    readonly firstOffset: number,
    level: number,
  ) {
    super();
    this.gzip = new GzipWriter(level);
  }

  get compressedBytes(): number {
    return this.gzip.compressedBytes;
  }

  protected emit(chunk: Buffer): void {
    this.gzip.write(chunk);
  }

  /** Whether the compressor has more queued input than its high-water mark. */
  get congested(): boolean {
    return this.gzip.congested;
  }

  /** Resolves once the compressor wants more input, or is ended or destroyed (sealed or discarded meanwhile). */
  drained(): Promise<void> {
    return this.gzip.drained();
  }

  async finish(): Promise<Held> {
    this.emitPending();
    return { gzip: await this.gzip.end() };
  }

  destroy(): void {
    this.gzip.destroy();
  }
}

/**
 * The folder of one archiver process's spool and scratch files:
 * <root>/netmon-archiver-<pid>-<random>/. Folders of processes that are gone
 * (a kill -9 leaves its folder behind) are removed when the next one starts.
 */
export class SpoolDir {
  private constructor(readonly dir: string) {}

  static async create(root: string = tmpdir()): Promise<SpoolDir> {
    mkdirSync(root, { recursive: true });
    for (const name of readdirSync(root)) {
      const m = /^netmon-archiver-(\d+)-/.exec(name);
      if (!m || Number(m[1]) === process.pid || alive(Number(m[1]))) continue;
      rmSync(path.join(root, name), { recursive: true, force: true });
    }
    return new SpoolDir(await mkdtemp(path.join(root, `netmon-archiver-${process.pid}-`)));
  }

  /** A new file name in the folder. */
  file(suffix: string): string {
    return path.join(this.dir, `${randomBytes(8).toString('hex')}${suffix}`);
  }

  remove(): void {
    if (existsSync(this.dir)) rmSync(this.dir, { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** One hour group of a flush, Parquet mode: its lines appended to a spool file, written asynchronously. */
class SpoolGroup extends LineChunks {
  private readonly handle: Promise<FileHandle>;
  private writing: Promise<void> = Promise.resolve();
  /** Bytes handed to writes that have not completed. */
  private queued = 0;
  private error: unknown;
  private destroyed = false;
  private waiters: (() => void)[] = [];

  constructor(
    readonly part: HourPartition,
    readonly firstOffset: number,
    readonly file: string,
  ) {
    super();
    this.handle = open(file, 'wx');
    this.handle.catch((err: unknown) => {
      this.error ??= err;
    });
  }

  protected emit(buf: Buffer): void {
    this.queued += buf.length;
    this.writing = this.writing.then(async () => {
      try {
        if (this.error === undefined && !this.destroyed) {
          const h = await this.handle;
          for (let off = 0; off < buf.length; ) off += (await h.write(buf, off, buf.length - off)).bytesWritten;
        }
      } catch (err) {
        this.error ??= err;
      } finally {
        this.queued -= buf.length;
        if (this.queued <= SPOOL_HIGH_WATER) this.wake();
      }
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  get congested(): boolean {
    return this.queued > SPOOL_HIGH_WATER && !this.destroyed;
  }

  drained(): Promise<void> {
    if (!this.congested) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  async finish(): Promise<Held> {
    this.emitPending();
    await this.writing;
    const h = await this.handle;
    await h.close();
    if (this.error !== undefined) throw this.error;
    return { file: this.file };
  }

  destroy(): void {
    this.destroyed = true;
    this.wake();
    void this.writing
      .then(() => this.handle)
      .then((h) => h.close())
      .catch(() => undefined)
      .then(() => rm(this.file, { force: true }))
      .catch(() => undefined);
  }
}

type GroupWriter = GzipGroup | SpoolGroup;

/** A spool file gzip'd into memory (a Parquet-mode flush that a JSON manifest says to write as JSON): the same bytes as a JSON-mode writer's. */
async function gzipFile(file: string, level: number): Promise<Buffer> {
  const gzip = new GzipWriter(level);
  try {
    for await (const chunk of createReadStream(file, { highWaterMark: CHUNK_BYTES })) {
      gzip.write(chunk as Buffer);
      await gzip.drained();
    }
    return await gzip.end();
  } catch (err) {
    gzip.destroy();
    throw err;
  }
}

/** Where the groups of a flush hold their lines, and what turns them into Parquet. */
export interface FlushStorage {
  /** Set: the groups spool raw NDJSON to files there (Parquet mode). Unset: gzip in memory (JSON mode). */
  spool?: SpoolDir;
  /** Writes Parquet bodies (needed to seal as Parquet). */
  parquet?: ParquetWriter;
}

export interface ArchiveRecord {
  offset: number;
  /** The NetworkEvent as one JSON line, without the newline: a string, or bytes[bytesStart..bytesEnd) (bytesStart default 0). */
  line?: string;
  bytes?: Buffer;
  bytesStart?: number;
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
  /** The group of the last record (most records go where the one before went). */
  private lastGroup?: GroupWriter;

  constructor(
    readonly prefix: string,
    readonly topic: string,
    readonly partition: number,
    readonly firstOffset: number,
    private readonly gzipLevel = 6,
    now = Date.now(),
    private readonly storage: FlushStorage = {},
  ) {
    this.lastOffset = firstOffset - 1;
    this.nextOffset = firstOffset;
    this.lastAppendAt = now;
    this.createdAt = now;
  }

  append(rec: ArchiveRecord, now = Date.now()): void {
    if (rec.offset <= this.lastOffset) throw new RangeError(`offset ${rec.offset} after ${this.lastOffset}: records must come in offset order`);
    const group = this.groupOf(rec);
    const bytes = rec.bytes ? group.pushBytes(rec.bytes, rec.bytesStart ?? 0, rec.bytesEnd ?? rec.bytes.length) : group.pushLine(rec.line ?? '');
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

  private groupOf(rec: ArchiveRecord): GroupWriter {
    const last = this.lastGroup;
    // The decoder hands the same HourPartition object while the hour repeats.
    if (last && (last.part === rec.part || (last.part.dt === rec.part.dt && last.part.hour === rec.part.hour))) return last;
    const id = `${rec.part.dt}/${rec.part.hour}`;
    let group = this.groups.get(id);
    if (!group) {
      const spool = this.storage.spool;
      group = spool ? new SpoolGroup(rec.part, rec.offset, spool.file('.json')) : new GzipGroup(rec.part, rec.offset, this.gzipLevel);
      this.groups.set(id, group);
    }
    this.lastGroup = group;
    return group;
  }

  /**
   * Where the next line probably goes (the chunk of the last one's group),
   * with room for `max` bytes at `freeAt`: a line written there and appended
   * from there is not copied. Undefined before the first record.
   */
  roomFor(max: number): Buffer | undefined {
    return this.lastGroup?.roomFor(max);
  }

  /** Where roomFor's space starts. */
  get freeAt(): number {
    return this.lastGroup?.freeAt ?? 0;
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

  /**
   * Ends every group; one object per hour group in `format`, in key order.
   * Removes its spool files, whatever the outcome.
   */
  async seal(format: ArchiveFormat = 'json'): Promise<SealedBodies> {
    const groups = [...this.groups.values()];
    const held = await Promise.allSettled(groups.map((g) => g.finish()));
    try {
      const bodies: Buffer[] = [];
      // One group after the other: a Parquet conversion takes a core and a row group's memory.
      for (const [i, h] of held.entries()) {
        if (h.status === 'rejected') throw h.reason;
        bodies.push(await this.body(h.value, format, groups[i]!.records));
      }
      const objects = groups.map((g, i) => ({
        key: dataKey(this.prefix, this.topic, this.partition, g.part, g.firstOffset, format),
        part: g.part,
        firstOffset: g.firstOffset,
        records: g.records,
        rawBytes: g.rawBytes,
        body: bodies[i]!,
      }));
      objects.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      return { objects };
    } finally {
      await Promise.all(held.map((h) => (h.status === 'fulfilled' && 'file' in h.value ? rm(h.value.file, { force: true }) : undefined)));
    }
  }

  private body(held: Held, format: ArchiveFormat, records: number): Promise<Buffer> {
    if (format === 'json') return 'gzip' in held ? Promise.resolve(held.gzip) : gzipFile(held.file, this.gzipLevel);
    const parquet = this.storage.parquet;
    if (!parquet) return Promise.reject(new Error('a Parquet flush needs a Parquet writer'));
    return 'gzip' in held ? parquet.fromGzip(held.gzip, records) : parquet.fromNdjson(held.file, 'uncompressed', records);
  }

  /** Frees the compressors of a flush that is thrown away. */
  discard(): void {
    for (const g of this.groups.values()) g.destroy();
    this.groups.clear();
    this.lastGroup = undefined;
  }
}
