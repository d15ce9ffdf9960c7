// Integration tests on the real broker (KAFKA_BROKERS, else 127.0.0.1:9092):
// fresh topics and group per test, wait-until assertions, topics deleted after.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect } from 'node:net';
import { after, test as nodeTest } from 'node:test';
import {
  DLQ_HEADERS,
  type NetmonConfig,
  type NetworkEvent,
  type ProcessFilter,
  type RawRecord,
  type SensorStatusRecord,
  createKafka,
  createLogger,
  loadConfig,
  networkEventCodec,
  rawRecordCodec,
  sensorStatusCodec,
} from '@netmon/common';
import type { Admin, Consumer, IHeaders, Kafka } from 'kafkajs';
import { Enricher, start } from '../src';
import { exec, fork, socket, status, task } from './helpers';

/**
 * `npm run test:unit` runs every compiled test of the package without a
 * broker (KAFKA_BROKERS unset): skip when none answers. With KAFKA_BROKERS
 * set (npm test, CI), a missing broker is a failure.
 */
async function brokerAnswers(): Promise<boolean> {
  if (process.env.KAFKA_BROKERS || process.env.NETMON_KAFKA_BROKERS) return true;
  const [host, port] = (base.kafka.brokers[0] ?? '127.0.0.1:9092').split(':') as [string, string];
  return new Promise((resolve) => {
    const s = connect({ host, port: Number(port), timeout: 1000 });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
    s.once('timeout', () => {
      s.destroy();
      resolve(false);
    });
  });
}
let answers: Promise<boolean> | undefined;
const test = (name: string, fn: () => Promise<void>) =>
  nodeTest(name, async (t) => {
    answers ??= brokerAnswers();
    if (!(await answers)) return t.skip('no Kafka broker (set KAFKA_BROKERS or run ./bin/netmon.js stack up)');
    await fn();
  });

const logger = createLogger('enricher-test', process.env.NETMON_TEST_LOG_LEVEL ?? 'warn');
const base = loadConfig(undefined);
const kafka: Kafka = createKafka(base.kafka, logger, 'enricher-test');
let admin: Admin | undefined;
const cleanups: Array<() => Promise<void>> = [];

after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  await admin?.disconnect();
});

async function getAdmin(): Promise<Admin> {
  if (!admin) {
    admin = kafka.admin();
    await admin.connect();
  }
  return admin;
}

interface Env {
  config: NetmonConfig;
  produce(records: Array<RawRecord | Buffer>): Promise<void>;
  events(): Consumed<NetworkEvent>;
  dlq(): Consumed<{ value: Buffer; headers: IHeaders }>;
  /** The status topic's SensorStatus records. */
  statuses(): Consumed<SensorStatusRecord>;
}

interface Consumed<T> {
  items: T[];
  waitFor(n: number, timeoutMs?: number): Promise<T[]>;
}

