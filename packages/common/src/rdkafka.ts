// The one Kafka client of the data paths: librdkafka through
// @confluentinc/kafka-javascript's native (node-rdkafka style) API, which
// costs a fraction of kafkajs's CPU per message (bench/README.md). Small
// promise-returning wrappers: an idempotent or transactional producer whose
// send() resolves once the broker acknowledged every message, a batch
// consumer, and the admin calls the services need. librdkafka's own log goes
// to pino; its errors become NetmonErrors naming the client and the cause.
import {
  AdminClient,
  CODES,
  type ConsumerGlobalConfig,
  type IAdminClient,
  KafkaConsumer,
  type LibrdKafkaError,
  type Message,
  type MessageHeader,
  Producer,
  type ProducerGlobalConfig,
  type TopicPartitionOffset,
} from '@confluentinc/kafka-javascript';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import * as tls from 'node:tls';
import type { KafkaSettings } from './config';
import { type ConsumedBatch, PARTITION_EOF, consumeBatch } from './kafka-batch';
import { NetmonError } from './errors';
import type { Logger } from './logger';

export type { Message as KafkaMessage, MessageHeader as KafkaHeader, TopicPartitionOffset };

/** A librdkafka call that failed, with the client and librdkafka's code. */
export class KafkaClientError extends NetmonError {
  constructor(
    message: string,
    readonly code: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A librdkafka error as a KafkaClientError: "<client>: <what>: <librdkafka's message>". */
export function kafkaFailure(client: string, what: string, err: LibrdKafkaError): KafkaClientError {
  return new KafkaClientError(`${client}: ${what}: ${err.message}`, err.code, { cause: err });
}

const SYSLOG_LEVELS = ['fatal', 'fatal', 'fatal', 'error', 'warn', 'info', 'info', 'debug'] as const;

/**
 * librdkafka's configuration of KafkaSettings: brokers, client id, TLS (files
 * read by librdkafka), SASL.
 */
export function rdkafkaSettings(settings: KafkaSettings, clientSuffix: string): ProducerGlobalConfig & ConsumerGlobalConfig {
  const config: ProducerGlobalConfig & ConsumerGlobalConfig = {
    'bootstrap.servers': settings.brokers.join(','),
    'client.id': clientSuffix ? `${settings.clientId}-${clientSuffix}` : settings.clientId,
    'socket.keepalive.enable': true,
    'reconnect.backoff.max.ms': 5000,
    // info: connectClient hears why a connection closed (a plaintext client on a
    // TLS listener is told so at info only); forwardLogs passes warnings and worse
    log_level: 6,
  };
  const tls = settings.ssl !== false;
  config['security.protocol'] = settings.sasl ? (tls ? 'sasl_ssl' : 'sasl_plaintext') : tls ? 'ssl' : 'plaintext';
  if (settings.ssl) {
    if (settings.ssl.caFile) config['ssl.ca.location'] = settings.ssl.caFile;
    if (settings.ssl.certFile) config['ssl.certificate.location'] = settings.ssl.certFile;
    if (settings.ssl.keyFile) config['ssl.key.location'] = settings.ssl.keyFile;
    config['enable.ssl.certificate.verification'] = settings.ssl.rejectUnauthorized;
  }
  if (settings.sasl) {
    config['sasl.mechanisms'] = settings.sasl.mechanism.toUpperCase();
    config['sasl.username'] = settings.sasl.username;
    config['sasl.password'] = settings.sasl.password;
  }
  return config;
}

/**
 * rdkafkaSettings() of a consumer. librdkafka postpones a partition's next
 * fetch by fetch.queue.backoff.ms (1 s by default) each time its local queue
 * reaches its thresholds: a consumer that empties its queue quickly idled
 * most of every second (the archiver's bench read 93k events/s with the
 * default, 1.4M/s with 10 ms; the enricher's end-to-end p99 was near 1 s).
 */
export function rdkafkaConsumerSettings(settings: KafkaSettings, clientSuffix: string): ConsumerGlobalConfig {
  return { ...rdkafkaSettings(settings, clientSuffix), 'fetch.queue.backoff.ms': 10 };
}

type Emitter = {
  on(event: string, listener: (...args: never[]) => void): unknown;
  removeListener(event: string, listener: (...args: never[]) => void): unknown;
};

/** librdkafka's log lines forwarded: warnings and worse (syslog severities). */
const FORWARDED_SEVERITY = 4;

/** The same librdkafka message is logged at most once per this long (a broker down repeats it many times a second). */
const REPEAT_MS = 30_000;

/**
 * librdkafka's log and error events into pino, once per client, repeats held
 * back; `onFatal` hears of an error librdkafka will not recover from.
 */
export function forwardLogs(client: Producer | KafkaConsumer, logger: Logger, name: string, onFatal?: (err: LibrdKafkaError) => void): void {
  const emitter = client as unknown as Emitter;
  const last = new Map<string, { at: number; held: number }>();
  const log = (level: (typeof SYSLOG_LEVELS)[number], fields: Record<string, unknown>, message: string) => {
    const now = Date.now();
    const seen = last.get(message);
    if (seen && now - seen.at < REPEAT_MS) {
      seen.held++;
      return;
    }
    if (last.size > 1000) last.clear();
    last.set(message, { at: now, held: 0 });
    logger[level]({ kafka: name, ...fields, ...(seen?.held ? { repeated: seen.held } : {}) }, message);
  };
  emitter.on('event.log', (e: { severity: number; fac: string; message: string }) => {
    if (e.severity > FORWARDED_SEVERITY) return;
    // the facility and broker name, not the changing details, make a repeat
    log(SYSLOG_LEVELS[e.severity] ?? 'info', { facility: e.fac }, e.message.replace(/ \(after \d+ms.*\)$/, ''));
  });
  emitter.on('event.error', (err: LibrdKafkaError) => {
    // Transport errors (broker down) are retried by librdkafka: a warning; a fatal error is not.
    log(err.isFatal ? 'error' : 'warn', { code: err.code }, err.message);
    if (err.isFatal) onFatal?.(err);
  });
}

/** Why connecting failed, from librdkafka's log of the broker connection. */
export interface ConnectFailure {
  /** The broker as librdkafka names it, e.g. sasl_ssl://127.0.0.1:9192 */
  broker: string;
  reason: string;
  /** librdkafka's code: ERR__AUTHENTICATION, ERR__SSL or ERR__TRANSPORT */
  code: number;
  /** A setting that cannot work (credentials, CA, protocol), not a passing outage. */
  setting: boolean;
}

/**
 * Classifies one of librdkafka's FAIL log lines ("[thrd:…]: <broker>/<id>: <what> (after Nms in state S)"):
 * credentials, certificates and a plaintext client on a TLS listener are
 * settings; anything else (connection refused, a broker restarting) an outage.
 */
export function connectFailure(message: string, tls: boolean): ConnectFailure | undefined {
  const m = /^(?:\[thrd:[^\]]*\]: )?(\S+?)(?:\/(?:bootstrap|\d+))?: (.*)$/s.exec(message);
  if (!m) return undefined;
  const broker = m[1]!;
  const what = m[2]!
    .replace(/ \(after \d+ms in state .*$/s, '') // the timing, the state, repeats
    .replace(/, verify that ssl\.ca\.location .*$/s, '') // librdkafka's setting names: ours follow
    .trim();
  const E = CODES.ERRORS;
  if (/SASL authentication error|Authentication failed|SASL .*mechanism/i.test(what)) {
    return { broker, reason: `${what} (check kafka.sasl: user name, password, mechanism)`, code: E.ERR__AUTHENTICATION, setting: true };
  }
  if (/SSL handshake failed|certificate verify failed|SSL routines/i.test(what)) {
    return { broker, reason: `${what} (check kafka.ssl.ca_file: the CA that signed the broker's certificate)`, code: E.ERR__SSL, setting: true };
  }
  if (!tls && /state APIVERSION_QUERY/.test(m[2]!) && /Disconnected|closed by peer/i.test(what)) {
    return {
      broker,
      reason: 'the broker closed the connection at the Kafka handshake: a TLS listener? (kafka.ssl is not set: this client speaks plaintext)',
      code: E.ERR__TRANSPORT,
      setting: true,
    };
  }
  return { broker, reason: what, code: E.ERR__TRANSPORT, setting: false };
}

/** OpenSSL's verification codes, as Node reports them, said plainly. */
const UNTRUSTED: Record<string, string> = {
  SELF_SIGNED_CERT_IN_CHAIN: "the broker's certificate chain ends in a CA the CA file does not hold",
  DEPTH_ZERO_SELF_SIGNED_CERT: "the broker's certificate is self-signed and not in the CA file",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "the broker's certificate is signed by a CA the CA file does not hold",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "the broker's certificate is signed by a CA the CA file does not hold",
  UNABLE_TO_GET_ISSUER_CERT: "the broker's certificate is signed by a CA the CA file does not hold",
  CERT_HAS_EXPIRED: "the broker's certificate has expired",
  CERT_NOT_YET_VALID: "the broker's certificate is not valid yet",
};

/**
 * Whether the first bootstrap broker that completes a TLS handshake has a
 * certificate the client's CA file (ssl.ca.location) trusts, for its address.
 * librdkafka, on a certificate it does not trust, reconnects about twenty
 * times a second (its reconnect back-off does not apply to handshake failures:
 * ~190 handshakes in 10 s, measured on the secure stack); this one handshake
 * beforehand turns that into one clear error. Undefined (no verdict) without a
 * CA file or verification, or when no broker completes a handshake: librdkafka
 * then connects and reports as it does.
 */
export async function untrustedBroker(config: Record<string, unknown>, timeoutMs = 3000): Promise<ConnectFailure | undefined> {
  const protocol = String(config['security.protocol'] ?? '').toLowerCase();
  const caFile = config['ssl.ca.location'];
  if (!protocol.endsWith('ssl') || typeof caFile !== 'string' || config['enable.ssl.certificate.verification'] === false) return undefined;
  let ca: Buffer;
  try {
    ca = readFileSync(caFile);
  } catch {
    return undefined; // librdkafka says what is wrong with the file
  }
  for (const address of String(config['bootstrap.servers'] ?? '').split(',')) {
    const i = address.lastIndexOf(':');
    const host = address.slice(0, i).replace(/^\[|\]$/g, '');
    const port = Number(address.slice(i + 1));
    if (!host || !port) continue;
    const verdict = await new Promise<string | null | undefined>((resolve) => {
      const socket = tls.connect({ host, port, ca, rejectUnauthorized: false, servername: isIP(host) ? undefined : host, timeout: timeoutMs });
      const done = (v: string | null | undefined) => {
        socket.destroy();
        resolve(v);
      };
      socket.once('secureConnect', () => {
        if (!socket.authorized) return done(String(socket.authorizationError));
        const mismatch = tls.checkServerIdentity(host, socket.getPeerCertificate());
        done(mismatch ? mismatch.message : null);
      });
      socket.once('error', () => done(undefined)); // refused, reset, not TLS: no verdict
      socket.once('timeout', () => done(undefined));
    });
    if (verdict === null) return undefined;
    if (verdict !== undefined) {
      const what = UNTRUSTED[verdict] ? `${UNTRUSTED[verdict]} (${verdict})` : verdict;
      return {
        broker: `${protocol}://${address}`,
        reason: `SSL handshake failed: certificate verify failed: ${what} (check kafka.ssl.ca_file: the CA that signed the broker's certificate)`,
        code: CODES.ERRORS.ERR__SSL,
        setting: true,
      };
    }
  }
  return undefined;
}

/**
 * Connects a client; on failure closes it (nothing left retrying in the
 * background) and rejects with one line naming the client, the broker and the
 * cause librdkafka logged (wrong credentials, an unknown CA, a plaintext client
 * on a TLS listener, connection refused), not only "broker transport failure".
 * A broker certificate the CA file does not trust fails at once, before
 * librdkafka connects (untrustedBroker). Otherwise librdkafka reconnects until
 * timeoutMs with its exponential back-off (reconnect.backoff.ms to
 * reconnect.backoff.max.ms); failing sooner would not stop it: the handle
 * cannot be destroyed while the connect's metadata request waits.
 */
export async function connectClient<T extends Producer | KafkaConsumer>(client: T, name: string, timeoutMs = 10_000): Promise<T> {
  const emitter = client as unknown as Emitter;
  const config = (client as unknown as { globalConfig?: Record<string, unknown> }).globalConfig ?? {};
  const untrusted = await untrustedBroker(config, Math.min(3000, timeoutMs));
  if (untrusted) {
    const why = Object.assign(new Error(untrusted.reason), { code: untrusted.code });
    throw new KafkaClientError(`${name}: connecting to ${untrusted.broker}: ${untrusted.reason}`, untrusted.code, { cause: why });
  }
  const tlsOn = /ssl/i.test(String(config['security.protocol'] ?? ''));
  const brokers = String(config['bootstrap.servers'] ?? '?');
  let cause: ConnectFailure | undefined;
  const onLog = (e: { severity: number; fac: string; message: string }) => {
    if (e.fac !== 'FAIL') return;
    const f = connectFailure(e.message, tlsOn);
    // a setting's failure is the cause; an outage's only until one is seen
    if (f && (f.setting || !cause?.setting)) cause = f;
  };
  emitter.on('event.log', onLog);
  return new Promise((resolve, reject) => {
    client.connect({ timeout: timeoutMs }, (err) => {
      emitter.removeListener('event.log', onLog);
      if (!err) return resolve(client);
      if (!cause) reject(new KafkaClientError(`${name}: connecting to ${brokers}: ${err.message}`, err.code, { cause: err }));
      else {
        const why = Object.assign(new Error(cause.reason), { code: cause.code, origin: err });
        reject(new KafkaClientError(`${name}: connecting to ${cause.broker}: ${cause.reason}`, cause.code, { cause: why }));
      }
      try {
        client.disconnect(); // no client left retrying in the background
      } catch {
        // it never was connected: nothing to close
      }
    });
  });
}

export interface ProducerOptions {
  /** Appended to kafka.client_id. */
  clientSuffix: string;
  /** Idempotent (ordered, no duplicates on retry); true for every data path. */
  idempotent?: boolean;
  /** Transactional id: transactions with sendOffsetsToTransaction (KIP-447). */
  transactionalId?: string;
  compression?: KafkaSettings['compression'];
  /** librdkafka linger.ms (default 5). */
  lingerMs?: number;
  /** A message not acknowledged within this fails its send (default 30 s). */
  deliveryTimeoutMs?: number;
}

export interface OutgoingMessage {
  value: Buffer;
  key?: Buffer | string;
  /** A fixed partition; by default murmur2 of the key. */
  partition?: number;
  headers?: MessageHeader[];
}

/** The messages of one send() still waiting for their delivery reports. */
interface Pending {
  remaining: number;
  error: LibrdKafkaError | undefined;
  resolve(): void;
  reject(err: Error): void;
}

export class NativeProducer {
  private constructor(
    private readonly client: Producer,
    private readonly name: string,
  ) {}

  static async connect(settings: KafkaSettings, logger: Logger, options: ProducerOptions): Promise<NativeProducer> {
    const config: ProducerGlobalConfig = {
      ...rdkafkaSettings(settings, options.clientSuffix),
      'enable.idempotence': options.idempotent ?? true,
      'compression.codec': options.compression ?? settings.compression,
      'linger.ms': options.lingerMs ?? 5,
      'queue.buffering.max.messages': 1_000_000,
      dr_cb: true,
    };
    if (options.transactionalId) config['transactional.id'] = options.transactionalId;
    // murmur2: a key's partition as Java clients and kafkajs choose it (a host keeps its partition)
    const client = new Producer(config, { 'message.timeout.ms': options.deliveryTimeoutMs ?? 30_000, partitioner: 'murmur2_random' });
    const name = String(config['client.id']);
    forwardLogs(client, logger, name);
    client.on('delivery-report', (err, report) => {
      const pending = report.opaque as Pending;
      if (err && !pending.error) pending.error = err;
      if (--pending.remaining > 0) return;
      if (pending.error) pending.reject(kafkaFailure(name, 'delivering', pending.error));
      else pending.resolve();
    });
    await connectClient(client, name, 10_000);
    client.setPollInterval(5);
    return new NativeProducer(client, name);
  }

  /**
   * Produces the messages, in order, and resolves once the broker has
   * acknowledged every one (acks=all); rejects if any could not be delivered.
   */
  send(topic: string, messages: readonly OutgoingMessage[]): Promise<void> {
    if (messages.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const pending: Pending = { remaining: messages.length, error: undefined, resolve, reject };
      for (const m of messages) {
        try {
          this.client.produce(topic, m.partition ?? null, m.value, m.key, null, pending, m.headers);
        } catch (err) {
          // The local queue (a million messages) is full, or the topic is unknown:
          // the messages not produced count as failed.
          pending.error ??= err as LibrdKafkaError;
          pending.remaining -= messages.length - messages.indexOf(m);
          if (pending.remaining === 0) reject(kafkaFailure(this.name, 'producing', pending.error));
          return;
        }
      }
    });
  }

  /** Waits until everything produced is delivered (or failed). */
  flush(timeoutMs = 30_000): Promise<void> {
    return new Promise((resolve, reject) => this.client.flush(timeoutMs, (err) => (err ? reject(kafkaFailure(this.name, 'flushing', err)) : resolve())));
  }

  initTransactions(timeoutMs = 30_000): Promise<void> {
    return this.call('initializing transactions', (cb) => this.client.initTransactions(timeoutMs, cb));
  }

  beginTransaction(): Promise<void> {
    return this.call('beginning a transaction', (cb) => this.client.beginTransaction(cb));
  }

  /** Commits `offsets` (the next offset to read, per partition) with the transaction, fenced by the consumer's group generation (KIP-447). */
  sendOffsetsToTransaction(offsets: TopicPartitionOffset[], consumer: NativeConsumer, timeoutMs = 30_000): Promise<void> {
    return this.call('sending offsets to the transaction', (cb) => this.client.sendOffsetsToTransaction(offsets, consumer.native, timeoutMs, cb));
  }

  commitTransaction(timeoutMs = 30_000): Promise<void> {
    return this.call('committing the transaction', (cb) => this.client.commitTransaction(timeoutMs, cb));
  }

  abortTransaction(timeoutMs = 30_000): Promise<void> {
    return this.call('aborting the transaction', (cb) => this.client.abortTransaction(timeoutMs, cb));
  }

  disconnect(): Promise<void> {
    return new Promise((resolve) => this.client.disconnect(() => resolve()));
  }

  private call(what: string, fn: (cb: (err: LibrdKafkaError) => void) => void): Promise<void> {
    return new Promise((resolve, reject) => fn((err) => (err ? reject(kafkaFailure(this.name, what, err)) : resolve())));
  }
}

export interface ConsumerOptions {
  clientSuffix: string;
  groupId: string;
  /** read_committed for the events topic (transactional writers). */
  readCommitted?: boolean;
  /** Where a group without committed offsets starts. */
  fromBeginning?: boolean;
  /** How long connecting may take (default 10 s); interactive commands give up sooner. */
  connectTimeoutMs?: number;
  /** Assignment changes (cooperative-sticky: increments), just before they take effect. */
  onAssign?(partitions: Array<{ topic: string; partition: number }>): void;
  onRevoke?(partitions: Array<{ topic: string; partition: number }>): void;
}

/** A group consumer read in batches; offsets are committed only by the caller. */
export class NativeConsumer {
  private constructor(
    readonly native: KafkaConsumer,
    private readonly name: string,
  ) {}

