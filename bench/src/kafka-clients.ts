// The Kafka client choice, measured: kafkajs (what the data paths used until
// now, and what custom consumers keep using) against librdkafka through
// @confluentinc/kafka-javascript's native API, message by message (its own
// produce() and consume(n)) and in batches through @netmon/common's addon
// (produceBatch, consumeBatch: what the enricher and the archiver use), on
// the same broker in the same run. Each client runs in its own process, so
// its CPU time (librdkafka's threads included) is its own:
//   produce  N messages of 220 bytes to 4 partitions, keyed, idempotent, acks=all, LZ4
//   consume  the same N messages from the beginning, in a fresh group
// Prints messages per CPU-second and per wall-second, and `RESULT {json}`.
//   NETMON_BENCH_MESSAGES (default 300000)
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { Producer } from '@confluentinc/kafka-javascript';
import {
  type KafkaSettings,
  NativeConsumer,
  NativeProducer,
  compressionType,
  connectClient,
  createKafka,
  createLogger,
  loadConfig,
  produceBatch,
  rdkafkaSettings,
  withAdmin,
} from '@netmon/common';

const MESSAGES = Number(process.env.NETMON_BENCH_MESSAGES ?? 300_000);
const BATCH = 1000;
const VALUE = Buffer.alloc(220, 0x61);
const KEYS = Array.from({ length: 64 }, (_, i) => Buffer.from(`host-${i}`));
const logger = createLogger('bench', 'error');

const CLIENTS = ['kafkajs', 'librdkafka', 'librdkafka-batch'] as const;
type Client = (typeof CLIENTS)[number];
type Role = 'produce' | 'consume';
interface Figures {
  messages: number;
  cpu_s: number;
  wall_s: number;
}

async function produce(client: Client, settings: KafkaSettings, topic: string): Promise<void> {
  if (client === 'kafkajs') {
    const producer = createKafka(settings, logger, 'bench').producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    for (let i = 0; i < MESSAGES; i += BATCH) {
      const messages = Array.from({ length: Math.min(BATCH, MESSAGES - i) }, (_, k) => ({ key: KEYS[(i + k) % KEYS.length], value: VALUE }));
      await producer.send({ topic, acks: -1, compression: compressionType('lz4'), messages });
    }
    await producer.disconnect();
    return;
  }
  if (client === 'librdkafka-batch') {
    // As the enricher's producer: one native call per batch, no delivery report per message; flush() waits for every ack.
    const producer = new Producer(
      { ...rdkafkaSettings(settings, 'bench'), 'enable.idempotence': true, 'compression.codec': 'lz4', 'linger.ms': 5, dr_cb: false },
      { partitioner: 'murmur2_random' },
    );
    await connectClient(producer, 'bench producer');
    for (let i = 0; i < MESSAGES; i += BATCH) {
      await produceBatch(
        producer,
        topic,
        Array.from({ length: Math.min(BATCH, MESSAGES - i) }, (_, k) => ({ key: KEYS[(i + k) % KEYS.length], value: VALUE })),
      );
    }
    await new Promise<void>((resolve, reject) => producer.flush(60_000, (err) => (err ? reject(err) : resolve())));
    await new Promise<void>((resolve) => producer.disconnect(() => resolve()));
    return;
  }
  const producer = await NativeProducer.connect(settings, logger, { clientSuffix: 'bench', compression: 'lz4' });
  const sends: Promise<void>[] = [];
  for (let i = 0; i < MESSAGES; i += BATCH) {
    sends.push(
      producer.send(
        topic,
        Array.from({ length: Math.min(BATCH, MESSAGES - i) }, (_, k) => ({ key: KEYS[(i + k) % KEYS.length], value: VALUE })),
      ),
    );
    // keep a few batches in flight, as the kafkajs loop keeps one
    if (sends.length >= 8) await sends.shift();
  }
  await Promise.all(sends);
  await producer.disconnect();
}

