// Benchmark of the enricher through the real broker, in one run:
//   eos   raw in → enriched out, exactly once (transactions), one instance
//   alo   the same, at least once
//   kcat  Debian's kcat consuming the same raw topic and producing every
//         record to another topic (kcat -C | kcat -P): the broker-bound limit
// The raw topic is filled first (NETMON_BENCH_RECORDS, default 1,000,000 as
// the archiver's benchmark: at 300,000 the one-off start-up was a fifth of
// the time measured; 200 hosts, a process table of 50 programs each, 1 in 40
// records a process record), then each variant reads it all from a fresh
// group. Rates are records (kcat) or events (enricher) per second of wall
// time; "per core" is events per second of this process's CPU time (user +
// system) while the enricher ran, the workload freed and a full GC done
// before, so that the figure is the enricher's alone. Each run also reports
// its main thread's CPU time (the rest is V8's GC helpers and librdkafka's
// threads) and how long it took to the first event (topics, transactional
// id, group join).
// NETMON_BENCH_PACK packs records per message as sensors do (default 1);
// NETMON_BENCH_ONLY=eos|alo runs one variant alone, with its CPU time per
// thread and no RESULT line (for profiling); BENCH_LOG_LEVEL=info shows the
// enricher's logs. Ends with `RESULT {json}`.
import { execFileSync, spawnSync } from 'node:child_process';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { randomUUID } from 'node:crypto';
import { NO_SOCKET_FACTS, type NetmonConfig, type RawRecord, createKafka, createLogger, loadConfig, rawRecordCodec } from '@netmon/common';
import { start } from '@netmon/enricher';
import { cpuByThreadName, mainThreadCpuSeconds } from './_threads';
import type { Admin, Message } from 'kafkajs';

const RECORDS = Number(process.env.NETMON_BENCH_RECORDS ?? 1_000_000);
/**
 * Raw records per Kafka message (NETMON_BENCH_PACK, default 1). A sensor packs
 * what it read in one linger (20 ms) into one message, up to 4096 records:
 * 1 is a fleet of quiet hosts, the enricher's worst case per record; a busy
 * host's messages hold tens to thousands.
 */
const PACK = Number(process.env.NETMON_BENCH_PACK ?? 1);
const HOSTS = 200;
const PARTITIONS = 4;
const DELIM = '\u001eNETMON-KCAT-RECORD-END\u001e';
/** NETMON_BENCH_ONLY=eos (or alo): that variant alone, for profiling runs (no kcat, no RESULT). */
const ONLY = process.env.NETMON_BENCH_ONLY;