  static async connect(settings: KafkaSettings, logger: Logger, options: ConsumerOptions): Promise<NativeConsumer> {
    const config: ConsumerGlobalConfig = {
      ...rdkafkaConsumerSettings(settings, options.clientSuffix),
      'group.id': options.groupId,
      'enable.auto.commit': false,
      'enable.auto.offset.store': false,
      'isolation.level': options.readCommitted ? 'read_committed' : 'read_uncommitted',
      'partition.assignment.strategy': 'cooperative-sticky',
      // the client's own handler (incremental assign/unassign), after the 'rebalance' event
      rebalance_cb: true,
    };
    const client = new KafkaConsumer(config, { 'auto.offset.reset': options.fromBeginning === false ? 'latest' : 'earliest' });
    const name = String(config['client.id']);
    const consumer = new NativeConsumer(client, name);
    forwardLogs(client, logger, name);
    client.on('rebalance', (err, assignment) => {
      if (err.code === CODES.ERRORS.ERR__ASSIGN_PARTITIONS) options.onAssign?.(assignment);
      else if (err.code === CODES.ERRORS.ERR__REVOKE_PARTITIONS) options.onRevoke?.(assignment);
    });
    await connectClient(client, name, options.connectTimeoutMs ?? 10_000);
    return consumer;
  }

