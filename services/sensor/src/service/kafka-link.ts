// The sensor's one Kafka producer: connected on the first send (so a sensor
// starts, and spools, while Kafka is down) and replaced when it stops making
// progress. librdkafka reconnects by itself after an outage, but an idempotent
// producer can be left unable to deliver (a fatal error, or a send that never
// settles after timed-out requests); a fresh producer gets a fresh producer id.
// Records sent twice that way are dropped by the enricher (run_id, seq).
import { type KafkaSettings, type Logger, NativeProducer, type OutgoingMessage } from '@netmon/common';

/** A send that cannot be acknowledged fails after this long; the publisher spools meanwhile and retries. */
const DELIVERY_TIMEOUT_MS = 10_000;
/** A send still unsettled this long after its delivery timeout is stuck. */
const STUCK_AFTER_MS = DELIVERY_TIMEOUT_MS + 20_000;
/** Failed sends in a row (about 30 s of failure) before the producer is replaced. */
const REPLACE_AFTER_FAILURES = 3;

class StuckSend extends Error {
  constructor() {
    super(`a send still unsettled after ${STUCK_AFTER_MS} ms`);
  }
}

export class KafkaLink {
  private producer: Promise<NativeProducer> | undefined;
  private failuresInARow = 0;
  /** Producers replaced since start (a metric). */
  replaced = 0;

  constructor(
    private readonly settings: KafkaSettings,
    private readonly log: Logger,
  ) {}

  async send(topic: string, messages: OutgoingMessage[]): Promise<void> {
    const producer = await this.connect();
    let timer: NodeJS.Timeout | undefined;
    const stuck = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new StuckSend()), STUCK_AFTER_MS);
    });
    try {
      await Promise.race([producer.send(topic, messages), stuck]);
      this.failuresInARow = 0;
    } catch (err) {
      this.failuresInARow++;
      const fatal = (err as { cause?: { isFatal?: boolean } }).cause?.isFatal === true;
      if (fatal) this.replace('a fatal error');
      else if (err instanceof StuckSend) this.replace(err.message);
      else if (this.failuresInARow >= REPLACE_AFTER_FAILURES) this.replace(`${this.failuresInARow} failed sends in a row`);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    await (await this.producer?.catch(() => undefined))?.disconnect();
  }

  private connect(): Promise<NativeProducer> {
    this.producer ??= NativeProducer.connect(this.settings, this.log, {
      clientSuffix: 'sensor',
      idempotent: true,
      deliveryTimeoutMs: DELIVERY_TIMEOUT_MS,
    }).catch((err: unknown) => {
      this.producer = undefined;
      throw err;
    });
    return this.producer;
  }

  /** Drops the producer (its undelivered messages fail; the publisher still holds them) for a new one on the next send. */
  private replace(reason: string): void {
    const old = this.producer;
    this.producer = undefined;
    this.failuresInARow = 0;
    this.replaced++;
    this.log.warn({ reason }, 'replacing the Kafka producer');
    void old?.then((p) => p.disconnect()).catch(() => undefined);
  }
}
