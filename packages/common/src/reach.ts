// What an interactive command says when it cannot reach Kafka or S3: one line
// naming the address, the cause and the fix, instead of a stack trace or the
// clients' retry logs. The services keep their JSON logs and retry policies.
import type { NetmonConfig } from './config';
import { describeError } from './errors';
import { withAdmin } from './rdkafka';
import { createS3Client } from './s3';

/** The innermost cause's message ("connect ECONNREFUSED 127.0.0.1:9092"). */
export function rootCause(err: unknown): string {
  let e = err as { message?: string; cause?: unknown };
  while (e.cause && typeof e.cause === 'object') e = e.cause as { message?: string; cause?: unknown };
  return e.message || describeError(err);
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'TimeoutError',
  'AbortError',
]);

/** The error (or one of its causes) is the network's, not the server's answer. */
export function isUnreachable(err: unknown): boolean {
  for (let e = err as { code?: unknown; name?: unknown; cause?: unknown } | undefined; e && typeof e === 'object'; e = e.cause as typeof e) {
    if (NETWORK_CODES.has(String(e.code)) || NETWORK_CODES.has(String(e.name))) return true;
  }
  return false;
}

export type Service = 'Kafka' | 'S3';

/** librdkafka's codes for a broker that answered but refused us: authentication, TLS. */
const REFUSED_CODES = new Set([-169, -181]);

function refusedByServer(err: unknown): boolean {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined; e && typeof e === 'object'; e = e.cause as typeof e) {
    if (REFUSED_CODES.has(Number(e.code))) return true;
  }
  return false;
}

/**
 * "netmon CMD: cannot reach Kafka at ADDR: CAUSE; is the broker running? For the local stack: ./bin/netmon.js stack up",
 * or, for a broker that answered but refused (credentials, certificates), the cause alone: its message names the setting.
 */
export function unreachableLine(command: string, service: Service, config: NetmonConfig, err: unknown): string {
  const address = service === 'Kafka' ? config.kafka.brokers.join(',') : config.s3.endpoint || `s3://${config.s3.bucket} (${config.s3.region})`;
  if (service === 'Kafka' && refusedByServer(err)) return `netmon ${command}: Kafka at ${address} refused the connection: ${rootCause(err)}`;
  const what = service === 'Kafka' ? 'the broker' : 'the S3 server';
  const local = config.source === '(defaults)' ? ' For the local stack: ./bin/netmon.js stack up' : '';
  return `netmon ${command}: cannot reach ${service} at ${address}: ${rootCause(err)}; is ${what} running?${local}`;
}

/** Resolves once Kafka answers a metadata request, rejects within `timeoutMs`. */
export async function checkKafka(config: NetmonConfig, timeoutMs = 3500): Promise<void> {
  await withAdmin(config.kafka, (admin) => admin.listTopics(timeoutMs));
}

/** Resolves once the bucket answers (HEAD), rejects within `timeoutMs`. */
export async function checkS3(config: NetmonConfig, timeoutMs = 3500): Promise<void> {
  const client = createS3Client(config.s3);
  try {
    // The SDK is loaded here, not at import: a sensor never reaches S3.
    const { HeadBucketCommand } = require('@aws-sdk/client-s3') as typeof import('@aws-sdk/client-s3');
    await client.send(new HeadBucketCommand({ Bucket: config.s3.bucket }), { abortSignal: AbortSignal.timeout(timeoutMs) });
  } finally {
    client.destroy();
  }
}
