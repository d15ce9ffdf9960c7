// `npm run bench -- athena-cost [EVENTS]`: what Athena would bill for the
// archive in each format, and what each format costs the archiver.
//
//   1. fill a fresh topic (4 partitions) with EVENTS NetworkEvent v2 records
//      (default 1,000,000; NETMON_BENCH_EVENTS or the argument lowers it for a
//      trial run): a fleet of 200 hosts over 10 minutes across an hour boundary,
//      from a seeded generator (the same events every run)
//   2. archive them twice with the archiver itself (start(), in this process,
//      fresh group and prefix each, default flush limits, idle flush 1 s):
//      archiver.format parquet, then json; CPU per event = CPU seconds of this
//      process (every thread: librdkafka, zlib, DuckDB) / events, until every
//      offset is committed after upload
//   3. mirror each prefix to a local folder (netmon query's syncArchive) and run
//      five shared queries of infra/athena/queries/ through netmon query's views
//      (ArchiveQuery), a fresh DuckDB per query, over each format's objects.
//      "Bytes read" stands in for Athena's data scanned: the bytes DuckDB's
//      threads read from the objects' files during the query, as the kernel
//      counts them (/proc/self/io rchar: every read()/pread() of the process).
//      DuckDB's own profiler (PRAGMA enable_profiling, total_bytes_read) counts
//      only the Parquet footers it reads for local files, not the column chunks,
//      so it is printed beside it but not used. Both formats must give the same
//      rows.
// Ends with one line `RESULT {json}`.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type NetmonConfig, type NetworkEvent, createKafka, createLogger, createS3Client, loadConfig, networkEventCodec } from '@netmon/common';
import { ArchiveQuery, ArchiveStore, start, syncArchive } from '@netmon/archiver';

const EVENTS = Number(process.argv[2] ?? process.env.NETMON_BENCH_EVENTS ?? 1_000_000);
const PARTITIONS = 4;
const QUERIES = ['connections-per-binary-per-day', 'who-talks-to-address', 'top-talkers-by-binary', 'refused-connects-per-host-per-hour', 'container-events'];
const root = path.resolve(__dirname, '../../..');
const log = createLogger('bench', 'warn');
const say = (msg: string) => process.stdout.write(`${msg}\n`);

// ---- a fleet's events, seeded ------------------------------------------------

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const BINARIES: [string, number][] = [
  ['/usr/bin/curl', 20],
  ['/usr/sbin/nginx', 18],
  ['/usr/bin/python3.11', 12],
  ['/usr/lib/jvm/java-17-openjdk-amd64/bin/java', 12],
  ['/usr/local/bin/node', 10],
  ['/usr/sbin/sshd', 6],
  ['/usr/bin/ssh', 4],
  ['/usr/lib/postgresql/16/bin/postgres', 6],
  ['/usr/bin/redis-server', 5],
  ['/usr/bin/wget', 3],
  ['/usr/lib/systemd/systemd-resolved', 2],
  ['/opt/datadog-agent/bin/agent/agent', 2],
];
const TYPES: [NetworkEvent['network_event']['type'], number][] = [
  ['TcpConnectionEstablish', 42],
  ['TcpConnectionAccept', 12],
  ['TcpConnectionClose', 45],
  ['TcpListen', 1],
];
const OUTCOMES: [NetworkEvent['connection']['outcome'], number][] = [
  ['established', 90],
  ['refused', 4],
  ['timeout', 2],
  ['reset', 2],
  ['unreachable', 1],
  ['aborted', 1],
];
const NAMES = [
  'api.example.com',
  'db.internal.example.com',
  'cdn.example.net',
  'auth.example.com',
  'mirror.example.org',
  'metrics.example.com',
  'queue.internal',
];

function pick<T>(rand: () => number, weighted: [T, number][]): T {
  const total = weighted.reduce((n, [, w]) => n + w, 0);
  let r = rand() * total;
  for (const [v, w] of weighted) {
    r -= w;
    if (r < 0) return v;
  }
  return weighted[weighted.length - 1]![0];
}

