// The local Kafka broker: KRaft, broker + controller in one JVM, on DEFAULT_BROKERS[0].
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DEFAULT_TOPICS, type KafkaSettings, NativeConsumer, NativeProducer, createLogger, withAdmin } from '@netmon/common';
import { StackError, tailOf } from './errors';
import { classPath } from './fetch';
import { type StackLayout, renderTemplate, writeIfChanged } from './layout';
import { isAlive, sleep, spawnDetached } from './process';
import { findJava } from './tools';

/** Partitions of each Netmon topic created at `stack up`. */
export const TOPIC_PARTITIONS = 4;

export function kafkaMarkers(layout: StackLayout): string[] {
  return ['-Dnetmon.stack.service=kafka', `-Dnetmon.stack.dir=${layout.dir}`];
}

/** The local broker as the services' Kafka settings (plain text, no auth). */
function settingsOf(layout: StackLayout): KafkaSettings {
  return { brokers: [layout.kafka.address], clientId: 'netmon-stack', compression: 'none', ssl: false };
}

/** librdkafka's own lines while the broker starts are expected: keep them out of the output. */
export const quiet = createLogger('stack', 'fatal');

function writeConfig(layout: StackLayout): void {
  const k = layout.kafka;
  writeIfChanged(k.config, renderTemplate(k.template, { HOST: k.host, PORT: k.port, CONTROLLER_PORT: k.controllerPort, DATA_DIR: k.data }));
}

