// Typed errors of the archiver. Fatal start-up errors end the process; flush
// errors are retried with backoff until they succeed or the flush is abandoned.
import { NetmonError } from '@netmon/common';

export class ArchiverError extends NetmonError {}

/** An S3 call failed; `op` and `key` say which. Retried. */
export class StoreError extends ArchiverError {
  constructor(
    readonly op: string,
    readonly key: string,
    options?: { cause?: unknown },
  ) {
    super(`S3 ${op} ${key} failed`, options);
  }
}

/** The flush no longer belongs to this consumer (rebalance, realignment or shutdown). */
export class FlushAbandoned extends ArchiverError {}

/** An existing manifest names another range than the flush at hand: re-read from its first offset. */
export class ManifestMismatch extends ArchiverError {
  constructor(
    readonly key: string,
    readonly existing: { firstOffset: number; lastOffset: number },
    readonly ours: { firstOffset: number; lastOffset: number },
  ) {
    super(`manifest ${key} covers ${existing.firstOffset}..${existing.lastOffset}, this flush ${ours.firstOffset}..${ours.lastOffset}`);
  }
}

/** A query the local DuckDB engine could not run. */
export class QueryError extends ArchiverError {}
