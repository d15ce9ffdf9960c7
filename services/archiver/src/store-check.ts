// The start-up check that S3 takes this archiver's writes: one PUT of a small
// object, with the configured encryption, where the manifests go. Without it,
// an archiver pointed at a wrong endpoint, a missing bucket or a role without
// write access would join the group, read, and retry its first upload with
// backoff forever. With it, the process exits at once with one line naming the
// endpoint, the bucket and the cause.
import { hostname } from 'node:os';
import { type NetmonConfig, S3ConnectionError, isUnreachable, rootCause, unreachableLine } from '@netmon/common';
import { S3UnavailableError } from './errors';
import type { ArchiveStore } from './store';

/** How long the probe may take, retries included, before S3 counts as unreachable. */
export const PROBE_TIMEOUT_MS = 10_000;

/**
 * The probe's one key per prefix: a folder of its own (not among the
 * manifests, which readers parse), whose "_" keeps Athena and Hive out of it.
 */
export function probeKey(prefix: string): string {
  return `${prefix}/_probe/archiver.json`;
}

/** Resolves once S3 stored the probe; rejects with an S3UnavailableError otherwise. */
export async function checkStoreWritable(store: ArchiveStore, config: NetmonConfig, timeoutMs = PROBE_TIMEOUT_MS): Promise<void> {
  const key = probeKey(config.s3.prefix);
  try {
    await store.probeWrite(key, JSON.stringify({ host: hostname(), pid: process.pid, at: new Date().toISOString() }), timeoutMs);
  } catch (err) {
    throw new S3UnavailableError(probeFailureLine(config, key, err), { cause: err });
  }
}

/** "netmon archiver: cannot reach S3 at …" (network), or "netmon archiver: S3 at … refused writing s3://bucket/key: NoSuchBucket: … (HTTP 404)". */
export function probeFailureLine(config: NetmonConfig, key: string, err: unknown): string {
  // TLS and protocol failures already say what is wrong and which setting to check.
  const connection = connectionError(err);
  const line = connection
    ? `netmon archiver: ${connection.message}`
    : isUnreachable(err)
      ? unreachableLine('archiver', 'S3', config, err)
      : refusedLine(config, key, err);
  return line.replace(/\s*\n\s*/g, ' ');
}

/** The S3ConnectionError in `err`'s cause chain, whose message names the endpoint, the cause and the fix. */
function connectionError(err: unknown): S3ConnectionError | undefined {
  for (let e = err; e instanceof Error; e = e.cause) if (e instanceof S3ConnectionError && /^S3 at /.test(e.message)) return e;
  return undefined;
}

function refusedLine(config: NetmonConfig, key: string, err: unknown): string {
  const where = config.s3.endpoint || `AWS (${config.s3.region})`;
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  const name = e.name && e.name !== 'Error' ? `${e.name}: ` : '';
  const status = e.$metadata?.httpStatusCode ? ` (HTTP ${e.$metadata.httpStatusCode})` : '';
  return `netmon archiver: S3 at ${where} refused writing s3://${config.s3.bucket}/${key}: ${name}${rootCause(err)}${status}`;
}
