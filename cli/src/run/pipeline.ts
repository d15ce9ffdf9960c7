// The whole pipeline on this host, as separate processes: the native stack
// (unless brokers or S3 are configured), then sensor, enricher and archiver,
// and a live view of the events topic. Ctrl-C stops everything it started.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, openSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { archiverLag } from '@netmon/archiver';
import {
  DEFAULT_BROKERS,
  DEFAULT_S3,
  LOCAL_RUN_FLUSH,
  NativeConsumer,
  type NetmonConfig,
  checkKafka,
  checkS3,
  createLogger,
  loadConfig,
  networkEventCodec,
  unreachableLine,
} from '@netmon/common';
import { stackDown, stackLayout, stackStatus, stackUp } from '../stack/index.js';
import { formatStatus, sensorLosses, topicSize } from './status';
import { formatEvent } from './view';

const SERVICES = ['sensor', 'enricher', 'archiver'] as const;
const BIN = path.resolve(__dirname, '../../../../bin/netmon.js');
const STATUS_EVERY_MS = 5000;

/**
 * The configuration the services of a local run get: with no file of the
 * user's, the local stack's defaults with the local flush policy (written
 * under .stack/run/); a user's file as it is.
 */
function localRunConfig(config: NetmonConfig, configFile: string | undefined): { file: string | undefined; config: NetmonConfig } {
  if (configFile || config.source !== '(defaults)') return { file: configFile, config };
  const file = path.join(stackLayout().dir, 'run', 'netmon-run.yaml');
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(
    file,
    `# written by netmon run --pipeline: the local stack's defaults, with a flush policy for people waiting\narchiver: { idle_flush_s: ${LOCAL_RUN_FLUSH.idleFlushS}, flush_span_s: ${LOCAL_RUN_FLUSH.flushSpanS} }\n`,
  );
  return { file, config: loadConfig(file) };
}

function usesLocalStack(config: NetmonConfig): boolean {
  return config.kafka.brokers.join(',') === DEFAULT_BROKERS.join(',') && config.s3.endpoint === DEFAULT_S3.endpoint;
}

/** Waits (60 s at most) for the sensor's /readyz: its probes attached and its first records sent. */
async function sensorReady(config: NetmonConfig, sensor: ChildProcess): Promise<boolean> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline && sensor.exitCode === null) {
    try {
      const res = await fetch(`http://127.0.0.1:${config.sensor.metricsPort}/readyz`, { signal: AbortSignal.timeout(1000) });
      if (res.ok) return true;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return false;
}

/** `durationS` > 0: stops by itself after that many seconds, as on Ctrl-C. */
export async function runPipeline(given: NetmonConfig, givenFile: string | undefined, durationS = 0): Promise<number> {
  let config = given;
  let configFile = givenFile;
  const say = (msg: string) => process.stderr.write(`netmon run: ${msg}\n`);
  let stopping = false;
  // The local stack is stopped at the end only if this command started it.
  const ownStack = usesLocalStack(config) && !(await stackStatus()).up;
  if (usesLocalStack(config)) {
    say('starting the local stack (Kafka + S3)…');
    await stackUp({ log: (m) => process.stderr.write(`${m}\n`) });
  } else {
    // Configured servers: say at once, in one line, when one cannot be reached.
    for (const [service, check] of [
      ['Kafka', checkKafka],
      ['S3', checkS3],
    ] as const) {
      try {
        await check(config);
      } catch (err) {
        process.stderr.write(`${unreachableLine('run', service, config, err)}\n`);
        return 1;
      }
    }
  }
  ({ file: configFile, config } = localRunConfig(config, configFile));
  const { idleFlushS, flushSpanS } = config.archiver;
  say(
    `the archiver writes within ${idleFlushS} s of the last event, ${flushSpanS} s at most${configFile?.endsWith('netmon-run.yaml') ? ' (the local flush policy; production defaults: 30 s, 300 s)' : ''}`,
  );
  const logDir = stackLayout().logs;
  mkdirSync(logDir, { recursive: true });
  const children = new Map<string, ChildProcess>();
  for (const name of SERVICES) {
    const log = path.join(logDir, `${name}.log`);
    const fd = openSync(log, 'a');
    const args = [BIN, name, ...(configFile ? ['--config', configFile] : [])];
    const child = spawn(process.execPath, args, { stdio: ['ignore', fd, fd], env: process.env });
    child.on('exit', (code, signal) => {
      if (!stopping) say(`${name} exited (${signal ?? code}); its log: ${log}`);
    });
    children.set(name, child);
    say(`${name} started, pid ${child.pid}, log ${log}`);
  }
  // Connections are recorded once the sensor's probes are attached: say when.
  if (await sensorReady(config, children.get('sensor')!)) say('sensor ready: every TCP connection on this host is recorded from now on');
  else say(`the sensor is not ready yet; its log: ${path.join(logDir, 'sensor.log')}`);
  const archive = `${config.s3.endpoint ? `${config.s3.endpoint}/` : 's3://'}${config.s3.bucket}/${config.s3.prefix}/`;
  say(`events are archived under ${archive} (dt=YYYY-MM-DD/hour=HH/); query them with: ./bin/netmon.js query "SELECT * FROM network_events LIMIT 10"`);
  say('live view of the events topic (Ctrl-C stops everything):');

  const consumer = await NativeConsumer.connect(config.kafka, createLogger('run', 'error'), {
    clientSuffix: 'run-view',
    groupId: `netmon-run-view-${randomUUID()}`,
    readCommitted: true,
    fromBeginning: false,
  });
  consumer.subscribe([config.topics.events]);
  const codec = networkEventCodec();
  // The status line goes with the events on a terminal, to stderr when stdout is a file.
  const statusOut = process.stdout.isTTY ? process.stdout : process.stderr;
  let seen = 0;
  let lastStatus = Date.now();
  const status = async () => {
    const seconds = (Date.now() - lastStatus) / 1000;
    const [lag, dlq, losses] = await Promise.all([
      archiverLag(config, 2000).catch(() => undefined),
      topicSize(consumer, config.topics.dlq).catch(() => undefined),
      sensorLosses(config),
    ]);
    statusOut.write(`${formatStatus({ eventsPerS: seen / seconds, archiverWaiting: lag?.waiting, dlq, ...losses })}\n`);
    seen = 0;
    lastStatus = Date.now();
  };
  const view = (async () => {
    while (!stopping) {
      let text = '';
      for (const message of await consumer.consume(500)) {
        if (!message.value) continue;
        seen++;
        try {
          text += `${formatEvent(codec.decode(message.value))}\n`;
        } catch {
          // not a NetworkEvent: the enricher's DLQ and metrics tell; the view goes on
        }
      }
      if (text) process.stdout.write(text);
      if (Date.now() - lastStatus >= STATUS_EVERY_MS) await status();
    }
  })().catch(() => undefined); // a read cut short by the disconnect below

  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
    if (durationS > 0) setTimeout(resolve, durationS * 1000).unref();
  });
  stopping = true;
  say('stopping…');
  await view;
  await consumer.disconnect();
  // Sensor first (flush), then enricher, then archiver (flush, commit).
  for (const name of SERVICES) {
    const child = children.get(name)!;
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    say(`${name} stopped`);
  }
  if (ownStack) await stackDown({ log: (m) => process.stderr.write(`${m}\n`) });
  return 0;
}
