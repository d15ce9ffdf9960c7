// `npm run bench -- archiver [EVENTS]`: the archiver's throughput from an
// enriched topic into S3 (the real server of the local stack, or S3_ENDPOINT),
// against kcat's plain consume rate of the same topic, in one run.
//
//   1. fill a fresh topic (4 partitions) with EVENTS Avro NetworkEvents (default 1,000,000)
//   2. kcat -C from the beginning to the end: the consume-only limit
//   3. the archiver (in this process, fresh group and S3 prefix, default flush
//      sizes) from its start until it has read every event and stopped: the
//      stop seals, uploads and commits what it holds, as the next flush of a
//      stream that goes on would (waiting for the idle timer instead would add
//      that wait). Every offset is then checked committed. events/s per core =
//      events / CPU seconds of this process (main thread, gzip and librdkafka
//      threads) during the run
// Ends with one line `RESULT {json}`. BENCH_LOG_LEVEL=info shows the archiver's
// logs (flush reasons, sizes); NETMON_ARCHIVER_GZIP_LEVEL sets its gzip level.
// The end is seen in the archiver's own metrics, then checked against the
// group's committed offsets: polling the broker all along would put the
// bench's Kafka client into the CPU time measured.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  DEFAULT_CONNECTION_FACTS,
  NativeProducer,
  type NetworkEvent,
  createKafka,
  createLogger,
  createS3Client,
  loadConfig,
  networkEventCodec,
} from '@netmon/common';
import { ArchiveStore, start } from '@netmon/archiver';
import { cpuByThreadName, mainThreadCpuSeconds, threadGroups } from './_threads';

const EVENTS = Number(process.argv[2] ?? process.env.BENCH_EVENTS ?? 1_000_000);
const PARTITIONS = 4;
const log = createLogger('bench', process.env.BENCH_LOG_LEVEL || 'warn');
const say = (msg: string) => process.stdout.write(`${msg}\n`);

const BINARIES = ['/usr/bin/curl', '/usr/sbin/nginx', '/usr/bin/python3.11', '/usr/lib/jvm/java-17/bin/java', '/usr/bin/ssh', '/usr/local/bin/node'];
const TYPES: NetworkEvent['network_event']['type'][] = ['TcpConnectionEstablish', 'TcpConnectionAccept', 'TcpConnectionClose'];

function event(i: number, base: number): NetworkEvent {
  const bin = BINARIES[i % BINARIES.length]!;
  const host = i % 50;
  return {
    type: 'NetworkEvent',
    process: {
      pid: 1000 + (i % 30000),
      tid: 1000 + (i % 30000),
      ppid: 1,
      uid: i % 3 === 0 ? 0 : 1000,
      euid: i % 3 === 0 ? 0 : 1000,
      auid: 4294967295,
      cap_inheritable: 0,
      cap_permitted: i % 3 === 0 ? 2199023255551 : 0,
      cap_effective: i % 3 === 0 ? 2199023255551 : 0,
      secureexec: '',
      filename: bin.slice(bin.lastIndexOf('/') + 1),
      binary_path: bin,
      args: i % 2 ? '-s https://example.com/api/v1/items' : '--config /etc/app/app.yaml',
      container_id: i % 4 === 0 ? '3f4e8a9c1b2d4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f' : '',
    },
    network_event: {
      type: TYPES[i % 3]!,
      saddr: `10.0.${host}.${(i >> 8) & 255}`,
      daddr: i % 5 === 0 ? '2a00:1450:4010:c08::8b' : `203.0.113.${i & 255}`,
      sport: 32768 + (i % 28000),
      dport: [443, 80, 5432, 6379, 22][i % 5]!,
      cookie: 4096 + i,
    },
    timestamp: new Date(base + Math.floor(i / 50)).toISOString(),
    host: { hostname: `web-${host}`, id: `4c4c4544004e3510804bb4c04f4a${String(host).padStart(4, '0')}` },
    source: { run_id: 'bench-run', seq: i },
    connection: { ...DEFAULT_CONNECTION_FACTS },
    process_key: '',
  };
}

