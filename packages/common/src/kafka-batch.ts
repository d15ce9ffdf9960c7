// Batch consume and produce on @confluentinc/kafka-javascript's own clients,
// through this package's addon (native/src/kafka_batch.cc, which says why).
//
// consumeBatch(): one native call and one Buffer per batch; the messages are
// built here, with the library's Message shape, their keys and values views
// of that Buffer (no copy per message). Message errors (a partition's end, a
// missing topic) come apart from the messages, as `errors`.
//
// produceBatch(): the messages handed to librdkafka in one call; while its
// queue is full, polls the producer (a message holds its place in the queue
// until its delivery report is served) and waits 5 ms at a time.
import path from 'node:path';
import type { KafkaConsumer, Message, MessageHeader, Producer } from '@confluentinc/kafka-javascript';

/** A Kafka error of a batch call: librdkafka's code, its text. */
export interface BatchError extends Error {
  code: number;
  /** Set on a message's error: where it happened. */
  topic?: string;
  partition?: number;
  offset?: number;
}

interface Addon {
  consume(
    client: object,
    max: number,
    timeoutMs: number,
    cb: (err: BatchError | null, batch?: Buffer, count?: number, topics?: string[], errors?: BatchError[]) => void,
  ): void;
  produce(
    client: object,
    topic: string,
    partitions: Int32Array,
    keys: Array<Buffer | null>,
    values: Array<Buffer | null>,
    headers: Array<Array<string | Buffer> | undefined> | null,
    from: number,
  ): number;
  librdkafkaVersion(): string;
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
const addon = require(path.join(__dirname, '../../native/build/Release/kafka_batch.node')) as Addon;

/** The librdkafka the addon calls (the library's own). */
export const batchLibrdkafkaVersion = (): string => addon.librdkafkaVersion();

/** The native client inside the library's JavaScript one. */
function nativeClient(client: KafkaConsumer | Producer): object {
  const inner = (client as unknown as { _client?: object })._client;
  if (!inner) throw new TypeError('not a connected @confluentinc/kafka-javascript client');
  return inner;
}

/** librdkafka's RD_KAFKA_RESP_ERR__PARTITION_EOF. */
export const PARTITION_EOF = -191;

/** Bytes of the fixed header of one message in a consumed batch (kafka_batch.cc). */
const HEADER_BYTES = 40;

export interface ConsumedBatch {
  messages: Message[];
  /** Errors the consumer's queue carried among the messages. */
  errors: BatchError[];
}

/**
 * Up to `max` messages: waits up to `timeoutMs` for the first, then takes
 * what is ready. `keys: false` leaves every message's key null, for a
 * consumer that never reads them (a view less per message).
 */
export function consumeBatch(consumer: KafkaConsumer, max: number, timeoutMs: number, keys = true): Promise<ConsumedBatch> {
  const client = nativeClient(consumer);
  return new Promise((resolve, reject) => {
    addon.consume(client, max, timeoutMs, (err, batch, count, topics, errors) => {
      if (err) reject(err);
      else resolve({ messages: unpack(batch!, count!, topics!, keys), errors: errors! });
    });
  });
}

/** The messages of a consumed batch (layout: kafka_batch.cc); keys null when `keys` is false. */
export function unpack(batch: Buffer, count: number, topics: readonly string[], keys = true): Message[] {
  const view = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
  const messages: Message[] = new Array(count);
  let p = 0;
  for (let i = 0; i < count; i++) {
    const partition = view.getInt32(p, true);
    const topic = topics[view.getInt32(p + 4, true)]!;
    const offset = view.getFloat64(p + 8, true);
    const timestamp = view.getFloat64(p + 16, true);
    const keyLength = view.getInt32(p + 24, true);
    const valueLength = view.getInt32(p + 28, true);
    const headerCount = view.getInt32(p + 32, true);
    const headerBytes = view.getInt32(p + 36, true);
    p += HEADER_BYTES;
    let key: Buffer | null = null;
    if (keyLength >= 0) {
      if (keys) key = batch.subarray(p, p + keyLength);
      p += keyLength;
    }
    let value: Buffer | null = null;
    if (valueLength >= 0) {
      value = batch.subarray(p, p + valueLength);
      p += valueLength;
    }
    const m: Message = { topic, partition, offset, timestamp, key, value, size: Math.max(0, valueLength) };
    if (headerCount > 0) m.headers = unpackHeaders(batch, view, p, headerCount);
    p += headerBytes;
    messages[i] = m;
  }
  return messages;
}

function unpackHeaders(batch: Buffer, view: DataView, p: number, count: number): MessageHeader[] {
  const headers: MessageHeader[] = [];
  for (let h = 0; h < count; h++) {
    const nameLength = view.getInt32(p, true);
    const name = batch.toString('utf8', p + 4, p + 4 + nameLength);
    p += 4 + nameLength;
    const valueLength = view.getInt32(p, true);
    p += 4;
    const value = valueLength < 0 ? Buffer.alloc(0) : batch.subarray(p, p + valueLength);
    if (valueLength > 0) p += valueLength;
    headers.push({ [name]: value });
  }
  return headers;
}

/** A produced message's headers, kafkajs-style: a name's value, or its values. */
export type ProducedHeaders = Record<string, Buffer | string | Array<Buffer | string> | undefined>;

/** A message to produce, kafkajs-style (the shape the services build). */
export interface ProducedMessage {
  /** Unset: the producer's partitioner chooses by key. */
  partition?: number;
  key?: Buffer | string | null;
  value: Buffer | string | null;
  headers?: ProducedHeaders;
}

/** Headers as the addon takes them: [name, value, name, value, ...]. */
function flatHeaders(headers: ProducedHeaders): Array<string | Buffer> {
  const out: Array<string | Buffer> = [];
  for (const [name, v] of Object.entries(headers)) {
    if (v === undefined) continue;
    for (const x of Array.isArray(v) ? v : [v]) out.push(name, x);
  }
  return out;
}

/** Strings as UTF-8 bytes: librdkafka takes bytes (and a string key would be cut at a NUL). */
const bytes = (v: Buffer | string | null | undefined): Buffer | null => (v === null || v === undefined ? null : typeof v === 'string' ? Buffer.from(v) : v);

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Queues `messages` on `producer` for `topic`, in order, waiting while
 * librdkafka's queue is full. Fails with librdkafka's error (BatchError) on
 * any other refusal; the messages before it are queued.
 */
export async function produceBatch(producer: Producer, topic: string, messages: readonly ProducedMessage[]): Promise<void> {
  const n = messages.length;
  if (n === 0) return;
  const client = nativeClient(producer);
  const partitions = new Int32Array(n);
  const keys: Array<Buffer | null> = new Array(n);
  const values: Array<Buffer | null> = new Array(n);
  let headers: Array<Array<string | Buffer> | undefined> | null = null;
  for (let i = 0; i < n; i++) {
    const m = messages[i]!;
    partitions[i] = m.partition ?? -1;
    keys[i] = bytes(m.key);
    values[i] = bytes(m.value);
    if (m.headers) {
      headers ??= new Array(n);
      headers[i] = flatHeaders(m.headers);
    }
  }
  for (let from = 0; ; ) {
    from = addon.produce(client, topic, partitions, keys, values, headers, from);
    if (from >= n) return;
    // The local queue is full: serve the delivery reports (each message holds
    // its place until its report is served) and let librdkafka send some.
    producer.poll();
    await sleep(5);
  }
}
