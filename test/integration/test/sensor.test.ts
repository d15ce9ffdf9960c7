// The sensor as users run it: `netmon sensor` as a separate process, on the real
// kernel, publishing to the real broker. Its records are read back from Kafka.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import {
  DEFAULT_BROKERS,
  type ProcessExec,
  type RawRecord,
  type SensorStatus,
  type SocketEvent,
  formatAddress,
  rawRecordCodec,
  unwrapPayload,
} from '@netmon/common';
import { startKafka, stopKafka } from '@netmon/cli';
import {
  type Child,
  type LoggedConnection,
  createTopic,
  during,
  deleteTopics,
  ensureBpffs,
  readTopic,
  startChild,
  startNetmon,
  startTraffic,
  testKafka,
  waitUntil,
} from '../src';

const kafka = testKafka();
const topics: string[] = [];
const isRoot = process.getuid?.() === 0;
const brokerIsOurs = (process.env.KAFKA_BROKERS ?? DEFAULT_BROKERS.join(',')) === DEFAULT_BROKERS.join(',');

after(() => deleteTopics(kafka, topics));

function sensorConfig(rawTopic: string, extra = ''): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'netmon-sensor-it-'));
  const file = path.join(dir, 'netmon.yaml');
  writeFileSync(
    file,
    `topics: { raw: ${rawTopic} }\nsensor: { spool_dir: ${dir}/spool, metrics_port: 0, status_interval_s: 1${extra} }\nlog: { level: info }\n`,
  );
  return file;
}

async function startSensor(config: string): Promise<Child> {
  const sensor = startNetmon(['sensor', '--config', config]);
  await waitUntil('the sensor to start', () => sensor.stderr().includes('"sensor started"') || sensor.proc.exitCode !== null, 60_000);
  assert.equal(sensor.proc.exitCode, null, `sensor exited: ${sensor.stderr()}`);
  return sensor;
}

/** A value of the running sensor's Prometheus metrics. */
async function sensorMetric(sensor: Child, name: string): Promise<number> {
  const text = (await probe(sensor, '/metrics')).body;
  const line = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  assert.ok(line, `${name} in the sensor's metrics`);
  return Number(line[1]);
}

/** GET a path of the sensor's metrics server. */
async function probe(sensor: Child, pathname: string): Promise<{ status: number; body: string }> {
  const port = /"metrics_port":(\d+)/.exec(sensor.stderr())?.[1];
  assert.ok(port, 'the sensor logs its metrics port');
  const res = await fetch(`http://127.0.0.1:${port}${pathname}`);
  return { status: res.status, body: await res.text() };
}

/** A raw message packs several records back to back. */
function decodeAll(messages: { value: Buffer }[]): RawRecord[] {
  const codec = rawRecordCodec();
  return messages.flatMap((m) => codec.decodeAll(m.value));
}

const sockets = (records: RawRecord[]) =>
  records.flatMap((r) => {
    const p = unwrapPayload(r.payload);
    return p.kind === 'socket' ? [{ seq: r.seq, time_us: r.time_us, ...(p.value as SocketEvent) }] : [];
  });
const lastStatus = (records: RawRecord[]): SensorStatus => {
  const all = records.flatMap((r) => {
    const p = unwrapPayload(r.payload);
    return p.kind === 'status' ? [p.value as SensorStatus] : [];
  });
  const status = all.at(-1);
  assert.ok(status, 'a status record');
  return status;
};

/**
 * Every logged connection has exactly one Establish (its pid, its client
 * port, within its time window: the kernel reuses ephemeral ports), one
 * Accept (the server end, dport = the client port), and one Close for each,
 * paired by cookie.
 */
function assertConnectionsCaptured(records: RawRecord[], logged: LoggedConnection[]) {
  const events = sockets(records);
  const byCookie = new Map<number, typeof events>();
  for (const e of events) byCookie.set(e.cookie, [...(byCookie.get(e.cookie) ?? []), e]);
  for (const c of logged) {
    const open = events.filter((e) => e.task.pid === c.pid && e.kind !== 'CLOSE' && during(c, e.time_us / 1000));
    const establish = open.filter((e) => e.kind === 'ESTABLISH' && e.sport === c.sport);
    const accept = open.filter((e) => e.kind === 'ACCEPT' && e.dport === c.sport);
    assert.equal(establish.length, 1, `Establish of the connection from port ${c.sport} at ${c.start}: ${establish.length}`);
    assert.equal(accept.length, 1, `Accept of the connection from port ${c.sport} at ${c.start}: ${accept.length}`);
    assert.equal(formatAddress(establish[0]!.daddr), '127.0.0.1');
    assert.equal(establish[0]!.dport, c.dport);
    for (const opened of [establish[0]!, accept[0]!]) {
      const kinds = (byCookie.get(opened.cookie) ?? []).map((e) => e.kind).sort();
      assert.deepEqual(kinds, [opened.kind, 'CLOSE'].sort(), `cookie ${opened.cookie} of port ${c.sport}: ${JSON.stringify(kinds)}`);
    }
  }
}