  subscribe(topics: string[]): void {
    this.native.subscribe(topics);
  }

  /** Up to `max` messages, waiting at most `waitMs` for the first; a consumer error (a missing topic) fails it when no message came. */
  async consume(max: number, waitMs = 1000): Promise<Message[]> {
    let batch: ConsumedBatch;
    try {
      batch = await consumeBatch(this.native, max, waitMs);
    } catch (err) {
      throw kafkaFailure(this.name, 'consuming', err as LibrdKafkaError);
    }
    const failed = batch.errors.find((e) => e.code !== PARTITION_EOF);
    if (failed && batch.messages.length === 0) throw kafkaFailure(this.name, 'consuming', failed as unknown as LibrdKafkaError);
    return batch.messages;
  }

  /** Commits the next offset to read per partition, synchronously with the group coordinator. */
  commit(offsets: TopicPartitionOffset[]): void {
    if (offsets.length > 0) this.native.commitSync(offsets);
  }

  seek(topic: string, partition: number, offset: number): Promise<void> {
    return new Promise((resolve, reject) =>
      this.native.seek({ topic, partition, offset }, 5000, (err) =>
        err ? reject(kafkaFailure(this.name, `seeking ${topic}/${partition} to ${offset}`, err)) : resolve(),
      ),
    );
  }