async function main(): Promise<void> {
  const id = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  const topic = `bench.archiver.${id}`;
  const groupId = `bench-archiver-${id}`;
  const prefix = `bench/${id}`;
  const dir = mkdtempSync(path.join(tmpdir(), 'netmon-bench-'));
  const configFile = path.join(dir, 'netmon.yaml');
  writeFileSync(
    configFile,
    [
      `topics: { events: ${topic}, dlq: ${topic}.dlq }`,
      `s3: { prefix: ${prefix} }`,
      `archiver: { group_id: ${groupId}, idle_flush_s: 1, metrics_port: 0 }`,
      '',
    ].join('\n'),
  );
  const config = loadConfig(configFile);
  const kafka = createKafka(config.kafka, log, 'bench');
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({
    waitForLeaders: true,
    topics: [
      { topic, numPartitions: PARTITIONS, replicationFactor: 1 },
      { topic: `${topic}.dlq`, numPartitions: 1, replicationFactor: 1 },
    ],
  });
  const store = new ArchiveStore(createS3Client(config.s3), config.s3);
  try {
    // 1. Fill the topic.
    say(`archiver bench: ${EVENTS.toLocaleString('en')} events, topic ${topic} (${PARTITIONS} partitions), s3://${config.s3.bucket}/${prefix}`);
    const codec = networkEventCodec();
    // librdkafka, uncompressed (as the topic's producers in the field may be): the fill is not measured, only waited for.
    const producer = await NativeProducer.connect(config.kafka, log, { clientSuffix: 'bench-fill', compression: 'none' });
    const base = Date.parse('2025-05-31T10:30:00.000Z');
    let avroBytes = 0;
    let jsonBytes = 0;
    const fillStart = Date.now();
    for (let i = 0; i < EVENTS; i += 5000) {
      const messages = [];
      for (let j = i; j < Math.min(EVENTS, i + 5000); j++) {
        const ev = event(j, base);
        const value = codec.encode(ev);
        avroBytes += value.length;
        if (j < 1000) jsonBytes += Buffer.byteLength(JSON.stringify(ev)) + 1;
        messages.push({ key: ev.host.id, value });
      }
      await producer.send(topic, messages);
    }
    await producer.disconnect();
    say(
      `  produced in ${((Date.now() - fillStart) / 1000).toFixed(1)} s; Avro ${(avroBytes / EVENTS).toFixed(0)} B/event, JSON ${(jsonBytes / Math.min(EVENTS, 1000)).toFixed(0)} B/event`,
    );

    // 2. kcat: consume everything, print nothing but the payloads to /dev/null.
    const kcatStart = process.hrtime.bigint();
    const k = spawnSync(
      'kcat',
      ['-C', '-b', config.kafka.brokers.join(','), '-t', topic, '-o', 'beginning', '-e', '-q', '-X', 'isolation.level=read_committed', '-f', '%s\n'],
      { stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 1 << 20 },
    );
    const kcatS = Number(process.hrtime.bigint() - kcatStart) / 1e9;
    let kcatRate = Number.NaN;
    if (k.error || k.status !== 0) say(`  kcat failed (${k.error?.message ?? k.stderr.toString().trim()}); apt-get install kcat`);
    else {
      kcatRate = EVENTS / kcatS;
      say(`  kcat -C (plain consume):   ${Math.round(kcatRate).toLocaleString('en')} events/s (${kcatS.toFixed(2)} s)`);
    }

    // 3. The archiver, until every partition's committed offset reaches the end.
    const ends = new Map<number, number>();
    for (const p of await admin.fetchTopicOffsets(topic)) ends.set(p.partition, Number(p.high));
    const cpu0 = process.cpuUsage();
    const main0 = mainThreadCpuSeconds();
    const threads0 = cpuByThreadName();
    const t0 = process.hrtime.bigint();
    const handle = await start(config, log);
    const startedS = Number(process.hrtime.bigint() - t0) / 1e9;
    // The archiver's own counters of the bench's topic: records read, records archived (committed after upload).
    const counted = async (counter: 'read' | 'records') =>
      (await handle.archiver.metrics[counter].get()).values.find((v) => v.labels.topic === topic)?.value ?? 0;
    const read = () => counted('read');
    const archived = () => counted('records');
    // Every event read, then stop: it seals, uploads and commits what is held,
    // as the next size-triggered flush would in a stream that goes on (the idle
    // timer would only add its own wait to the figure).
    let firstS = Number.NaN;
    for (let n = 0; n < EVENTS; n = await read()) {
      if (n > 0 && Number.isNaN(firstS)) firstS = Number(process.hrtime.bigint() - t0) / 1e9;
      await new Promise((r) => setTimeout(r, 20));
    }
    const readS = Number(process.hrtime.bigint() - t0) / 1e9;
    // The clock stops once every event is committed after its upload; leaving the group is not archiving.
    const stopped = handle.stop();
    let stopFailed: unknown;
    stopped.catch((err: unknown) => (stopFailed = err));
    while ((await archived()) < EVENTS && !stopFailed) await new Promise((r) => setTimeout(r, 5));
    const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu = process.cpuUsage(cpu0);
    const cpuS = (cpu.user + cpu.system) / 1e6;
    const mainS = mainThreadCpuSeconds() - main0;
    const threads = cpuByThreadName();
    // Under --cpu-prof: the run's window, on the profile's clock (µs).
    if (process.execArgv.some((a) => a.startsWith('--cpu-prof'))) say(`  window ${t0 / 1000n} ${process.hrtime.bigint() / 1000n} µs`);
    await stopped;
    const offsets = await admin.fetchOffsets({ groupId, topics: [topic] });
    const behind = offsets[0]!.partitions.filter((p) => Number(p.offset) < (ends.get(p.partition) ?? 0));
    const archivedAtStop = await archived();
    if (archivedAtStop !== EVENTS || behind.length > 0)
      throw new Error(`the archiver stopped with ${archivedAtStop} of ${EVENTS} events archived; partitions behind: ${JSON.stringify(behind)}`);
    const objects = (await store.list(`${prefix}/dt=`)).filter((o) => o.key.endsWith('.json.gz'));
    const bytes = objects.reduce((n, o) => n + o.size, 0);
    const rate = EVENTS / wallS;
    const perCore = EVENTS / cpuS;
    const ratio = rate / kcatRate;
    say(
      `  archiver (Kafka → S3):     ${Math.round(rate).toLocaleString('en')} events/s wall (${wallS.toFixed(2)} s), ${cpuS.toFixed(2)} CPU s (${(cpuS / wallS).toFixed(2)} cores; main thread ${mainS.toFixed(2)} s)`,
    );
    say(
      `  of which:                  ${startedS.toFixed(2)} s to start (S3 probe, group join), ${firstS.toFixed(2)} s to the first event read, all read at ${readS.toFixed(2)} s, then ${(wallS - readS).toFixed(2)} s to seal, upload and commit the rest`,
    );
    say(`  CPU seconds by thread:     ${JSON.stringify(threadGroups(threads0, threads))}`);
    say(`  archiver per core:         ${Math.round(perCore).toLocaleString('en')} events/s per CPU second`);
    say(`  ratio to kcat:             ${ratio.toFixed(2)}`);
    say(
      `  objects:                   ${objects.length}, ${(bytes / 1048576).toFixed(1)} MiB gzip, mean ${(bytes / Math.max(1, objects.length) / 1048576).toFixed(2)} MiB, ${(bytes / EVENTS).toFixed(1)} B/event (ratio ${(jsonBytes / Math.min(EVENTS, 1000) / (bytes / EVENTS)).toFixed(1)}x)`,
    );
    const result = {
      bench: 'archiver',
      events: EVENTS,
      partitions: PARTITIONS,
      wall_s: Number(wallS.toFixed(3)),
      cpu_s: Number(cpuS.toFixed(3)),
      main_thread_cpu_s: Number(mainS.toFixed(3)),
      first_read_s: Number(firstS.toFixed(3)),
      all_read_s: Number(readS.toFixed(3)),
      events_per_s: Math.round(rate),
      kcat_events_per_s: Math.round(kcatRate),
      objects: objects.length,
      object_bytes_total: bytes,
      object_bytes_mean: Math.round(bytes / Math.max(1, objects.length)),
      bytes_per_event: Number((bytes / EVENTS).toFixed(1)),
      targets: {
        events_per_s_per_core: { value: Math.round(perCore), target: 150000, met: perCore >= 150000 },
        ratio_to_kcat: { value: Number(ratio.toFixed(3)), target: 0.25, met: ratio >= 0.25 },
      },
    };
    say(`RESULT ${JSON.stringify(result)}`);
  } finally {
    await admin.deleteTopics({ topics: [topic, `${topic}.dlq`] }).catch(() => undefined);
    await admin.deleteGroups([groupId]).catch(() => undefined);
    await admin.disconnect();
    await store.deletePrefix(`${prefix}/`).catch(() => undefined);
    store.client.destroy();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench archiver: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
