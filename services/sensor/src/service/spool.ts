// A bounded on-disk FIFO of encoded records, for when Kafka is slow or down.
// Segment files `<n>.seg` hold length-prefixed frames, each a run of records
// (runs.ts); `<n>.pos` remembers how far the oldest segment was sent, so a
// restart neither loses nor resends. Appends are synchronous and small;
// nothing here waits on the network.
//
// A frame: u32 length, the record. A run of several records sets the
// length's top bit and a u32 count follows it (a frame of one record is as
// it always was, so spools of earlier versions read the same).
import {
  closeSync,
  existsSync,
  fstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';
import { MAX_MESSAGE_BYTES, type RecordRun } from './runs';

const RUN_FLAG = 0x80000000;
// Segment numbers start high so that prepend() can number older ones below.
const FIRST_SEGMENT = 1_000_000_000;

/** The frame header of a run. */
function frameHeader(run: RecordRun): Buffer {
  if (run.count === 1) {
    const h = Buffer.allocUnsafe(4);
    h.writeUInt32LE(run.bytes.length);
    return h;
  }
  const h = Buffer.allocUnsafe(8);
  h.writeUInt32LE((run.bytes.length | RUN_FLAG) >>> 0);
  h.writeUInt32LE(run.count, 4);
  return h;
}

const frameBytes = (run: RecordRun) => (run.count === 1 ? 4 : 8) + run.bytes.length;

/** The frame at `pos` of `data`: header size, bytes and records; undefined if torn. */
function readFrame(data: Buffer, pos: number): { header: number; length: number; count: number } | undefined {
  if (pos + 4 > data.length) return undefined;
  const word = data.readUInt32LE(pos);
  const run = (word & RUN_FLAG) !== 0;
  const header = run ? 8 : 4;
  const length = word & ~RUN_FLAG;
  if (pos + header + length > data.length) return undefined;
  return { header, length, count: run ? data.readUInt32LE(pos + 4) : 1 };
}

export interface SpoolBatch {
  runs: RecordRun[];
  /** Records in the runs. */
  records: number;
  /** Segment and position after the batch: pass to commit(). */
  segment: number;
  end: number;
}

export class Spool {
  private segments: number[];
  private writeFd: number | undefined;
  private writeSegment: number;
  private writeSize = 0;
  private totalBytes = 0;
  private readPos = 0;
  /** Records currently spooled (not yet committed as sent). */
  private count = 0;
  private readBuffer = Buffer.alloc(0);

  constructor(
    private readonly dir: string,
    private readonly maxBytes: number,
    private readonly segmentBytes = 4 << 20,
  ) {
    mkdirSync(dir, { recursive: true });
    this.segments = readdirSync(dir)
      .filter((f) => /^\d+\.seg$/.test(f))
      .map((f) => Number.parseInt(f, 10))
      .sort((a, b) => a - b);
    for (const s of this.segments) {
      const size = statSync(this.file(s, 'seg')).size;
      this.totalBytes += size;
      this.count += this.countFrames(s, s === this.segments[0] ? this.readPosition(s) : 0);
    }
    if (this.segments.length > 0) this.readPos = this.readPosition(this.segments[0]!);
    this.writeSegment = (this.segments.at(-1) ?? FIRST_SEGMENT) + 1;
  }

  get bytes(): number {
    return this.totalBytes;
  }

  get records(): number {
    return this.count;
  }

  get isEmpty(): boolean {
    return this.count === 0;
  }

  /** Appends in order; returns how many records did not fit and were dropped (whole runs). */
  append(runs: readonly RecordRun[]): number {
    let dropped = 0;
    for (const run of runs) {
      const frame = frameBytes(run);
      if (this.totalBytes + frame > this.maxBytes) {
        dropped += run.count;
        continue;
      }
      if (this.writeFd === undefined || this.writeSize + frame > this.segmentBytes) this.roll();
      writeSync(this.writeFd!, frameHeader(run));
      writeSync(this.writeFd!, run.bytes);
      this.writeSize += frame;
      this.totalBytes += frame;
      this.count += run.count;
    }
    return dropped;
  }

  /**
   * Puts runs before everything spooled (they are older: the publisher's
   * memory queue when Kafka stayed away through shutdown). Bounded like
   * append; returns the records dropped.
   */
  prepend(runs: readonly RecordRun[]): number {
    const kept: RecordRun[] = [];
    let bytes = this.totalBytes;
    let dropped = 0;
    for (const run of runs) {
      if (bytes + frameBytes(run) > this.maxBytes) {
        dropped += run.count;
        continue;
      }
      bytes += frameBytes(run);
      kept.push(run);
    }
    if (kept.length === 0) return dropped;
    const segment = (this.segments[0] ?? this.writeSegment) - 1;
    writeFileSync(this.file(segment, 'seg'), Buffer.concat(kept.flatMap((r) => [frameHeader(r), r.bytes])));
    this.segments.unshift(segment);
    this.readPos = 0;
    this.totalBytes = bytes;
    for (const run of kept) this.count += run.count;
    return dropped;
  }

  /**
   * The oldest runs, up to the limits (at least one run), without removing
   * them. Their bytes are valid until the next peek (one read buffer serves
   * them all: the publisher sends a batch before it peeks the next).
   */
  peek(maxRecords: number, maxBytes: number): SpoolBatch | undefined {
    const segment = this.segments[0];
    if (segment === undefined || this.count === 0) return undefined;
    // What the batch can hold and a whole frame past it, not the whole
    // segment; a longer first frame (a record larger than a message) whole.
    let { data, size } = this.read(segment, this.readPos, maxBytes + 8 + MAX_MESSAGE_BYTES);
    const first = data.length >= 8 ? 8 + (data.readUInt32LE(0) & ~RUN_FLAG) : 0;
    if (first > data.length && this.readPos + first <= size) ({ data, size } = this.read(segment, this.readPos, first));
    const runs: RecordRun[] = [];
    let pos = 0;
    let bytes = 0;
    let records = 0;
    for (let f = readFrame(data, pos); f && records < maxRecords; f = readFrame(data, pos)) {
      // a missing frame is the torn tail of a crash (or one longer than a message: never written)
      if (runs.length > 0 && (bytes + f.length > maxBytes || records + f.count > maxRecords)) break;
      runs.push({ bytes: data.subarray(pos + f.header, pos + f.header + f.length), count: f.count });
      pos += f.header + f.length;
      bytes += f.length;
      records += f.count;
    }
    if (runs.length === 0 && segment !== this.writeSegment) {
      // A finished segment fully sent (or with a torn tail): move on.
      this.dropSegment(segment, size);
      return this.peek(maxRecords, maxBytes);
    }
    return runs.length === 0 ? undefined : { runs, records, segment, end: this.readPos + pos };
  }

  /** Up to `length` bytes of a segment from `from`, and the segment's size. */
  private read(segment: number, from: number, length: number): { data: Buffer; size: number } {
    const fd = openSync(this.file(segment, 'seg'), 'r');
    try {
      const size = fstatSync(fd).size;
      const want = Math.max(0, Math.min(length, size - from));
      if (this.readBuffer.length < want) this.readBuffer = Buffer.allocUnsafeSlow(want);
      const data = this.readBuffer.subarray(0, want);
      let got = 0;
      while (got < data.length) {
        const n = readSync(fd, data, got, data.length - got, from + got);
        if (n === 0) break;
        got += n;
      }
      return { data: data.subarray(0, got), size };
    } finally {
      closeSync(fd);
    }
  }

  /** Marks a peeked batch as sent. */
  commit(batch: SpoolBatch): void {
    if (batch.segment !== this.segments[0]) throw new Error(`spool: commit of segment ${batch.segment}, oldest is ${this.segments[0]}`);
    this.count -= batch.records;
    const size = statSync(this.file(batch.segment, 'seg')).size;
    if (batch.end >= size && batch.segment !== this.writeSegment) {
      this.dropSegment(batch.segment, size);
    } else if (batch.end >= size && this.count === 0) {
      // The active segment is fully sent: start afresh rather than keep a position.
      this.closeWriter();
      this.dropSegment(batch.segment, size);
    } else {
      this.readPos = batch.end;
      writeFileSync(this.file(batch.segment, 'pos'), String(batch.end));
    }
  }

  close(): void {
    this.closeWriter();
  }

  private roll(): void {
    this.closeWriter();
    this.writeSegment = (this.segments.at(-1) ?? this.writeSegment - 1) + 1;
    this.writeFd = openSync(this.file(this.writeSegment, 'seg'), 'a');
    this.writeSize = 0;
    this.segments.push(this.writeSegment);
  }

  private closeWriter(): void {
    if (this.writeFd !== undefined) closeSync(this.writeFd);
    this.writeFd = undefined;
  }

  private dropSegment(segment: number, size: number): void {
    unlinkSync(this.file(segment, 'seg'));
    if (existsSync(this.file(segment, 'pos'))) unlinkSync(this.file(segment, 'pos'));
    this.segments.shift();
    this.totalBytes -= size;
    this.readPos = this.segments.length > 0 ? this.readPosition(this.segments[0]!) : 0;
  }

  private readPosition(segment: number): number {
    const pos = this.file(segment, 'pos');
    return existsSync(pos) ? Number(readFileSync(pos, 'utf8')) || 0 : 0;
  }

  /** Records in the whole frames of a segment from `from`. */
  private countFrames(segment: number, from: number): number {
    const data = readFileSync(this.file(segment, 'seg'));
    let n = 0;
    for (let pos = from, f = readFrame(data, pos); f; f = readFrame(data, pos)) {
      n += f.count;
      pos += f.header + f.length;
    }
    return n;
  }

  private file(segment: number, ext: 'seg' | 'pos'): string {
    return path.join(this.dir, `${String(segment).padStart(12, '0')}.${ext}`);
  }
}
