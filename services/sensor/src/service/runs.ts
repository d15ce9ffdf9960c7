// The unit the sensor queues, spools and sends: a run of encoded RawRecords
// lying back to back in one buffer. The stamper writes a kernel batch's
// socket records as a few runs, so a record costs no object of its own on
// the way to Kafka (one per record was most of the garbage, and kept V8's
// young generation at its largest); other records are runs of one.

/** `count` encoded records back to back in `bytes`. */
export interface RecordRun {
  bytes: Buffer;
  count: number;
}

/** Most records in one raw message (the enricher numbers records offset × 2^16 + index). */
export const MAX_RECORDS_PER_MESSAGE = 4096;
/** Largest raw message; a run is never larger. */
export const MAX_MESSAGE_BYTES = 256 * 1024;

/** A run of one record. */
export function runOf(record: Buffer): RecordRun {
  return { bytes: record, count: 1 };
}

/** Records in the runs. */
export function recordsIn(runs: readonly RecordRun[]): number {
  let n = 0;
  for (const r of runs) n += r.count;
  return n;
}

/** Below this, runs that do not lie back to back are copied into one message rather than sent apart. */
const COPY_BELOW = 64 * 1024;

/** Whether `b` starts where `a` ends, in the same memory. */
const follows = (a: Buffer, b: Buffer) => b.buffer === a.buffer && b.byteOffset === a.byteOffset + a.length;

/**
 * Groups runs, in order, into messages of back-to-back records within the
 * message limits. Runs lying back to back in memory (one slab) go out as a
 * view of it, not copied (a copy per message was most of the external memory
 * churn); where big runs do not, a new message starts. Small ones (single
 * records, a spool of them) are copied together: a message costs more than a
 * few records.
 */
export function packRecords(runs: readonly RecordRun[]): Buffer[] {
  const messages: Buffer[] = [];
  let parts: Buffer[] = [];
  let bytes = 0;
  let records = 0;
  const flush = () => {
    if (parts.length > 0) messages.push(parts.length === 1 ? parts[0]! : Buffer.concat(parts, bytes));
    parts = [];
    bytes = 0;
    records = 0;
  };
  for (const { bytes: b, count } of runs) {
    const last = parts.at(-1);
    const joins = last !== undefined && follows(last, b);
    if (bytes + b.length > MAX_MESSAGE_BYTES || records + count > MAX_RECORDS_PER_MESSAGE) flush();
    else if (last && !joins && (bytes >= COPY_BELOW || b.length >= COPY_BELOW)) flush();
    if (joins && parts.length > 0) parts[parts.length - 1] = Buffer.from(last.buffer, last.byteOffset, last.length + b.length);
    else parts.push(b);
    bytes += b.length;
    records += count;
  }
  flush();
  return messages;
}
