// When an open flush is sealed. Pure: takes the flush's figures, the limits,
// the wall clock and what S3 says about this flush's first offset.
//
// Boundaries need not be reproducible: a replay finds the manifest of the
// flush that a previous run (or a zombie) already started at the same first
// offset, and is forced to end exactly where that one ended (`forcedEnd`).
// So size, record-time span and wall-clock idleness can all cut freely.

export interface FlushLimits {
  records: number;
  /** Uncompressed NDJSON bytes. */
  bytes: number;
  /** Record-time span: newest event time minus the first record's. */
  spanMs: number;
  /** Wall-clock time with no new record for the partition. */
  idleMs: number;
}

export interface FlushFigures {
  records: number;
  rawBytes: number;
  lastOffset: number;
  firstTimeMs: number;
  maxTimeMs: number;
  lastAppendAt: number;
}

/**
 * What S3 says about the flush starting at this first offset:
 * undefined: not known yet (lookup in flight); null: no manifest, cut freely;
 * a number: a manifest exists and ends at this offset, cut exactly there.
 */
export type Alignment = undefined | null | number;

export type SealReason = 'records' | 'bytes' | 'span' | 'idle' | 'aligned' | 'shutdown';

export function sealReason(f: FlushFigures, limits: FlushLimits, alignment: Alignment, now: number): SealReason | undefined {
  if (f.records === 0 || alignment === undefined) return undefined;
  if (alignment !== null) return f.lastOffset >= alignment ? 'aligned' : undefined;
  if (f.records >= limits.records) return 'records';
  if (f.rawBytes >= limits.bytes) return 'bytes';
  if (f.maxTimeMs - f.firstTimeMs >= limits.spanMs) return 'span';
  if (now - f.lastAppendAt >= limits.idleMs) return 'idle';
  return undefined;
}

/**
 * Whether the open flush is so far past its limits that the partition must
 * stop fetching: the alignment lookup cannot reach S3, or the flush waits to
 * reach a manifest's end. Twice the limits, so that a normal seal never pauses.
 */
export function overHardLimit(f: FlushFigures, limits: FlushLimits): boolean {
  return f.records >= 2 * limits.records || f.rawBytes >= 2 * limits.bytes;
}

/** Exponential backoff with full jitter, capped: attempt 0, 1, 2… */
export function backoffMs(attempt: number, baseMs = 200, capMs = 30_000, random = Math.random): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