  pause(partitions: Array<{ topic: string; partition: number }>): void {
    this.native.pause(partitions);
  }

  resume(partitions: Array<{ topic: string; partition: number }>): void {
    this.native.resume(partitions);
  }

  /** The partition ids of `topic` ([] when it does not exist). */
  partitions(topic: string, timeoutMs = 10_000): Promise<number[]> {
    return new Promise((resolve, reject) =>
      this.native.getMetadata({ topic, timeout: timeoutMs }, (err, md) =>
        err
          ? reject(kafkaFailure(this.name, `metadata of ${topic}`, err))
          : resolve(md.topics.find((t) => t.name === topic)?.partitions.map((p) => p.id) ?? []),
      ),
    );
  }

  /** The partition's first and next offsets. */
  watermarks(topic: string, partition: number, timeoutMs = 10_000): Promise<{ lowOffset: number; highOffset: number }> {
    return new Promise((resolve, reject) =>
      this.native.queryWatermarkOffsets(topic, partition, timeoutMs, (err, o) =>
        err ? reject(kafkaFailure(this.name, `watermarks of ${topic}[${partition}]`, err)) : resolve(o),
      ),
    );
  }

  /** The group's committed offsets of the partitions (-1 or less: none committed). */
  committed(topic: string, partitions: number[], timeoutMs = 10_000): Promise<Map<number, number>> {
    return new Promise((resolve, reject) =>
      this.native.committed(
        partitions.map((partition) => ({ topic, partition })),
        timeoutMs,
        (err, tps) => (err ? reject(kafkaFailure(this.name, `committed offsets of ${topic}`, err)) : resolve(new Map(tps.map((t) => [t.partition, t.offset])))),
      ),
    );
  }

