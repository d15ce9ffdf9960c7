// Memory for encoded records: slabs of a few thousand records each, reused
// once the publisher has let go of every run of records in them.
//
// Why: a buffer per record (or slabs left to the garbage collector) is
// external memory V8 only frees at a full GC, which it starts only after about
// 64 MB of it has piled up: that was most of the sensor's RSS under load.
// Recycled slabs keep it to what is queued.
//
// The contract: the writer asks for room (reserve), writes at `pos` and
// moves it on, and lends the views it hands out (lend); every lent view is
// given back to release() exactly once, when nothing will read it again.
// Views of other memory given to release() are ignored.
import type { RecordRun } from './runs';

interface Slab {
  buf: Buffer;
  /** Views lent and not yet released. */
  live: number;
}

export class SlabPool {
  /** Where the next write goes in the current slab. */
  pos = 0;
  private readonly byMemory = new Map<ArrayBufferLike, Slab>();
  private readonly free: Slab[] = [];
  private current: Slab;

  constructor(
    private readonly slabBytes: number,
    /** Empty slabs kept for reuse; more are left to the garbage collector. */
    private readonly keepFree = 4,
  ) {
    this.current = this.newSlab();
  }

  /** Slabs in use or kept for reuse. */
  get slabs(): number {
    return this.byMemory.size;
  }

  /** Whether `bytes` fit at `pos` in the current slab. */
  fits(bytes: number): boolean {
    return this.pos + bytes <= this.slabBytes;
  }

  /**
   * The slab to write `bytes` at `pos` in: the current one, or (when they do
   * not fit) another, `pos` back at 0. Views of the current slab not lent yet
   * must be lent before a reserve that does not fit.
   */
  reserve(bytes: number): Buffer {
    if (!this.fits(bytes)) {
      if (this.current.live > 0) this.current = this.free.pop() ?? this.newSlab();
      this.pos = 0;
    }
    return this.current.buf;
  }

  /** A view of buf[start, end) (a slab of this pool), counted until released. */
  lend(buf: Buffer, start: number, end: number): Buffer {
    this.byMemory.get(buf.buffer)!.live++;
    return buf.subarray(start, end);
  }

  /** Gives views back; a slab no view refers to any more is reused. */
  release(views: readonly RecordRun[]): void {
    for (const { bytes } of views) {
      const slab = this.byMemory.get(bytes.buffer);
      if (!slab) continue;
      if (--slab.live < 0) throw new Error('SlabPool: a view was released twice');
      if (slab.live === 0 && slab !== this.current) {
        if (this.free.length < this.keepFree) this.free.push(slab);
        else this.byMemory.delete(bytes.buffer);
      }
    }
  }

  private newSlab(): Slab {
    const slab = { buf: Buffer.allocUnsafeSlow(this.slabBytes), live: 0 };
    this.byMemory.set(slab.buf.buffer, slab);
    return slab;
  }
}
