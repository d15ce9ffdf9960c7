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
} as const;