/** `count` events of a 200-host fleet over 10 minutes from 10:55 UTC, in time order. */
function* fleetEvents(count: number): Generator<NetworkEvent> {
  const rand = mulberry32(14);
  const base = Date.parse('2025-06-01T10:55:00.000Z');
  const hex = (n: number) => Array.from({ length: n }, () => Math.floor(rand() * 16).toString(16)).join('');
  const containers = Array.from({ length: 40 }, () => hex(64));
  const argsPool = Array.from({ length: 60 }, (_, i) =>
    i % 3 === 0 ? `-s https://api.example.com/v1/items/${i}` : i % 3 === 1 ? `--config /etc/app/app-${i}.yaml --port ${8000 + i}` : `worker --queue q${i}`,
  );
  const remotes = Array.from({ length: 3000 }, (_, i) => (i % 7 === 0 ? `2001:db8:${(i * 37) % 65536}::${i % 256}` : `198.51.${(i * 13) % 256}.${i % 251}`));
  for (let i = 0; i < count; i++) {
    const host = Math.floor(rand() * 200);
    const bin = pick(rand, BINARIES);
    const type = pick(rand, TYPES);
    const close = type === 'TcpConnectionClose';
    const listen = type === 'TcpListen';
    const pid = 1000 + Math.floor(rand() * 60000);
    const hot = rand() < 0.3;
    const daddr = listen ? '0.0.0.0' : i % 997 === 0 ? '203.0.113.7' : remotes[Math.floor((hot ? rand() * 0.02 : rand()) * remotes.length)]!;
    const outcome: NetworkEvent['connection']['outcome'] = close ? pick(rand, OUTCOMES) : '';
    const t = base + Math.floor((i / count) * 600_000) + Math.floor(rand() * 50);
    const hostId = `4c4c4544004e3510804bb4c04f4a${String(host).padStart(4, '0')}`;
    yield {
      type: 'NetworkEvent',
      process: {
        pid,
        tid: rand() < 0.8 ? pid : pid + 1 + Math.floor(rand() * 50),
        ppid: rand() < 0.5 ? 1 : 900 + Math.floor(rand() * 100),
        uid: rand() < 0.3 ? 0 : 1000 + Math.floor(rand() * 5),
        euid: rand() < 0.3 ? 0 : 1000,
        auid: rand() < 0.6 ? 4294967295 : 1000,
        cap_inheritable: 0,
        cap_permitted: rand() < 0.3 ? 2199023255551 : 0,
        cap_effective: rand() < 0.3 ? 2199023255551 : 0,
        secureexec: rand() < 0.01 ? 'SETUID' : '',
        filename: bin.slice(bin.lastIndexOf('/') + 1),
        binary_path: bin,
        args: argsPool[Math.floor(rand() * argsPool.length)]!,
        container_id: rand() < 0.3 ? containers[Math.floor(rand() * containers.length)]! : '',
      },
      network_event: {
        type,
        saddr: `10.${Math.floor(host / 100)}.${host % 100}.${1 + (host % 7)}`,
        daddr,
        sport: type === 'TcpConnectionAccept' || listen ? [443, 80, 22, 5432, 6379, 8080][Math.floor(rand() * 6)]! : 32768 + Math.floor(rand() * 28000),
        dport: listen
          ? 0
          : type === 'TcpConnectionAccept'
            ? 32768 + Math.floor(rand() * 28000)
            : [443, 443, 443, 80, 5432, 6379, 8443][Math.floor(rand() * 7)]!,
        cookie: 4096 + i,
      },
      timestamp: new Date(t).toISOString(),
      host: { hostname: `web-${String(host).padStart(3, '0')}.prod.example.com`, id: hostId },
      source: { run_id: `run-${host}`, seq: i },
      connection: {
        outcome,
        duration_ms: close ? Math.floor(rand() ** 3 * 600_000) : 0,
        bytes_sent: close && outcome === 'established' ? Math.floor(rand() ** 4 * 50_000_000) : 0,
        bytes_received: close && outcome === 'established' ? Math.floor(rand() ** 4 * 200_000_000) : 0,
        remote_name: !listen && rand() < 0.6 ? NAMES[Math.floor(rand() * NAMES.length)]! : '',
        netns: rand() < 0.9 ? 4026531840 : 4026532000 + Math.floor(rand() * 50),
      },
      process_key: `${hostId}:${pid}:${1748685951282000 + pid * 1000}`,
    };
  }
}

// ---- measuring ----------------------------------------------------------------

/** Bytes this process has read through read()/pread() so far (the kernel's count). */
function rchar(): number {
  return Number(/rchar:\s*(\d+)/.exec(readFileSync('/proc/self/io', 'utf8'))![1]);
}

const cpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

interface ArchiveRun {
  format: 'json' | 'parquet';
  prefix: string;
  cpuS: number;
  wallS: number;
  objects: number;
  bytes: number;
}

