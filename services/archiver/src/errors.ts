// Typed errors of the archiver. Fatal start-up errors end the process; failed
// S3 and Kafka calls are retried with backoff (partition.ts decides).
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

/** A query the local DuckDB engine could not run. */
export class QueryError extends ArchiverError {}

/** S3 refused, or could not be reached by, the start-up write probe: fatal. The message is one line naming the endpoint, the bucket and the cause. */
export class S3UnavailableError extends ArchiverError {}