async function waitUntil(what: string, cond: () => boolean, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Fresh topics and group; everything deleted after the file. */
async function environment(
  name: string,
  over: { filter?: ProcessFilter | null; exactlyOnce?: boolean; processWaitMs?: number; partitions?: number } = {},
): Promise<Env> {
  const id = `${name}-${randomUUID().slice(0, 8)}`;
  const config: NetmonConfig = {
    ...base,
    topics: { raw: `t.${id}.raw`, events: `t.${id}.events`, dlq: `t.${id}.dlq`, status: `t.${id}.status`, partitions: over.partitions ?? 3 },
    enricher: { groupId: `g-${id}`, exactlyOnce: over.exactlyOnce ?? true, processWaitMs: over.processWaitMs ?? 500, metricsPort: 0 },
    processFilter: over.filter ?? null,
  };
  const a = await getAdmin();
  await a.createTopics({
    topics: [config.topics.raw, config.topics.events, config.topics.dlq, config.topics.status].map((topic) => ({
      topic,
      numPartitions: config.topics.partitions,
      replicationFactor: 1,
    })),
    waitForLeaders: true,
  });
  cleanups.push(async () => {
    await a
      .deleteTopics({ topics: [config.topics.raw, config.topics.events, config.topics.dlq, config.topics.status, `${config.enricher.groupId}.state`] })
      .catch(() => {});
    await a.deleteGroups([config.enricher.groupId]).catch(() => {});
  });
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  cleanups.push(() => producer.disconnect());
  const codec = rawRecordCodec();
  const consume = async <T>(topic: string, map: (m: { value: Buffer | null; headers?: IHeaders }) => T): Promise<Consumed<T>> => {
    const consumer: Consumer = kafka.consumer({ groupId: `reader-${randomUUID()}`, readUncommitted: false, maxWaitTimeInMs: 100 });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const items: T[] = [];
    await consumer.run({ eachMessage: async ({ message }) => void items.push(map(message)) });
    cleanups.push(() => consumer.disconnect());
    return {
      items,
      waitFor: async (n, timeoutMs = 60_000) => {
        await waitUntil(`${n} records on ${topic} (have ${items.length})`, () => items.length >= n, timeoutMs);
        return items;
      },
    };
  };
  const eventCodec = networkEventCodec();
  let eventsC: Consumed<NetworkEvent> | undefined;
  let dlqC: Consumed<{ value: Buffer; headers: IHeaders }> | undefined;
  eventsC = await consume(config.topics.events, (m) => eventCodec.decode(m.value!));
  dlqC = await consume(config.topics.dlq, (m) => ({ value: m.value!, headers: m.headers ?? {} }));
  const statusCodec = sensorStatusCodec();
  const statusC = await consume(config.topics.status, (m) => statusCodec.decode(m.value!));
  return {
    config,
    produce: async (records) => {
      const messages = records.map((r) => (Buffer.isBuffer(r) ? { key: 'garbage', value: r } : { key: r.host_id, value: codec.encode(r) }));
      for (let i = 0; i < messages.length; i += 5000) await producer.send({ topic: config.topics.raw, messages: messages.slice(i, i + 5000), acks: -1 });
    },
    events: () => eventsC!,
    dlq: () => dlqC!,
    statuses: () => statusC,
  };
}

const HOSTS = ['host-a', 'host-b', 'host-c', 'host-d', 'host-e'].map((h) => ({ host_id: `${h}-0000000000000000000000000000`.slice(0, 32), hostname: h }));

/** A stream: per host, processes exec early, then connections, some before their exec. */
function workload(perHost: number, seqBase = 0, execs = true): RawRecord[] {
  const out: RawRecord[] = [];
  for (let i = 0; i < perHost; i++) {
    HOSTS.forEach((h, hi) => {
      const t = task(1000 + (i % 20), 50_000_000 + (i % 20) * 10_000, { comm: `w${i % 20}`, uid: 1000 + (i % 3) });
      const over = { ...h, seq: seqBase + i, time_us: 1748685951282000 + (seqBase + i) * 1000, run_id: `run-${hi}` };
      if (execs && i < 20) out.push(exec(t, `/usr/bin/worker-${i % 20}`, ['--n', String(i)], [], i % 2 === 0, over));
      else out.push(socket(t, (['ESTABLISH', 'ACCEPT', 'CLOSE'] as const)[i % 3], over, { cookie: seqBase + i }));
    });
  }
  return out;
}

/** What the library gives for the same input: the expected output. */
function expected(records: RawRecord[], filter: ProcessFilter | null = null): NetworkEvent[] {
  const out: NetworkEvent[] = [];
  const e = new Enricher({ processWaitMs: 60_000, filter }, { event: (ev) => out.push(ev) });
  for (const [i, r] of records.entries()) e.push(r, i, 0);
  e.expire(Number.POSITIVE_INFINITY);
  return out;
}

function byHost(events: NetworkEvent[]): Map<string, NetworkEvent[]> {
  const m = new Map<string, NetworkEvent[]>();
  for (const ev of events) {
    const list = m.get(ev.host.id) ?? [];
    list.push(ev);
    m.set(ev.host.id, list);
  }
  return m;
}

/** Exactly the expected events: none missing, none twice, each host in order. */
function assertExactly(got: NetworkEvent[], want: NetworkEvent[]): void {
  // Plain objects on both sides (the codec decodes to class instances).
  const g = byHost(JSON.parse(JSON.stringify(got)) as NetworkEvent[]);
  const w = byHost(JSON.parse(JSON.stringify(want)) as NetworkEvent[]);
  assert.deepEqual([...g.keys()].sort(), [...w.keys()].sort());
  for (const [host, list] of w) assert.deepEqual(g.get(host), list, `host ${host}`);
  assert.equal(got.length, want.length);
}

test('raw records in → exactly the expected NetworkEvents, in order per host', async () => {
  const env = await environment('basic');
  const handle = await start(env.config, logger, { metrics: false });
  cleanups.push(() => handle.stop());
  const t = task(4242, 987_650_000, { comm: 'curl', uid: 1000, euid: 0, cgroup_path: `/system.slice/docker-${'ab'.repeat(32)}.scope` });
  const h = HOSTS[0]!;
  const records = [
    socket(t, 'ESTABLISH', { ...h, seq: 0 }), // before its exec: waits for it
    exec(t, '/usr/bin/curl', ['-6', 'google.com'], ['SETUID'], false, { ...h, seq: 1 }),
    socket(t, 'CLOSE', { ...h, seq: 2 }),
    status({ ...h, seq: 3 }),
    socket(task(7, 1, { comm: 'stranger' }), 'ACCEPT', { ...h, seq: 4 }), // never known: out after the wait
    ...workload(40),
  ];
  await env.produce(records);
  const want = expected(records);
  const got = await env.events().waitFor(want.length);
  await new Promise((r) => setTimeout(r, 500)); // nothing more may come
  assertExactly(got, want);
  const first = got.find((e) => e.host.id === h.host_id)!;
  assert.equal(first.process.binary_path, '/usr/bin/curl');
  assert.equal(first.process.secureexec, 'SETUID');
  assert.equal(first.process.container_id, 'ab'.repeat(32));
  assert.equal(first.timestamp.endsWith('Z'), true);
  assert.equal(got.find((e) => e.source.seq === 4 && e.host.id === h.host_id)!.process.filename, 'stranger');
  await handle.stop();
});

test('allow list, then deny list after a reload', async () => {
  const allow: ProcessFilter = { denyList: false, uid: [1000], euid: [], auid: [], binary: { name: ['worker-3'], path: [], prefix: ['/usr/bin/worker-1'] } };
  const env = await environment('filter', { filter: allow });
  const handle = await start(env.config, logger, { metrics: false });
  cleanups.push(() => handle.stop());
  const first = workload(60);
  await env.produce(first);
  const wantAllow = expected(first, allow);
  assert.ok(wantAllow.length > 0 && wantAllow.length < expected(first).length);
  await env.events().waitFor(wantAllow.length);
  await waitUntil('the batch committed', () => handle.counters().records >= first.length);
  const deny = { ...allow, denyList: true };
  handle.reload({ ...env.config, processFilter: deny });
  const second = workload(60, 1000, false);
  await env.produce(second);
  const wantDeny = expected([...first, ...second], deny).filter((e) => e.source.seq >= 1000);
  const got = await env.events().waitFor(wantAllow.length + wantDeny.length);
  await new Promise((r) => setTimeout(r, 500));
  assertExactly(got, [...wantAllow, ...wantDeny]);
  for (const e of got.filter((x) => x.source.seq < 1000))
    assert.ok(e.process.uid === 1000 && (e.process.filename === 'worker-3' || e.process.binary_path.startsWith('/usr/bin/worker-1')));
  for (const e of got.filter((x) => x.source.seq >= 1000))
    assert.ok(!(e.process.uid === 1000 && (e.process.filename === 'worker-3' || e.process.binary_path.startsWith('/usr/bin/worker-1'))));
  await handle.stop();
});

test('garbage bytes → DLQ with the original bytes and headers; the next records still flow', async () => {
  const env = await environment('dlq', { partitions: 1 });
  const handle = await start(env.config, logger, { metrics: false });
  cleanups.push(() => handle.stop());
  const garbage = Buffer.from('this is not avro');
  const h = HOSTS[1]!;
  const badAddress = socket(task(1, 1), 'ESTABLISH', { ...h, seq: 0 }, { family: 'INET6' }); // 4-byte addresses on INET6
  const records = workload(10);
  await env.produce([garbage, badAddress, ...records]);
  const dl = await env.dlq().waitFor(2);
  assert.deepEqual(dl[0]!.value, garbage);
  assert.equal(String(dl[0]!.headers[DLQ_HEADERS.reason]), 'bad-magic');
  assert.equal(String(dl[0]!.headers[DLQ_HEADERS.sourceTopic]), env.config.topics.raw);
  assert.equal(String(dl[0]!.headers[DLQ_HEADERS.sourcePartition]), '0');
  assert.equal(String(dl[0]!.headers[DLQ_HEADERS.sourceOffset]), '0');
  assert.equal(String(dl[1]!.headers[DLQ_HEADERS.reason]), 'contract');
  assert.equal(String(dl[1]!.headers[DLQ_HEADERS.sourceOffset]), '1');
  assert.deepEqual(rawRecordCodec().decode(dl[1]!.value).seq, 0);
  const want = expected(records);
  assertExactly(await env.events().waitFor(want.length), want);
  await handle.stop();
});

test('fork children carry their parent program; a flood of bad records is dead-lettered, logged once; a restart keeps fork entries', async () => {
  const env = await environment('fork', { partitions: 1, processWaitMs: 500 });
  const lines: string[] = [];
  const capture = createLogger('enricher-test', 'warn', { write: (line: string) => void lines.push(line) });
  let handle = await start(env.config, capture, { metrics: false });
  cleanups.push(() => handle.stop());
  const h = HOSTS[2]!;
  const at = (seq: number) => ({ ...h, seq, time_us: 1748685951282000 + seq * 1000 });
  const master = task(100, 1_000_000, { comm: 'nginx', uid: 0, euid: 0, ktime_us: 1_000_000 });
  const worker = task(101, 9_000_000, { comm: 'nginx', ppid: 100, uid: 33, euid: 33, ktime_us: 9_000_000 });
  const java = task(102, 9_500_000, { comm: 'java', ktime_us: 9_500_000 });
  const javaExec = exec(java, '/usr/bin/java', ['-cp', 'a.jar:b'], [], false, at(205));
  (javaExec.payload as { 'netmon.raw.ProcessExec': { args_truncated: boolean } })['netmon.raw.ProcessExec'].args_truncated = true;
  const bad = Array.from({ length: 200 }, (_, i) =>
    socket({ ...worker, ktime_us: 9_000_100 }, 'ESTABLISH', at(3 + i), {
      family: 'INET6',
      saddr: Buffer.from([10, 0, 0, 1]),
      daddr: Buffer.from([10, 0, 0, i]),
    }),
  );
  await env.produce([
    exec(master, '/usr/sbin/nginx', ['-g', 'daemon off;'], ['SETUID'], false, at(0)),
    socket({ ...worker, ktime_us: 9_000_050 }, 'ACCEPT', at(1)), // before its fork record: waits for it
    fork(worker, 100, 1_000_000, at(2)),
    ...bad,
    socket({ ...worker, ktime_us: 9_000_200 }, 'CLOSE', at(204)),
    javaExec,
    socket({ ...java, ktime_us: 9_500_100 }, 'ESTABLISH', at(206)),
  ]);
  const got = await env.events().waitFor(3);
  assert.deepEqual(
    got.map((e) => [e.source.seq, e.process.pid, e.process.uid, e.process.filename, e.process.binary_path, e.process.args, e.process.secureexec]),
    [
      [1, 101, 33, 'nginx', '/usr/sbin/nginx', '-g daemon off;', 'SETUID'],
      [204, 101, 33, 'nginx', '/usr/sbin/nginx', '-g daemon off;', 'SETUID'],
      [206, 102, 1000, 'java', '/usr/bin/java', '-cp a.jar:b\u2026', ''],
    ],
  );
  const dl = await env.dlq().waitFor(200);
  assert.ok(dl.every((d) => String(d.headers[DLQ_HEADERS.reason]) === 'contract'));
  assert.match(String(dl[0]!.headers[DLQ_HEADERS.detail]), /INET6 addresses of 4 and 4 bytes, expected 16/);
  await waitUntil('the counters', () => handle.counters().fork === 1 && handle.counters().rejected === 200);
  const logged = lines.filter((l) => l.includes('record dead-lettered'));
  assert.equal(logged.length, 1, 'one log line for 200 records of one reason');
  assert.match(logged[0]!, /INET6 addresses of 4 and 4 bytes, expected 16/);
  await handle.stop();

  // A new instance restores the table from the changelog: the worker is
  // still known (no wait, its parent program), its parent's exec long gone.
  handle = await start(env.config, logger, { metrics: false });
  cleanups.push(() => handle.stop());
  await env.produce([socket({ ...worker, ktime_us: 9_900_000 }, 'CLOSE', at(300))]);
  const after = await env.events().waitFor(4);
  assert.deepEqual([after[3]!.source.seq, after[3]!.process.binary_path], [300, '/usr/sbin/nginx']);
  assert.equal(handle.counters().unknown, 0);
  assert.equal(handle.counters().waited, 0);
  await handle.stop();
});

function configFile(config: NetmonConfig, dir: string): string {
  const file = path.join(dir, 'netmon.yaml');
  writeFileSync(
    file,
    [
      `log: { level: warn }`,
      `kafka: { brokers: [${config.kafka.brokers.join(', ')}] }`,
      `topics: { raw: ${config.topics.raw}, events: ${config.topics.events}, dlq: ${config.topics.dlq}, status: ${config.topics.status}, partitions: ${config.topics.partitions} }`,
      `enricher: { group_id: ${config.enricher.groupId}, exactly_once: ${config.enricher.exactlyOnce}, process_wait_ms: ${config.enricher.processWaitMs}, metrics_port: 0 }`,
      '',
    ].join('\n'),
  );
  return file;
}

function spawnEnricher(file: string): ChildProcess {
  const main = path.resolve(__dirname, '../src/main.js');
  const child = spawn(process.execPath, [main, '--config', file], {
    stdio: ['ignore', 'ignore', 'pipe'],
    // Batches read in parts of 100 messages: killed between parts too.
    env: { ...process.env, KAFKA_BROKERS: base.kafka.brokers.join(','), NETMON_ENRICHER_READ_AHEAD: '100' },
  });
  child.stderr!.on('data', (d: Buffer) => {
    if (process.env.NETMON_TEST_LOG_LEVEL) process.stderr.write(d);
  });
  cleanups.push(async () => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  return child;
}

test('kill -9 mid-stream, restart: every expected event and every status record exactly once under read_committed', async () => {
  const env = await environment('kill9', { processWaitMs: 300 });
  const dir = mkdtempSync(path.join(tmpdir(), 'enricher-'));
  cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
  const file = configFile(env.config, dir);
  // 40,000 records, 5 hosts; every 500th of a host a sensor status record (80 in all)
  const records = workload(8000).map((r) =>
    r.seq % 500 === 250 ? status({ host_id: r.host_id, hostname: r.hostname, run_id: r.run_id, seq: r.seq, time_us: r.time_us }) : r,
  );
  const wantStatuses = records.filter((r) => 'netmon.raw.SensorStatus' in r.payload).map((r) => `${r.hostname}/${r.seq}`);
  assert.equal(wantStatuses.length, 80);
  const want = expected(records);
  let child = spawnEnricher(file);
  await env.produce(records.slice(0, 20_000));
  const events = env.events();
  await events.waitFor(2000, 90_000);
  await env.produce(records.slice(20_000, 30_000));
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  const atKill = events.items.length;
  assert.ok(atKill < want.length, `killed mid-stream (${atKill} of ${want.length})`);
  await env.produce(records.slice(30_000));
  child = spawnEnricher(file);
  const got = await events.waitFor(want.length, 120_000);
  const statuses = await env.statuses().waitFor(wantStatuses.length, 60_000);
  await new Promise((r) => setTimeout(r, 1500));
  assertExactly(got, want);
  const byHostThenSeq = (a: string, b: string) => {
    const [ha, sa] = a.split('/');
    const [hb, sb] = b.split('/');
    return ha === hb ? Number(sa) - Number(sb) : ha! < hb! ? -1 : 1;
  };
  const gotStatuses = statuses.map((x) => `${x.host.hostname}/${x.source.seq}`);
  assert.deepEqual([...gotStatuses].sort(byHostThenSeq), [...wantStatuses].sort(byHostThenSeq), 'every status record once');
  for (const h of HOSTS) {
    const seqs = statuses.filter((x) => x.host.id === h.host_id).map((x) => x.source.seq);
    assert.deepEqual(
      seqs,
      [...seqs].sort((a, b) => a - b),
      `${h.hostname}: its status records in order`,
    );
  }
  // Processes that exec'd before the restart are still attributed.
  assert.ok(got.slice(-100).every((e) => e.process.binary_path.startsWith('/usr/bin/worker-')));
  child.kill('SIGTERM');
  const code = await new Promise((r) => child.once('exit', (c) => r(c)));
  assert.equal(code, 0, 'clean exit on SIGTERM');
});

test('a second instance joins mid-stream: exactly once, order per host, state restored', async () => {
  const env = await environment('join', { partitions: 4 });
  const records = workload(6000); // 30,000
  const want = expected(records);
  // Batches read in parts: a rebalance comes between parts too.
  const a = await start(env.config, logger, { metrics: false, readAheadMessages: 50 });
  cleanups.push(() => a.stop());
  await env.produce(records.slice(0, 12_000));
  const events = env.events();
  await events.waitFor(3000, 90_000);
  const b = await start(env.config, logger, { metrics: false, readAheadMessages: 50 });
  cleanups.push(() => b.stop());
  await env.produce(records.slice(12_000));
  const got = await events.waitFor(want.length, 120_000);
  await new Promise((r) => setTimeout(r, 1500));
  assertExactly(got, want);
  assert.ok(got.slice(-100).every((e) => e.process.binary_path.startsWith('/usr/bin/worker-')));
  await waitUntil('both instances own partitions', () => b.counters().records > 0 || a.counters().records > 0);
  await Promise.all([a.stop(), b.stop()]);
});