async function archive(base: NetmonConfig, format: 'json' | 'parquet', topic: string, id: string, dir: string, ends: Map<number, number>): Promise<ArchiveRun> {
  const groupId = `bench-athena-${format}-${id}`;
  const prefix = `bench/${id}-${format}`;
  const file = path.join(dir, `${format}.yaml`);
  writeFileSync(
    file,
    [
      `topics: { events: ${topic}, dlq: ${topic}.dlq }`,
      `s3: { prefix: ${prefix} }`,
      `archiver: { format: ${format}, group_id: ${groupId}, idle_flush_s: 1, metrics_port: 0 }`,
      '',
    ].join('\n'),
  );
  const config = loadConfig(file);
  const kafka = createKafka(base.kafka, log, 'bench');
  const admin = kafka.admin();
  await admin.connect();
  try {
    const cpu0 = cpuSeconds();
    const t0 = process.hrtime.bigint();
    const handle = await start(config, log);
    for (;;) {
      const offsets = await admin.fetchOffsets({ groupId, topics: [topic] });
      if (offsets[0]!.partitions.every((p) => Number(p.offset) >= (ends.get(p.partition) ?? 0))) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpuS = cpuSeconds() - cpu0;
    await handle.stop();
    const store = new ArchiveStore(createS3Client(config.s3), config.s3);
    const listed = (await store.list(`${format === 'parquet' ? `${prefix}-parquet` : prefix}/dt=`)).filter((o) => /\.(json\.gz|parquet)$/.test(o.key));
    store.client.destroy();
    return { format, prefix, cpuS, wallS, objects: listed.length, bytes: listed.reduce((n, o) => n + o.size, 0) };
  } finally {
    await admin.deleteGroups([groupId]).catch(() => undefined);
    await admin.disconnect();
  }
}

interface QueryFigures {
  bytesRead: number;
  duckdbBytesRead: number;
  ms: number;
  rows: string[];
}

/** One shared query over one format's mirror, in a fresh DuckDB: the bytes read from the objects. */
async function measure(dir: string, sql: string, profile: string): Promise<QueryFigures> {
  const q = await ArchiveQuery.open(dir);
  try {
    await q.connection.run('SET enable_external_file_cache = false');
    await q.connection.run("PRAGMA enable_profiling = 'json'");
    await q.connection.run(`PRAGMA profiling_output = '${profile}'`);
    const before = rchar();
    const t0 = Date.now();
    const rows = await q.jsonRows(sql);
    const ms = Date.now() - t0;
    const bytesRead = rchar() - before;
    const p = JSON.parse(readFileSync(profile, 'utf8')) as { total_bytes_read?: number };
    return { bytesRead, duckdbBytesRead: p.total_bytes_read ?? Number.NaN, ms, rows };
  } finally {
    q.close();
  }
}

const mib = (n: number) => `${(n / 1048576).toFixed(2)} MiB`;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function main(): Promise<void> {
  const id = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  const topic = `bench.athena.${id}`;
  const dir = mkdtempSync(path.join(tmpdir(), 'netmon-athena-cost-'));
  const base = loadConfig(undefined);
  const kafka = createKafka(base.kafka, log, 'bench');
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({
    waitForLeaders: true,
    topics: [
      { topic, numPartitions: PARTITIONS, replicationFactor: 1 },
      { topic: `${topic}.dlq`, numPartitions: 1, replicationFactor: 1 },
    ],
  });
  const store = new ArchiveStore(createS3Client(base.s3), base.s3);
  const runs: ArchiveRun[] = [];
  try {
    say(
      `athena-cost bench: ${EVENTS.toLocaleString('en')} events, topic ${topic} (${PARTITIONS} partitions), s3://${base.s3.bucket}/bench/${id}-{json,parquet}`,
    );
    const codec = networkEventCodec();
    const producer = kafka.producer({ allowAutoTopicCreation: false });
    await producer.connect();
    const fill0 = Date.now();
    let batch: { key: string; value: Buffer }[] = [];
    for (const ev of fleetEvents(EVENTS)) {
      batch.push({ key: ev.host.id, value: codec.encode(ev) });
      if (batch.length === 5000) {
        await producer.send({ topic, acks: 1, messages: batch });
        batch = [];
      }
    }
    if (batch.length) await producer.send({ topic, acks: 1, messages: batch });
    await producer.disconnect();
    say(`  produced in ${((Date.now() - fill0) / 1000).toFixed(1)} s`);
    const ends = new Map<number, number>();
    for (const p of await admin.fetchTopicOffsets(topic)) ends.set(p.partition, Number(p.high));

    // Parquet first: the JSON run, second, has the warmer process (a conservative ratio).
    for (const format of ['parquet', 'json'] as const) {
      const r = await archive(base, format, topic, id, dir, ends);
      runs.push(r);
      say(
        `  archiver ${format.padEnd(7)}: ${r.cpuS.toFixed(2)} CPU s, ${((r.cpuS / EVENTS) * 1e6).toFixed(2)} µs/event, ${Math.round(EVENTS / r.wallS).toLocaleString('en')} events/s wall; ${r.objects} objects, ${mib(r.bytes)}, ${(r.bytes / EVENTS).toFixed(1)} B/event`,
      );
    }
    const [pq, js] = runs as [ArchiveRun, ArchiveRun];
    const mirrors: Record<string, string> = {};
    for (const r of runs) {
      mirrors[r.format] = path.join(dir, `mirror-${r.format}`);
      await syncArchive(store, r.prefix, mirrors[r.format]!);
    }

    say('');
    say('| query | JSON bytes read | Parquet bytes read | Parquet / JSON | rows | JSON ms | Parquet ms |');
    say('| --- | --- | --- | --- | --- | --- | --- |');
    const perQuery: Record<string, { json: number; parquet: number; ratio: number; duckdb_total_bytes_read: { json: number; parquet: number } }> = {};
    for (const name of QUERIES) {
      const sql = readFileSync(path.join(root, 'infra/athena/queries', `${name}.sql`), 'utf8');
      const j = await measure(mirrors.json!, sql, path.join(dir, 'profile.json'));
      const p = await measure(mirrors.parquet!, sql, path.join(dir, 'profile.json'));
      // The same rows (in any order: ORDER BY may leave ties).
      if (JSON.stringify([...j.rows].sort()) !== JSON.stringify([...p.rows].sort()))
        throw new Error(`${name}: the formats disagree (${j.rows.length} rows from JSON, ${p.rows.length} from Parquet)`);
      const ratio = p.bytesRead / j.bytesRead;
      perQuery[name] = {
        json: j.bytesRead,
        parquet: p.bytesRead,
        ratio: Number(ratio.toFixed(4)),
        duckdb_total_bytes_read: { json: j.duckdbBytesRead, parquet: p.duckdbBytesRead },
      };
      say(`| ${name} | ${mib(j.bytesRead)} | ${mib(p.bytesRead)} | ${ratio.toFixed(3)} (1/${(1 / ratio).toFixed(0)}) | ${j.rows.length} | ${j.ms} | ${p.ms} |`);
    }
    const ratios = Object.values(perQuery).map((q) => q.ratio);
    const medianRatio = median(ratios);
    const cpuJson = (js.cpuS / EVENTS) * 1e6;
    const cpuParquet = (pq.cpuS / EVENTS) * 1e6;
    const cpuRatio = cpuParquet / cpuJson;
    say('');
    say(`  objects: JSON ${mib(js.bytes)} (${js.objects}), Parquet ${mib(pq.bytes)} (${pq.objects}); median Parquet/JSON bytes read ${medianRatio.toFixed(3)}`);
    say(`  archiver CPU per event: JSON ${cpuJson.toFixed(2)} µs, Parquet ${cpuParquet.toFixed(2)} µs (${cpuRatio.toFixed(2)}x)`);
    const result = {
      bench: 'athena-cost',
      events: EVENTS,
      partitions: PARTITIONS,
      bytes_read_by: '/proc/self/io rchar around each query (DuckDB, fresh instance per query)',
      archiver: {
        json: { cpu_s: Number(js.cpuS.toFixed(3)), cpu_us_per_event: Number(cpuJson.toFixed(2)), objects: js.objects, bytes: js.bytes },
        parquet: { cpu_s: Number(pq.cpuS.toFixed(3)), cpu_us_per_event: Number(cpuParquet.toFixed(2)), objects: pq.objects, bytes: pq.bytes },
      },
      queries: perQuery,
      targets: {
        parquet_bytes_read_median_ratio: { value: Number(medianRatio.toFixed(4)), target: 0.1, met: medianRatio <= 0.1 },
        parquet_cpu_per_event_ratio: { value: Number(cpuRatio.toFixed(3)), target: 1.5, met: cpuRatio <= 1.5 },
      },
    };
    say(`RESULT ${JSON.stringify(result)}`);
  } finally {
    await admin.deleteTopics({ topics: [topic, `${topic}.dlq`] }).catch(() => undefined);
    await admin.disconnect();
    for (const r of runs) {
      await store.deletePrefix(`${r.prefix}/`).catch(() => undefined);
      await store.deletePrefix(`${r.prefix}-parquet/`).catch(() => undefined);
    }
    store.client.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench athena-cost: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
