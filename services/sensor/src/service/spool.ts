// A bounded on-disk FIFO of encoded records, for when Kafka is slow or down.
// Segment files `<n>.seg` hold length-prefixed records; `<n>.pos` remembers
// how far the oldest segment was sent, so a restart neither loses nor resends.
// Appends are synchronous and small; nothing here waits on the network.
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';

const FRAME_HEADER = 4;
// Segment numbers start high so that prepend() can number older ones below.
const FIRST_SEGMENT = 1_000_000_000;

export interface SpoolBatch {
  records: Buffer[];
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
      this.count += this.countFrames(s, s === this.segments[0] ? this.readPosition(s) : 0, size);
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

  /** Appends in order; returns how many records did not fit and were dropped. */
  append(records: readonly Buffer[]): number {
    let dropped = 0;
    for (const record of records) {
      const frame = FRAME_HEADER + record.length;
      if (this.totalBytes + frame > this.maxBytes) {
        dropped++;
        continue;
      }
      if (this.writeFd === undefined || this.writeSize + frame > this.segmentBytes) this.roll();
      const header = Buffer.allocUnsafe(FRAME_HEADER);
      header.writeUInt32LE(record.length);
      writeSync(this.writeFd!, header);
      writeSync(this.writeFd!, record);
      this.writeSize += frame;
      this.totalBytes += frame;
      this.count++;
    }
    return dropped;
  }

  /**
   * Puts records before everything spooled (they are older: the publisher's
   * memory queue when Kafka stayed away through shutdown). Bounded like append.
   */
  prepend(records: readonly Buffer[]): number {
    const kept: Buffer[] = [];
    let bytes = this.totalBytes;
    for (const record of records) {
      if (bytes + FRAME_HEADER + record.length > this.maxBytes) continue;
      bytes += FRAME_HEADER + record.length;
      kept.push(record);
    }
    if (kept.length === 0) return records.length;
    const segment = (this.segments[0] ?? this.writeSegment) - 1;
    const frames = kept.flatMap((r) => {
      const header = Buffer.allocUnsafe(FRAME_HEADER);
      header.writeUInt32LE(r.length);
      return [header, r];
    });
    writeFileSync(this.file(segment, 'seg'), Buffer.concat(frames));
    this.segments.unshift(segment);
    this.readPos = 0;
    this.totalBytes = bytes;
    this.count += kept.length;
    return records.length - kept.length;
  }

  /** The oldest records, up to the limits, without removing them. */
  peek(maxRecords: number, maxBytes: number): SpoolBatch | undefined {
    const segment = this.segments[0];
    if (segment === undefined || this.count === 0) return undefined;
    const data = readFileSync(this.file(segment, 'seg'));
    const records: Buffer[] = [];
    let pos = this.readPos;
    let bytes = 0;
    while (pos + FRAME_HEADER <= data.length && records.length < maxRecords) {
      const length = data.readUInt32LE(pos);
      if (pos + FRAME_HEADER + length > data.length) break; // torn tail of a crash
      if (records.length > 0 && bytes + length > maxBytes) break;
      records.push(data.subarray(pos + FRAME_HEADER, pos + FRAME_HEADER + length));
      pos += FRAME_HEADER + length;
      bytes += length;
    }
    if (records.length === 0 && segment !== this.writeSegment) {
      // A finished segment fully sent (or with a torn tail): move on.
      this.dropSegment(segment, data.length);
      return this.peek(maxRecords, maxBytes);
    }
    return records.length === 0 ? undefined : { records, segment, end: pos };
  }

  /** Marks a peeked batch as sent. */
  commit(batch: SpoolBatch): void {
    if (batch.segment !== this.segments[0]) throw new Error(`spool: commit of segment ${batch.segment}, oldest is ${this.segments[0]}`);
    this.count -= batch.records.length;
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

  private countFrames(segment: number, from: number, size: number): number {
    const data = readFileSync(this.file(segment, 'seg'));
    let n = 0;
    for (let pos = from; pos + FRAME_HEADER <= size; n++) {
      const next = pos + FRAME_HEADER + data.readUInt32LE(pos);
      if (next > size) break;
      pos = next;
    }
    return n;
  }

  private file(segment: number, ext: 'seg' | 'pos'): string {
    return path.join(this.dir, `${String(segment).padStart(12, '0')}.${ext}`);
  }
}