/** A Kafka cluster id: 16 random bytes, base64url, not starting with '-' (as Uuid.randomUuid). */
export function newClusterId(): string {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

/** `kafka-storage format --standalone`, once: skipped when the data dir is formatted. */
export async function formatStorage(layout: StackLayout, log: (msg: string) => void): Promise<void> {
  const k = layout.kafka;
  writeConfig(layout);
  if (fs.existsSync(path.join(k.data, 'meta.properties'))) return;
  fs.mkdirSync(k.data, { recursive: true });
  fs.mkdirSync(path.dirname(k.log), { recursive: true });
  const id = newClusterId();
  log(`kafka: formatting storage in ${k.data} (cluster id ${id})`);
  const args = [`-Dlog4j2.configurationFile=${k.log4jTools}`, '-cp', classPath(k), 'kafka.tools.StorageTool'];
  args.push('format', '--standalone', '--cluster-id', id, '--config', k.config);
  fs.appendFileSync(k.log, `\n=== ${new Date().toISOString()} kafka-storage format --standalone --cluster-id ${id}\n`);
  const fd = fs.openSync(k.log, 'a');
  try {
    const code = await new Promise<number | string>((resolve) => {
      const child = spawn(findJava(), args, { stdio: ['ignore', fd, fd] });
      child.once('error', (err) => resolve(err.message));
      child.once('close', (c) => resolve(c ?? 'killed'));
    });
    if (code !== 0) {
      throw new StackError('format kafka storage', `StorageTool exited with ${code}${tailOf(k.log)}`, k.log);
    }
  } finally {
    fs.closeSync(fd);
  }
}

export async function launchKafka(layout: StackLayout): Promise<number> {
  const k = layout.kafka;
  writeConfig(layout);
  return spawnDetached({
    command: findJava(),
    args: brokerJvmArgs(layout, kafkaMarkers(layout), k.config),
    cwd: path.dirname(k.config),
    logFile: k.log,
    pidFile: k.pidFile,
  });
}

/** The java command line of a broker of this stack: its markers, then kafka.Kafka CONFIG. */
export function brokerJvmArgs(layout: StackLayout, markers: string[], config: string): string[] {
  const k = layout.kafka;
  return [
    '-Xms256m',
    '-Xmx1g',
    '-XX:+UseG1GC',
    '-XX:MaxGCPauseMillis=20',
    '-XX:+ExitOnOutOfMemoryError',
    '-Djava.awt.headless=true',
    `-Dlog4j2.configurationFile=${k.log4j}`,
    `-Dkafka.logs.dir=${layout.logs}`,
    ...markers,
    '-cp',
    classPath(k),
    'kafka.Kafka',
    config,
  ];
}

async function withTimeout<T>(ms: number, what: string, body: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([body, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Whether the broker answers: list its topics. */
export async function kafkaAnswers(layout: StackLayout, timeoutMs = 4000): Promise<{ ok: boolean; detail: string }> {
  return brokerAnswers(settingsOf(layout), timeoutMs);
}

/** Whether a broker answers these client settings: list its topics. */
export async function brokerAnswers(settings: KafkaSettings, timeoutMs = 4000): Promise<{ ok: boolean; detail: string }> {
  try {
    const topics = await withTimeout(
      timeoutMs,
      'kafka',
      withAdmin(settings, (admin) => admin.listTopics(timeoutMs)),
    );
    return { ok: true, detail: `${topics.filter((t) => !t.startsWith('__')).length} topics` };
  } catch (err) {
    return { ok: false, detail: (err as Error).message };
  }
}

/** Waits until the broker answers; fails early, with its log, if the process dies. */
export async function waitKafkaReady(layout: StackLayout, pid: number, timeoutMs = 120_000): Promise<void> {
  const k = layout.kafka;
  const until = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < until) {
    if (!isAlive(pid)) {
      throw new StackError('start kafka', `the broker (pid ${pid}) exited during start-up${tailOf(k.log)}`, k.log);
    }
    const answer = await kafkaAnswers(layout, 3000);
    if (answer.ok) return;
    last = answer.detail;
    await sleep(500);
  }
  throw new StackError('start kafka', `no answer on ${k.address} within ${timeoutMs / 1000} s (last: ${last})${tailOf(k.log)}`, k.log);
}

/** Creates the Netmon topics that are missing. */
export async function ensureTopics(layout: StackLayout, log: (msg: string) => void): Promise<void> {
  await createTopics(settingsOf(layout), Object.values(DEFAULT_TOPICS), log, layout.kafka.log);
}

/** Creates the topics that are missing, TOPIC_PARTITIONS partitions each. */
export async function createTopics(settings: KafkaSettings, topics: string[], log: (msg: string) => void, logFile: string): Promise<void> {
  try {
    const created = await withAdmin(settings, async (admin) => {
      const made: string[] = [];
      for (const topic of topics) if (await admin.createTopic(topic, TOPIC_PARTITIONS, 1, {}, 30_000)) made.push(topic);
      return made;
    });
    if (created.length > 0) log(`kafka: created topics ${created.join(', ')} (${TOPIC_PARTITIONS} partitions each)`);
  } catch (err) {
    throw new StackError('create kafka topics', (err as Error).message, logFile, { cause: err });
  }
}

/**
 * Brings the group and transaction coordinators up (creates __consumer_offsets and
 * __transaction_state), so that the first consumer group or transactional producer of
 * a test does not meet "coordinator is loading" on a fresh broker.
 */
export async function warmUpCoordinators(layout: StackLayout, timeoutMs = 60_000): Promise<void> {
  await warmUp(settingsOf(layout), layout.kafka.log, timeoutMs);
}

/** warmUpCoordinators with these client settings (a principal allowed to use any group and transactional id). */
export async function warmUp(settings: KafkaSettings, logFile: string, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < until) {
    let producer: NativeProducer | undefined;
    let consumer: NativeConsumer | undefined;
    try {
      // a group's committed offsets: finds the group coordinator
      consumer = await NativeConsumer.connect(settings, quiet, { clientSuffix: 'warmup', groupId: 'netmon-stack-warmup' });
      const group = consumer;
      await new Promise<void>((resolve, reject) =>
        group.native.committed([{ topic: DEFAULT_TOPICS.raw, partition: 0 }], 10_000, (err) => (err ? reject(err) : resolve())),
      );
      // InitProducerId: finds the transaction coordinator
      producer = await NativeProducer.connect(settings, quiet, { clientSuffix: 'warmup', transactionalId: 'netmon-stack-warmup' });
      await producer.initTransactions(10_000);
      return;
    } catch (err) {
      last = err;
      await sleep(500);
    } finally {
      await producer?.disconnect();
      await consumer?.disconnect();
    }
  }
  throw new StackError('warm up kafka coordinators', (last as Error)?.message ?? 'timeout', logFile, { cause: last });
}
