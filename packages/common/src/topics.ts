// Kafka topic names: the rules the broker enforces, checked before it does.

const LEGAL = /^[a-zA-Z0-9._-]+$/;

/** Returns why a topic name is illegal, or undefined when it is fine. */
export function validateTopicName(name: string): string | undefined {
  if (name.length === 0) return 'empty';
  if (name === '.' || name === '..') return `"${name}" is reserved`;
  if (name.length > 249) return `${name.length} characters, at most 249`;
  if (!LEGAL.test(name)) return 'only letters, digits, ".", "_" and "-"';
  return undefined;
}

/** Resolves `raw|events|dlq` (or a full topic name) to the configured topic. */
export function resolveTopic(topics: { raw: string; events: string; dlq: string }, nameOrAlias: string): string {
  if (nameOrAlias === 'raw' || nameOrAlias === 'events' || nameOrAlias === 'dlq') return topics[nameOrAlias];
  const problem = validateTopicName(nameOrAlias);
  if (problem) throw new Error(`topic "${nameOrAlias}": ${problem}`);
  return nameOrAlias;
}

/** Headers of a dead-letter record; its value is the original bytes, untouched. */
export const DLQ_HEADERS = {
  reason: 'netmon-dlq-reason',
  detail: 'netmon-dlq-detail',
  sourceTopic: 'netmon-dlq-source-topic',
  sourcePartition: 'netmon-dlq-source-partition',
  sourceOffset: 'netmon-dlq-source-offset',
  /** Set when the value was cut to fit the DLQ: the original's length in bytes. */
  originalBytes: 'netmon-dlq-original-bytes',
} as const;

/**
 * The most of an original record a dead letter carries: under the broker's
 * default message limit (1 MiB) with room for the headers, so a record as
 * large as its source topic allows still becomes a dead letter instead of a
 * write the broker refuses forever (and a partition stuck behind it).
 */
export const DLQ_MAX_VALUE_BYTES = 900 * 1024;

/** A dead letter's value: the original, or its first DLQ_MAX_VALUE_BYTES and the header saying how long it was. */
export function deadLetterValue(value: Buffer | null): { value: Buffer | null; headers: Record<string, string> } {
  if (value === null || value.length <= DLQ_MAX_VALUE_BYTES) return { value, headers: {} };
  return { value: value.subarray(0, DLQ_MAX_VALUE_BYTES), headers: { [DLQ_HEADERS.originalBytes]: String(value.length) } };
}
