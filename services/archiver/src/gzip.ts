// One gzip member, compressed as it is written: the archive's JSON objects.
// The bytes are cut into pieces of PIECE_BYTES whatever the writes were, and
// each piece is deflated on the libuv pool by the archiver's addon
// (native/src/gzip_member.cc: libdeflate, its pieces joined into one DEFLATE
// stream). So the same bytes always give the same object, however they were
// handed over: a replay writes what the first writer wrote.
//
// Measured on the archiver benchmark's NDJSON (130 MB): 355-362 ms of CPU
// at level 6 and 5,755,927 bytes, against zlib's (Node's) 466-487 ms and
// 5,852,985 bytes.
import path from 'node:path';

/** Raw bytes per piece: each piece starts with an empty 32 KiB window, so larger pieces compress a little better. */
export const PIECE_BYTES = 1 << 20;

interface NativeMember {
  deflate(piece: Buffer, cb: (err: Error | null, out: Buffer) => void): void;
  finish(): Buffer;
}
// dist/src -> services/archiver/native/build/Release
const addon = require(path.join(__dirname, '../../native/build/Release/gzip_member.node')) as {
  GzipMember: { new (level: number): NativeMember; readonly header: Buffer };
};

export class GzipWriter {
  /** Compressed bytes so far (header included). */
  compressedBytes: number = addon.GzipMember.header.length;
  private readonly member: NativeMember;
  private readonly out: Buffer[] = [addon.GzipMember.header];
  private piece = Buffer.allocUnsafe(PIECE_BYTES);
  private used = 0;
  /** Full pieces waiting for the compressor, which takes one at a time (the CRC runs on in order). */
  private readonly queue: Buffer[] = [];
  private queuedBytes = 0;
  private busy = false;
  private error: Error | undefined;
  private destroyed = false;
  private waiters: (() => void)[] = [];

  /**
   * @param level 1..12 (libdeflate's levels; 1..9 as zlib's in spirit)
   * @param highWater queued raw bytes above which `congested` is true: a few
   *   pieces, so that the thread pool compresses while the main thread
   *   decodes the next ones (with a single 16 KiB chunk queued, zlib's stream
   *   default, every chunk stopped the partition's reading until it was
   *   compressed)
   */
  constructor(
    level: number,
    private readonly highWater = 4 * PIECE_BYTES,
  ) {
    this.member = new addon.GzipMember(level);
  }

  /** Appends bytes (copied: the caller may reuse `chunk`). */
  write(chunk: Buffer): void {
    if (this.destroyed) return;
    for (let at = 0; at < chunk.length; ) {
      const n = Math.min(chunk.length - at, PIECE_BYTES - this.used);
      chunk.copy(this.piece, this.used, at, at + n);
      this.used += n;
      at += n;
      if (this.used === PIECE_BYTES) this.enqueuePiece();
    }
  }

  /** Whether more raw bytes wait for the compressor than the high-water mark. */
  get congested(): boolean {
    return this.queuedBytes > this.highWater && !this.destroyed && this.error === undefined;
  }

  /** Resolves once not congested (or failed, or destroyed). */
  drained(): Promise<void> {
    if (!this.congested) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** The whole member, once every piece is compressed. */
  async end(): Promise<Buffer> {
    if (this.used > 0) this.enqueuePiece();
    while (this.busy || this.queue.length > 0) {
      if (this.error) break;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    if (this.error) throw this.error;
    if (this.destroyed) throw new Error('gzip: destroyed');
    const tail = this.member.finish();
    this.out.push(tail);
    this.compressedBytes += tail.length;
    return Buffer.concat(this.out, this.compressedBytes);
  }

  destroy(): void {
    this.destroyed = true;
    this.queue.length = 0;
    this.queuedBytes = 0;
    this.wake();
  }

  private enqueuePiece(): void {
    const piece = this.used === PIECE_BYTES ? this.piece : this.piece.subarray(0, this.used);
    this.piece = Buffer.allocUnsafe(PIECE_BYTES);
    this.used = 0;
    this.queue.push(piece);
    this.queuedBytes += piece.length;
    this.next();
  }

  private next(): void {
    if (this.busy || this.destroyed || this.error) return;
    const piece = this.queue.shift();
    if (!piece) return;
    this.busy = true;
    this.member.deflate(piece, (err, out) => {
      this.busy = false;
      if (!this.destroyed) this.queuedBytes -= piece.length;
      if (err) this.error = err;
      else if (!this.destroyed) {
        this.out.push(out);
        this.compressedBytes += out.length;
      }
      this.next();
      if (!this.congested || !this.busy) this.wake();
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}
