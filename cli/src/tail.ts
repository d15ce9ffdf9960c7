// `netmon tail`: any Netmon topic decoded to JSON lines on stdout, one per record.
// events lines are the spec's NetworkEvent JSON, so `netmon tail --topic events`
// is also the simplest custom consumer.
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import {
  DLQ_HEADERS,
  UsageError,
  numberFlag,
  parseFlags,
  stringFlag,
  DecodeError,
  NativeConsumer,
  createLogger,
  describeError,
  formatAddress,
  loadConfig,
  networkEventCodec,
  rawRecordCodec,
  resolveTopic,
  unreachableLine,
} from '@netmon/common';

const USAGE = `Usage: netmon tail --topic raw|events|dlq|NAME [options]

Decodes the records of a Netmon topic to JSON lines on stdout.

Options:
  --topic T           raw, events, dlq (the configured names) or a topic name
  --from-beginning    start at the oldest record instead of new ones
  --max N             exit after N records
  --idle-exit S       exit after S seconds without a record
  --config FILE       netmon.yaml (default: $NETMON_CONFIG, else the local stack)
`;

/** raw records carry addresses as bytes: show them as text. */
function rawReplacer(this: unknown, key: string, value: unknown): unknown {
  if ((key === 'saddr' || key === 'daddr') && value && typeof value === 'object' && (value as { type?: string }).type === 'Buffer') {
    return formatAddress(Buffer.from((value as { data: number[] }).data));
  }
  return value;
}

/** A message's headers as librdkafka gives them: one {name: value} object per header. */
export type MessageHeaders = ReadonlyArray<Record<string, Buffer | string>>;

function headerText(headers: MessageHeaders | undefined, name: string): string {
  const header = headers?.find((h) => name in h);
  return header === undefined ? '' : String(header[name]);
}

/** The innermost message of an error chain (librdkafka's own words). */
/** Turns one message's value into its JSON lines (a raw message packs several records). */
export function messageToJsonLines(kind: 'dlq' | 'other', value: Buffer, headers?: MessageHeaders): string[] {
  if (kind === 'dlq') {
    const line = JSON.stringify({
      reason: headerText(headers, DLQ_HEADERS.reason),
      detail: headerText(headers, DLQ_HEADERS.detail),
      source: {
        topic: headerText(headers, DLQ_HEADERS.sourceTopic),
        partition: Number(headerText(headers, DLQ_HEADERS.sourcePartition)),
        offset: headerText(headers, DLQ_HEADERS.sourceOffset),
      },
      value_base64: value.toString('base64'),
      // the value was cut to fit the DLQ: the original's length
      ...(headerText(headers, DLQ_HEADERS.originalBytes) ? { original_bytes: Number(headerText(headers, DLQ_HEADERS.originalBytes)) } : {}),
    });
    return [line];
  }
  // Any other topic: the record's fingerprint says which contract wrote it.
  try {
    return [JSON.stringify(networkEventCodec().decode(value))];
  } catch (err) {
    if (!(err instanceof DecodeError && err.reason === 'unknown-fingerprint')) throw err;
  }
  return rawRecordCodec()
    .decodeAll(value)
    .map((record) => JSON.stringify(record, rawReplacer));
}

export async function runTailCommand(argv: string[]): Promise<number> {
  const flags = parseFlags(
    argv,
    { topic: { type: 'string' }, 'from-beginning': { type: 'boolean' }, max: { type: 'string' }, 'idle-exit': { type: 'string' }, config: { type: 'string' } },
    USAGE,
  );
  if (!flags) return 0;
  const alias = stringFlag(flags, 'topic');
  if (!alias) throw new UsageError(`--topic is required\n\n${USAGE}`);
  const max = numberFlag(flags, 'max', Number.POSITIVE_INFINITY);
  const idleExitMs = numberFlag(flags, 'idle-exit', 0) * 1000;

  const config = loadConfig(stringFlag(flags, 'config'));
  const topic = resolveTopic(config.topics, alias);
  const kind = topic === config.topics.dlq ? 'dlq' : 'other';
  const logger = createLogger('tail', config.log.level === 'info' ? 'warn' : config.log.level);

  let printed = 0;
  let lastRecordAt = Date.now();
  let finish: (code: number) => void = () => {};
  let done = false;
  const finished = new Promise<number>((resolve) => {
    finish = (code) => {
      done = true;
      resolve(code);
    };
  });
  const onSignal = () => finish(0);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const idleTimer = idleExitMs > 0 ? setInterval(() => Date.now() - lastRecordAt >= idleExitMs && finish(0), 100) : undefined;

  let consumer: NativeConsumer;
  try {
    // The client's own retry lines are noise on a terminal: the one line below says it.
    consumer = await NativeConsumer.connect(config.kafka, createLogger('tail', 'silent'), {
      clientSuffix: 'tail',
      connectTimeoutMs: 3500, // the one line within 5 s, node's start included
      groupId: `netmon-tail-${randomUUID()}`,
      readCommitted: true,
      fromBeginning: Boolean(flags.values['from-beginning']),
    });
  } catch (err) {
    if (idleTimer) clearInterval(idleTimer);
    process.stderr.write(`${unreachableLine('tail', 'Kafka', config, err)}\n`);
    return 1;
  }
  consumer.subscribe([topic]);
  void (async () => {
    while (!done) {
      for (const message of await consumer.consume(500)) {
        if (done) break;
        lastRecordAt = Date.now();
        let lines: string[];
        try {
          lines = messageToJsonLines(kind, message.value ?? Buffer.alloc(0), message.headers);
        } catch (err) {
          if (!(err instanceof DecodeError)) throw err;
          logger.warn({ topic, partition: message.partition, offset: message.offset, reason: err.reason }, err.message);
          continue;
        }
        if (!process.stdout.write(`${lines.join('\n')}\n`)) await once(process.stdout, 'drain');
        printed += lines.length;
        if (printed >= max) finish(0);
      }
    }
  })().catch((err: unknown) => {
    if (done) return; // the consumer was closed under a pending read
    logger.error({ err: describeError(err) }, 'reading the topic failed');
    finish(1);
  });
  const code = await finished;
  if (idleTimer) clearInterval(idleTimer);
  process.removeListener('SIGINT', onSignal);
  process.removeListener('SIGTERM', onSignal);
  // A broker that went away must not keep the command from ending.
  await Promise.race([consumer.disconnect(), new Promise((r) => setTimeout(r, 5000).unref())]);
  return code;
}