  disconnect(): Promise<void> {
    return new Promise((resolve) => this.native.disconnect(() => resolve()));
  }
}

/** Runs fn with an admin client of the cluster, then disconnects it. */
export async function withAdmin<T>(settings: KafkaSettings, fn: (admin: NativeAdmin) => Promise<T>): Promise<T> {
  const client = AdminClient.create(rdkafkaSettings(settings, 'admin'));
  try {
    return await fn(new NativeAdmin(client));
  } finally {
    client.disconnect();
  }
}

export class NativeAdmin {
  constructor(private readonly client: IAdminClient) {}

  /** Creates the topic; true if created, false if it existed. */
  createTopic(topic: string, partitions: number, replicationFactor = 1, config: Record<string, string> = {}, timeoutMs = 15_000): Promise<boolean> {
    return new Promise((resolve, reject) =>
      this.client.createTopic({ topic, num_partitions: partitions, replication_factor: replicationFactor, config }, timeoutMs, (err) => {
        if (!err) resolve(true);
        else if (err.code === CODES.ERRORS.ERR_TOPIC_ALREADY_EXISTS) resolve(false);
        else reject(kafkaFailure('admin', `creating topic ${topic}`, err));
      }),
    );
  }

  listTopics(timeoutMs = 5000): Promise<string[]> {
    return new Promise((resolve, reject) =>
      this.client.listTopics({ timeout: timeoutMs }, (err, topics) => (err ? reject(kafkaFailure('admin', 'listing topics', err)) : resolve(topics))),
    );
  }

  deleteTopic(topic: string, timeoutMs = 15_000): Promise<void> {
    return new Promise((resolve, reject) =>
      this.client.deleteTopic(topic, timeoutMs, (err) =>
        err && err.code !== CODES.ERRORS.ERR_UNKNOWN_TOPIC_OR_PART ? reject(kafkaFailure('admin', `deleting topic ${topic}`, err)) : resolve(),
      ),
    );
  }
}