function parseLog(child: Child): LoggedConnection[] {
  return child
    .stdout()
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as LoggedConnection);
}

/** (run_id, seq) must run 0..n-1 per run: no gap, no duplicate. */
function assertSequences(records: RawRecord[]) {
  const byRun = new Map<string, number[]>();
  for (const r of records) byRun.set(r.run_id, [...(byRun.get(r.run_id) ?? []), r.seq]);
  for (const [run, seqs] of byRun)
    assert.deepEqual(
      seqs,
      Array.from({ length: seqs.length }, (_, i) => i),
      `sequence of run ${run}`,
    );
}

describe('sensor (real kernel, real broker)', { skip: isRoot ? false : 'the kernel probes need root' }, () => {
  test('loopback traffic and the snapshot reach the raw topic, in order, without gaps', async () => {
    const topic = await createTopic(kafka, 'netmon.it.sensor');
    topics.push(topic);
    const before = startChild('sleep', ['300'], {});
    const sensor = await startSensor(sensorConfig(topic));
    const traffic = startTraffic(20, 5);
    assert.equal(await traffic.exited, 0);
    const logged = parseLog(traffic);
    assert.equal(logged.length, 20);
    // stop() drains the ring buffer: the closes of the exited traffic are in it
    assert.equal(await sensor.stop(), 0, sensor.stderr());
    const records = decodeAll(await readTopic(kafka, topic, (r) => r.length > 0));
    for (const r of records) assert.equal(r.host_id, records[0]?.host_id);
    assertSequences(records);
    assertConnectionsCaptured(records, logged);
    const snap = records.flatMap((r) => {
      const p = unwrapPayload(r.payload);
      return p.kind === 'exec' && (p.value as ProcessExec).snapshot ? [p.value as ProcessExec] : [];
    });
    const sleeper = snap.find((p) => p.task.pid === before.proc.pid);
    assert.ok(sleeper, 'the snapshot holds the process started before the sensor');
    assert.equal(sleeper.binary_path, '/usr/bin/sleep');
    assert.deepEqual(sleeper.args, ['300']);
    const firstSocket = records.findIndex((r) => unwrapPayload(r.payload).kind === 'socket');
    const lastSnapshot = records.findLastIndex((r) => {
      const p = unwrapPayload(r.payload);
      return p.kind === 'exec' && (p.value as ProcessExec).snapshot;
    });
    assert.ok(lastSnapshot < firstSocket, 'the snapshot comes before the first network event');
    await before.stop('SIGKILL');
  });

  test('a 30 s broker outage under steady traffic: every record arrives once, in order; the spool empties', {
    skip: brokerIsOurs ? false : 'the broker is not the native stack: cannot stop it',
  }, async () => {
    const topic = await createTopic(kafka, 'netmon.it.outage');
    topics.push(topic);
    const sensor = await startSensor(sensorConfig(topic, ', not_ready_after_spooling_s: 3'));
    const traffic = startTraffic(400, 100); // ~45 s of connections
    await new Promise((r) => setTimeout(r, 5000));
    assert.equal((await probe(sensor, '/readyz')).status, 200, 'ready while Kafka takes the records');
    await stopKafka();
    const outage = Date.now();
    // Spooling past the bound: not ready (with the reason), but alive.
    const notReady = await waitUntil('the sensor to report not ready', async () => {
      const r = await probe(sensor, '/readyz');
      return r.status === 503 ? r : undefined;
    });
    assert.match(notReady.body, /spooling for \d+ s/);
    assert.equal((await probe(sensor, '/healthz')).status, 200, 'a spooling sensor stays alive');
    await new Promise((r) => setTimeout(r, Math.max(0, 30_000 - (Date.now() - outage))));
    await startKafka();
    assert.equal(await traffic.exited, 0);
    const logged = parseLog(traffic);
    // The spool drains by itself once the broker is back: watch the sensor's gauge.
    await waitUntil('the spool to drain', async () => ((await sensorMetric(sensor, 'netmon_sensor_spool_bytes')) === 0 ? true : undefined), 120_000, 500).catch(
      (err: Error) => {
        throw new Error(`${err.message}; the sensor's log ends:\n${sensor.stderr().slice(-4000)}`);
      },
    );
    await waitUntil('the sensor to be ready again', async () => ((await probe(sensor, '/readyz')).status === 200 ? true : undefined), 30_000, 500);
    assert.equal(await sensor.stop(), 0, sensor.stderr().slice(-2000));
    const records = decodeAll(await readTopic(kafka, topic, (r) => r.length > 0, 3000));
    assertSequences(records);
    assertConnectionsCaptured(records, logged);
    const status = lastStatus(records);
    assert.ok(status.spooled > 0, 'the outage went through the spool');
    assert.equal(status.dropped, 0);
    assert.equal(status.spool_bytes, 0, 'the spool is empty afterwards');
  });

  test('past the spool bound, the drop counter equals the records missing', {
    skip: brokerIsOurs ? false : 'the broker is not the native stack: cannot stop it',
  }, async () => {
    const topic = await createTopic(kafka, 'netmon.it.drops');
    topics.push(topic);
    const sensor = await startSensor(sensorConfig(topic, ', spool_max_bytes: 40000'));
    await stopKafka();
    try {
      // Traffic until the sensor says it dropped records (its own counter), not for a guessed time.
      const traffic = startTraffic(100_000, 2);
      await waitUntil(
        'the sensor to drop past its spool bound',
        async () => ((await sensorMetric(sensor, 'netmon_sensor_dropped_total')) > 0 ? true : undefined),
        120_000,
        200,
      );
      await traffic.stop('SIGTERM');
    } finally {
      await startKafka();
    }
    await waitUntil('the spool to drain', async () => ((await sensorMetric(sensor, 'netmon_sensor_spool_bytes')) === 0 ? true : undefined), 120_000, 500).catch(
      (err: Error) => {
        throw new Error(`${err.message}; the sensor's log ends:\n${sensor.stderr().slice(-4000)}`);
      },
    );
    assert.equal(await sensor.stop(), 0);
    const records = decodeAll(await readTopic(kafka, topic, (r) => r.length > 0, 3000));
    const status = lastStatus(records);
    const seqs = records.map((r) => r.seq);
    const missing = Math.max(...seqs) + 1 - new Set(seqs).size;
    assert.ok(status.dropped > 0, 'the bound was reached');
    assert.equal(missing, status.dropped);
  });

  test('kill -9 and restart with sensor.pin_dir: the connections made while no sensor ran all arrive; --unpin removes the probes', async () => {
    ensureBpffs();
    const pinDir = `/sys/fs/bpf/netmon-it-${process.pid}-${Date.now().toString(36)}`;
    const topic = await createTopic(kafka, 'netmon.it.restart');
    topics.push(topic);
    const config = sensorConfig(topic, `, pin_dir: ${pinDir}`);
    try {
      const first = await startSensor(config);
      assert.match(first.stderr(), /pinned in /, 'the first sensor pins its probes');
      assert.equal(await first.stop('SIGKILL'), -1);
      // No sensor runs now: the pinned programs record into the ring buffer.
      const traffic = startTraffic(20, 5);
      assert.equal(await traffic.exited, 0);
      const logged = parseLog(traffic);
      const second = await startSensor(config);
      assert.match(second.stderr(), /adopted the programs an earlier sensor left running/);
      assert.equal(await second.stop(), 0, second.stderr().slice(-2000));
      const records = decodeAll(await readTopic(kafka, topic, (r) => r.length > 0, 3000));
      assertConnectionsCaptured(records, logged);
    } finally {
      const unpin = startNetmon(['sensor', '--config', config, '--unpin']);
      assert.equal(await unpin.exited, 0, unpin.stderr());
    }
    assert.equal(existsSync(pinDir), false, 'the pin directory is gone');
  });

  test('SIGTERM mid-traffic: nothing the kernel delivered is lost', async () => {
    const topic = await createTopic(kafka, 'netmon.it.sigterm');
    topics.push(topic);
    const sensor = await startSensor(sensorConfig(topic));
    const traffic = startTraffic(2000, 0);
    await waitUntil('traffic under way', () => traffic.stdout().split('\n').length > 200, 30_000);
    assert.equal(await sensor.stop('SIGTERM'), 0);
    await traffic.exited;
    const records = decodeAll(await readTopic(kafka, topic, (r) => r.length > 0));
    assertSequences(records);
    const status = lastStatus(records);
    assert.equal(status.dropped, 0);
    assert.equal(status.lost_kernel, 0);
    // Every record the sensor read from the kernel is on the topic: its last
    // status counts them, and the topic holds them (plus snapshot and status).
    const fromKernel = records.filter((r) => {
      const p = unwrapPayload(r.payload);
      return p.kind !== 'status' && !(p.kind === 'exec' && (p.value as ProcessExec).snapshot);
    });
    assert.equal(fromKernel.length, status.seen);
  });
});
