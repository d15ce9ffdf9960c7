// The whole pipeline on this host, as separate processes: the native stack
// (unless brokers or S3 are configured), then sensor, enricher and archiver,
// and a live view of the events topic. Ctrl-C stops everything it started.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, openSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_BROKERS, DEFAULT_S3, NativeConsumer, type NetmonConfig, createLogger, networkEventCodec } from '@netmon/common';
import { stackDown, stackLayout, stackStatus, stackUp } from '../stack/index.js';
import { formatEvent } from './view';

const SERVICES = ['sensor', 'enricher', 'archiver'] as const;
const BIN = path.resolve(__dirname, '../../../../bin/netmon.js');

function usesLocalStack(config: NetmonConfig): boolean {
  return config.kafka.brokers.join(',') === DEFAULT_BROKERS.join(',') && config.s3.endpoint === DEFAULT_S3.endpoint;
}

export async function runPipeline(config: NetmonConfig, configFile: string | undefined): Promise<number> {
  const say = (msg: string) => process.stderr.write(`netmon run: ${msg}\n`);
  let stopping = false;
  // The local stack is stopped at the end only if this command started it.
  const ownStack = usesLocalStack(config) && !(await stackStatus()).up;
  if (usesLocalStack(config)) {
    say('starting the local stack (Kafka + S3)…');
    await stackUp({ log: (m) => process.stderr.write(`${m}\n`) });
  }
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
  const view = (async () => {
    while (!stopping) {
      let text = '';
      for (const message of await consumer.consume(500)) {
        if (!message.value) continue;
        try {
          text += `${formatEvent(codec.decode(message.value))}\n`;
        } catch {
          // not a NetworkEvent: the enricher's DLQ and metrics tell; the view goes on
        }
      }
      if (text) process.stdout.write(text);
    }
  })().catch(() => undefined); // a read cut short by the disconnect below

  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
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