/** A DNS response (UDP payload) answering `name` with one A record. */
function dnsAnswer(name: string, ipv4: number[], ttl: number): Buffer {
  const qname = Buffer.concat([...name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0])]);
  const header = Buffer.from([0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
  const question = Buffer.concat([qname, Buffer.from([0, 1, 0, 1])]);
  const answer = Buffer.from([0xc0, 12, 0, 1, 0, 1, ttl >>> 24, (ttl >>> 16) & 255, (ttl >>> 8) & 255, ttl & 255, 0, 4, ...ipv4]);
  return Buffer.concat([header, question, answer]);
}

const NETNS = 4026531840;
const REMOTE_V4 = [93, 184, 216, 34];
const DNS_PAYLOAD = dnsAnswer('www.example.com', REMOTE_V4, 300);

/**
 * Raw records as sensors send them with NetworkEvent v2's facts on: exec
 * records, socket records with netns and (on closes) outcome facts and byte
 * counts, and a DNS answer for the remote address every 30 records, so the
 * DNS cache is fed and looked up on every connection.
 */
function workload(n: number): RawRecord[] {
  const out: RawRecord[] = [];
  const t0 = 1748685951282000;
  for (let i = 0; i < n; i++) {
    const h = i % HOSTS;
    const k = Math.floor(i / HOSTS);
    const proc = k % 50;
    const task = {
      pid: 1000 + proc,
      tid: 1000 + proc,
      ppid: 1,
      uid: 1000,
      euid: 1000,
      auid: 1000,
      cap_inheritable: 0,
      cap_permitted: 0,
      cap_effective: 0,
      comm: `worker-${proc}`,
      cgroup_id: 4242,
      cgroup_path: proc % 2 ? `/system.slice/docker-${(proc * 7919).toString(16).padStart(64, '0')}.scope` : '/system.slice/app.service',
      start_time_us: 10_000_000 + proc * 10_000,
      ktime_us: 20_000_000 + k,
    };
    const base = { host_id: `${h.toString(16).padStart(32, '0')}`, hostname: `host-${h}`, run_id: `run-${h}`, seq: k, time_us: t0 + k * 100 };
    if (k >= 50 && k % 30 === 1) {
      out.push({ ...base, payload: { 'netmon.raw.DnsResponse': { netns: NETNS, transport: 'UDP', payload: DNS_PAYLOAD, truncated: false } } });
    } else if (k < 50 || k % 40 === 0) {
      out.push({
        ...base,
        payload: {
          'netmon.raw.ProcessExec': {
            task,
            snapshot: k < 50,
            binary_path: `/usr/bin/worker-${proc}`,
            args: ['--id', String(proc), '--verbose'],
            args_truncated: false,
            secureexec: [],
          },
        },
      });
    } else {
      out.push({
        ...base,
        payload: {
          'netmon.raw.SocketEvent': {
            kind: (['ESTABLISH', 'ACCEPT', 'CLOSE'] as const)[k % 3]!,
            task,
            family: k % 2 ? 'INET' : 'INET6',
            saddr: k % 2 ? Buffer.from([10, 0, h >> 8, h & 255]) : Buffer.from('20010db8000000000000000000000001', 'hex'),
            daddr: k % 2 ? Buffer.from(REMOTE_V4) : Buffer.from('2a00145040100c08000000000000008b', 'hex'),
            sport: 30000 + (k % 30000),
            dport: 443,
            cookie: i,
            ...NO_SOCKET_FACTS,
            netns: NETNS,
            ...(k % 3 === 2 ? { opened_ktime_us: task.ktime_us - 1500, handshake: true, state: 1, bytes_acked: 5000 + k, bytes_received: 1 << 20 } : {}),
          },
        },
      });
    }
  }
  return out;
}

/** Each host's records back to back, `per` to a message, as its sensor packs them; messages in the order of their first record. */
function pack(records: readonly RawRecord[], encode: (r: RawRecord) => Buffer, per: number): Message[] {
  const open = new Map<string, { first: number; parts: Buffer[] }>();
  const out: Array<{ first: number; message: Message }> = [];
  const close = (hostId: string, o: { first: number; parts: Buffer[] }) => {
    out.push({ first: o.first, message: { key: hostId, value: o.parts.length === 1 ? o.parts[0]! : Buffer.concat(o.parts) } });
    open.delete(hostId);
  };
  records.forEach((r, i) => {
    let o = open.get(r.host_id);
    if (!o) {
      o = { first: i, parts: [] };
      open.set(r.host_id, o);
    }
    o.parts.push(encode(r));
    if (o.parts.length >= per) close(r.host_id, o);
  });
  for (const [hostId, o] of open) close(hostId, o);
  return out.sort((a, b) => a.first - b.first).map((x) => x.message);
}

async function waitCommitted(admin: Admin, groupId: string, topic: string, ends: Map<number, number>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await admin.fetchOffsets({ groupId, topics: [topic] });
    const done = res[0]!.partitions.every((p) => Number(p.offset) >= (ends.get(p.partition) ?? 0));
    if (done) return;
    if (Date.now() > deadline) throw new Error(`group ${groupId} did not finish in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A full GC now, so that the enricher's run does not pay for what came before it (the workload, the previous run). */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

interface Run {
  events: number;
  seconds: number;
  /** Of seconds, those before the first event was out. */
  startup_seconds: number;
  cpu_seconds: number;
  /** Of cpu_seconds, the JavaScript thread's. */
  main_thread_cpu_seconds: number;
  events_per_s: number;
  events_per_s_per_core: number;
}

async function runEnricher(
  base: NetmonConfig,
  raw: string,
  exactlyOnce: boolean,
  ends: Map<number, number>,
  admin: Admin,
  expectedEvents: number,
): Promise<Run> {
  const id = randomUUID().slice(0, 8);
  const config: NetmonConfig = {
    ...base,
    log: { level: 'warn' },
    topics: { raw, events: `bench.${id}.events`, dlq: `bench.${id}.dlq`, status: `bench.${id}.status`, partitions: PARTITIONS },
    enricher: { groupId: `bench-${id}`, exactlyOnce, processWaitMs: 2000, metricsPort: 0 },
    processFilter: null,
  };
  await admin.createTopics({
    topics: [config.topics.events, config.topics.dlq, config.topics.status].map((topic) => ({ topic, numPartitions: PARTITIONS, replicationFactor: 1 })),
    waitForLeaders: true,
  });
  collectGarbage();
  const cpu0 = process.cpuUsage();
  const main0 = mainThreadCpuSeconds();
  const threads0 = ONLY ? cpuByThreadName() : {};
  const t0 = process.hrtime.bigint();
  const handle = await start(config, createLogger('enricher-bench', process.env.BENCH_LOG_LEVEL || 'warn'), { metrics: false, concurrency: PARTITIONS });
  // When the first event went out: the part of `seconds` spent starting
  // (topics, transactional id, group join, fencing), which kcat, reading
  // its partitions without a group, does not have.
  let firstOut: bigint | undefined;
  const watch = setInterval(() => {
    if (handle.counters().out === 0) return;
    firstOut = process.hrtime.bigint();
    clearInterval(watch);
  }, 10);
  await waitCommitted(admin, config.enricher.groupId, raw, ends, 600_000).finally(() => clearInterval(watch));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const startup = firstOut === undefined ? seconds : Number(firstOut - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  const mainCpu = mainThreadCpuSeconds() - main0;
  if (ONLY) {
    const threads = cpuByThreadName();
    for (const [name, s] of Object.entries(threads)) threads[name] = Number((s - (threads0[name] ?? 0)).toFixed(2));
    console.log(`window ${t0 / 1000n} ${process.hrtime.bigint() / 1000n} µs; CPU seconds by thread:`, JSON.stringify(threads));
  }
  const events = handle.counters().out;
  await handle.stop();
  await admin.deleteTopics({ topics: [config.topics.events, config.topics.dlq, config.topics.status, `${config.enricher.groupId}.state`] }).catch(() => {});
  await admin.deleteGroups([config.enricher.groupId]).catch(() => {});
  if (events !== expectedEvents) throw new Error(`${exactlyOnce ? 'eos' : 'alo'}: ${events} events out, expected ${expectedEvents}`);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  return {
    events,
    seconds,
    startup_seconds: Number(startup.toFixed(2)),
    cpu_seconds: cpuSeconds,
    main_thread_cpu_seconds: Number(mainCpu.toFixed(2)),
    events_per_s: events / seconds,
    events_per_s_per_core: events / cpuSeconds,
  };
}

function report(name: string, r: Run): string {
  return `${name.padEnd(6)} ${r.events_per_s.toFixed(0).padStart(8)} events/s   ${r.events_per_s_per_core.toFixed(0).padStart(8)} events/s per core  (${r.seconds.toFixed(2)} s, ${r.startup_seconds.toFixed(2)} s of it to the first event; ${r.cpu_seconds.toFixed(2)} s CPU, ${r.main_thread_cpu_seconds.toFixed(2)} s of it the main thread's)`;
}

function runKcat(brokers: string, raw: string, out: string, records: number): { records: number; seconds: number; cpu_seconds: number; records_per_s: number } {
  const script = `TIMEFORMAT='%R %U %S'; time ( kcat -C -b "$B" -t "$RAW" -o beginning -e -q -f '%s${DELIM}' | kcat -P -b "$B" -t "$OUT" -D '${DELIM}' -X linger.ms=5 ) 2>&1 >/dev/null`;
  const r = spawnSync('bash', ['-c', script], { env: { ...process.env, B: brokers, RAW: raw, OUT: out }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`kcat failed: ${r.stderr}${r.stdout}`);
  const line = (r.stdout + r.stderr).trim().split('\n').pop()!;
  const [real, user, sys] = line.split(' ').map(Number) as [number, number, number];
  return { records, seconds: real, cpu_seconds: user + sys, records_per_s: records / real };
}

/** Writes the workload to the raw topic; returns the records' count, the socket records' count and the partitions' end offsets. */
async function fillRaw(
  kafka: ReturnType<typeof createKafka>,
  admin: Admin,
  raw: string,
): Promise<{ records: number; expectedEvents: number; ends: Map<number, number> }> {
  const records = workload(RECORDS);
  const codec = rawRecordCodec();
  const messages = pack(records, (r) => codec.encode(r), PACK);
  const rawBytes = messages.reduce((n, m) => n + (m.value as Buffer).length, 0);
  if (messages.some((m) => (m.value as Buffer).includes(DELIM))) throw new Error('the kcat delimiter occurs in the data');
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const tFill = Date.now();
  // Requests of at most 4000 messages and ~768 KiB (kafkajs puts a partition's messages in one batch, limited to 1 MiB).
  for (let i = 0; i < messages.length; ) {
    let j = i;
    for (let bytes = 0; j < messages.length && j - i < 4000 && bytes < 768 * 1024; j++) bytes += (messages[j]!.value as Buffer).length;
    await producer.send({ topic: raw, messages: messages.slice(i, j), acks: -1 });
    i = j;
  }
  await producer.disconnect();
  const offsets = await admin.fetchTopicOffsets(raw);
  const ends = new Map(offsets.map((o) => [o.partition, Number(o.high)]));
  const expectedEvents = records.filter((r) => 'netmon.raw.SocketEvent' in r.payload).length;
  console.log(
    `raw: ${records.length} records (${expectedEvents} socket) in ${messages.length} messages, ${(rawBytes / records.length).toFixed(0)} B avg, ${HOSTS} hosts, ${PARTITIONS} partitions, filled in ${((Date.now() - tFill) / 1000).toFixed(1)} s`,
  );
  return { records: records.length, expectedEvents, ends };
}

async function main(): Promise<void> {
  const base = loadConfig(undefined);
  const logger = createLogger('enricher-bench', 'warn');
  const kafka = createKafka(base.kafka, logger, 'enricher-bench');
  const admin = kafka.admin();
  await admin.connect();
  const id = randomUUID().slice(0, 8);
  const raw = `bench.${id}.raw`;
  const kcatOut = `bench.${id}.kcat`;
  await admin.createTopics({ topics: [raw, kcatOut].map((topic) => ({ topic, numPartitions: PARTITIONS, replicationFactor: 1 })), waitForLeaders: true });
  try {
    // The workload lives only while it is written: kept alive, its records
    // (hundreds of MB) would be marked by every full GC of the enricher's run
    // and charged to its CPU time.
    const { records, expectedEvents, ends } = await fillRaw(kafka, admin, raw);

    if (ONLY) {
      const run = await runEnricher(base, raw, ONLY === 'eos', ends, admin, expectedEvents);
      console.log(report(ONLY, run));
      return;
    }
    const kcatVersion = execFileSync('kcat', ['-V'], { encoding: 'utf8' }).split('\n')[0];
    const kcat = runKcat(base.kafka.brokers.join(','), raw, kcatOut, records);
    console.log(
      `kcat   ${kcat.records_per_s.toFixed(0).padStart(8)} records/s  (${kcat.seconds.toFixed(2)} s, ${kcat.cpu_seconds.toFixed(2)} s CPU; ${kcatVersion})`,
    );
    const eos = await runEnricher(base, raw, true, ends, admin, expectedEvents);
    console.log(report('eos', eos));
    const alo = await runEnricher(base, raw, false, ends, admin, expectedEvents);
    console.log(report('alo', alo));

    const ratio = eos.events_per_s / kcat.records_per_s;
    const result = {
      bench: 'enricher',
      records,
      records_per_message: PACK,
      events: expectedEvents,
      hosts: HOSTS,
      partitions: PARTITIONS,
      eos,
      alo,
      kcat,
      targets: {
        eos_events_per_s_per_core: { value: Math.round(eos.events_per_s_per_core), target: 75_000, met: eos.events_per_s_per_core >= 75_000 },
        ratio_to_kcat: { value: Number(ratio.toFixed(3)), target: 0.3, met: ratio >= 0.3 },
      },
    };
    process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  } finally {
    await admin.deleteTopics({ topics: [raw, kcatOut] }).catch(() => {});
    await admin.disconnect();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