async function consume(client: Client, settings: KafkaSettings, topic: string): Promise<void> {
  const groupId = `netmon-bench-${randomUUID()}`;
  let seen = 0;
  if (client === 'kafkajs') {
    const consumer = createKafka(settings, logger, 'bench').consumer({ groupId });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve) => {
      void consumer.run({
        eachBatch: async ({ batch }) => {
          seen += batch.messages.length;
          if (seen >= MESSAGES) resolve();
        },
      });
    });
    await consumer.disconnect();
    return;
  }
  const consumer = await NativeConsumer.connect(settings, logger, { clientSuffix: 'bench', groupId });
  consumer.subscribe([topic]);
  if (client === 'librdkafka-batch') {
    while (seen < MESSAGES) seen += (await consumer.consume(BATCH, 100)).length;
  } else {
    // The library's own consume(n): an object and Buffers per message, an event each.
    const native = consumer.native;
    native.setDefaultConsumeTimeout(100);
    // As the services used it: wait for the first message only (not in the typings).
    (native as unknown as { setDefaultIsTimeoutOnlyForFirstMessage(v: boolean): void }).setDefaultIsTimeoutOnlyForFirstMessage(true);
    while (seen < MESSAGES)
      seen += await new Promise<number>((resolve, reject) => native.consume(BATCH, (err, ms) => (err ? reject(err) : resolve(ms.length))));
  }
  await consumer.disconnect();
}

/** One role of one client, in this process (the child side). */
async function child(role: Role, client: Client, topic: string): Promise<void> {
  const settings = loadConfig(undefined).kafka;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await (role === 'produce' ? produce : consume)(client, settings, topic);
  const cpu = process.cpuUsage(cpu0);
  const figures: Figures = { messages: MESSAGES, cpu_s: (cpu.user + cpu.system) / 1e6, wall_s: (performance.now() - t0) / 1000 };
  process.stdout.write(`${JSON.stringify(figures)}\n`);
}

function measure(role: Role, client: Client, topic: string): Figures & { per_cpu_s: number; per_s: number } {
  const r = spawnSync(process.execPath, [__filename, role, client, topic], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 600_000 });
  if (r.status !== 0) throw new Error(`${client} ${role} failed (exit ${r.status})`);
  const f = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Figures;
  return { ...f, per_cpu_s: Math.round(f.messages / f.cpu_s), per_s: Math.round(f.messages / f.wall_s) };
}

async function main(): Promise<void> {
  const [role, client, topic] = process.argv.slice(2);
  if (role) return child(role as Role, client as Client, topic!);

  const settings = loadConfig(undefined).kafka;
  const topics = Object.fromEntries(CLIENTS.map((c) => [c, `netmon.bench.clients.${c}.${Date.now()}`])) as Record<Client, string>;
  await withAdmin(settings, async (admin) => {
    for (const t of Object.values(topics)) await admin.createTopic(t, 4);
  });
  const results: Record<string, ReturnType<typeof measure>> = {};
  for (const role of ['produce', 'consume'] as const)
    for (const client of CLIENTS) {
      const r = measure(role, client, topics[client]);
      results[`${client}_${role}`] = r;
      console.log(
        `${client.padEnd(16)} ${role.padEnd(7)} ${String(r.per_cpu_s).padStart(8)} msgs per CPU-second  ${String(r.per_s).padStart(8)} msgs/s  (${r.cpu_s.toFixed(2)} CPU-s, ${r.wall_s.toFixed(2)} s)`,
      );
    }
  await withAdmin(settings, async (admin) => {
    for (const t of Object.values(topics)) await admin.deleteTopic(t);
  });
  // What the data paths use (the batch addon) against kafkajs.
  const ratio = (role: Role) => Number((results[`librdkafka-batch_${role}`]!.per_cpu_s / results[`kafkajs_${role}`]!.per_cpu_s).toFixed(2));
  const result = {
    bench: 'kafka-clients',
    messages: MESSAGES,
    value_bytes: VALUE.length,
    results,
    targets: {
      // the reason for the switch: librdkafka does the same work for less CPU
      produce_cpu_ratio: { value: ratio('produce'), target: 1, met: ratio('produce') > 1 },
      consume_cpu_ratio: { value: ratio('consume'), target: 1, met: ratio('consume') > 1 },
    },
  };
  console.log(`RESULT ${JSON.stringify(result)}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
