// Benchmark of the sensor's user-space path: payloads → RawRecord Avro
// encode → batched, compressed, idempotent produce, acknowledged by the real
// broker (the native stack or KAFKA_BROKERS). Two sources through the same
// startSensor code: a synthetic generator (as fast as the producer drains),
// and the real probes under the loopback storm of bpf/tools/storm.c.
// Prints events/s per core, bytes per event on the wire, p99 produce latency,
// RSS, and ends with `RESULT {json}`.
//   NETMON_BENCH_EVENTS (default 300000), NETMON_BENCH_CONNECTIONS (default 50000)
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NO_SOCKET_FACTS, type RawPayloadOf, createKafka, createLogger, loadConfig } from '@netmon/common';
import { type StartSource, type TimedPayload, kernelSource, startSensor } from '@netmon/sensor';

const EVENTS = Number(process.env.NETMON_BENCH_EVENTS ?? 300_000);
const CONNECTIONS = Number(process.env.NETMON_BENCH_CONNECTIONS ?? 50_000);
const ROOT = path.resolve(__dirname, '..', '..', '..');

function syntheticPayload(i: number): TimedPayload {
  const payload: RawPayloadOf = {
    kind: 'socket',
    value: {
      kind: (['ESTABLISH', 'ACCEPT', 'CLOSE'] as const)[i % 3]!,
      task: {
        pid: 1000 + (i % 500),
        tid: 1000 + (i % 500),
        ppid: 1,
        uid: 1000,
        euid: 1000,
        auid: 1000,
        cap_inheritable: 0,
        cap_permitted: 0,
        cap_effective: 0,
        comm: 'curl',
        cgroup_id: 4242,
        cgroup_path: '/system.slice/docker-3f4e8d2c1b0a99887766554433221100ffeeddccbbaa99887766554433221100.scope',
        start_time_us: 123_456_789,
        ktime_us: 987_654_321 + i,
      },
      family: 'INET',
      saddr: Buffer.from([127, 0, 0, 1]),
      daddr: Buffer.from([127, 0, 0, 1]),
      sport: 30000 + (i % 30000),
      dport: 8080,
      cookie: 4096 + i,
      ...NO_SOCKET_FACTS,
    },
  };
  return { payload, timeUs: Date.now() * 1000 };
}

/** Emits EVENTS synthetic payloads, staying at most `ahead` records ahead of the acks. */
function syntheticSource(sent: () => number, ahead = 20_000): { start: StartSource; done: Promise<void> } {
  let finish!: () => void;
  const done = new Promise<void>((r) => {
    finish = r;
  });
  const start: StartSource = (onPayloads) => {
    let emitted = 0;
    let stopped = false;
    const tick = () => {
      if (stopped) return;
      if (emitted >= EVENTS) return finish();
      if (emitted - sent() < ahead) {
        const n = Math.min(2000, EVENTS - emitted);
        onPayloads(Array.from({ length: n }, (_, k) => syntheticPayload(emitted + k)));
        emitted += n;
      }
      setImmediate(tick);
    };
    setImmediate(tick);
    const stop = async () => {
      stopped = true;
    };
    return { mode: 'synthetic', reason: 'benchmark', lost: () => 0, stop };
  };
  return { start, done };
}

/** Bytes the broker stored for the topic (compressed batches as sent), native stack only. */
function topicBytes(topic: string): number | undefined {
  const data = path.join(ROOT, '.stack/kafka/data');
  if (!existsSync(data)) return undefined;
  let bytes = 0;
  for (const dir of readdirSync(data).filter((d) => d.startsWith(`${topic}-`))) {
    for (const f of readdirSync(path.join(data, dir)).filter((f) => f.endsWith('.log'))) bytes += statSync(path.join(data, dir, f)).size;
  }
  return bytes;
}

async function run(name: string, source: 'synthetic' | 'kernel') {
  const topic = `netmon.bench.sensor.${name}.${Date.now()}`;
  const config = loadConfig(undefined);
  config.topics.raw = topic;
  config.sensor.spoolDir = mkdtempSync(path.join(tmpdir(), 'netmon-bench-spool-'));
  config.sensor.metricsPort = 0;
  config.sensor.statusIntervalS = 3600;
  const admin = createKafka(config.kafka, createLogger('bench', 'error'), 'bench').admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 4 }], waitForLeaders: true });
  await admin.disconnect();

  const latencies: number[] = [];
  const logger = createLogger('bench', 'error');
  let sensorRef: Awaited<ReturnType<typeof startSensor>> | undefined;
  const synthetic = syntheticSource(() => sensorRef?.counters().sent ?? 0);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const rss: number[] = [];
  const rssTimer = setInterval(() => rss.push(process.memoryUsage().rss), 100);
  const sensor = await startSensor(config, logger, {
    startSource: source === 'synthetic' ? synthetic.start : kernelSource({ ...config.sensor, attachMode: 'auto' }),
    snapshot: false,
    onProduced: (ms: number) => latencies.push(ms),
  });
  sensorRef = sensor;
  let stormRate = 0;
  if (source === 'synthetic') {
    await synthetic.done;
  } else {
    const storm = spawn(path.join(ROOT, 'bpf/.output/storm'), [String(CONNECTIONS)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    storm.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    await new Promise((r) => storm.on('exit', r));
    stormRate = (JSON.parse(out) as { rate: number }).rate;
  }
  while (sensor.counters().sent < sensor.counters().seen) await new Promise((r) => setTimeout(r, 20));
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  clearInterval(rssTimer);
  const counters = sensor.counters();
  await sensor.stop();
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  latencies.sort((a, b) => a - b);
  const bytes = topicBytes(topic);
  return {
    events: counters.sent,
    lost_kernel: counters.lostKernel,
    dropped: counters.dropped,
    seconds,
    events_per_s: counters.sent / seconds,
    events_per_s_per_core: counters.sent / cpuSeconds,
    p99_produce_ms: latencies[Math.floor(latencies.length * 0.99)] ?? 0,
    // Steady: the median over the run; max: the peak, a burst included.
    rss_mb_steady: (rss.sort((a, b) => a - b)[Math.floor(rss.length / 2)] ?? 0) / 2 ** 20,
    rss_mb_max: (rss.at(-1) ?? 0) / 2 ** 20,
    bytes_per_event_on_wire: bytes === undefined ? null : bytes / counters.sent,
    storm_conn_per_s: stormRate,
  };
}

async function main() {
  const synthetic = await run('synthetic', 'synthetic');
  console.log('synthetic', JSON.stringify(synthetic));
  const kernel = process.getuid?.() === 0 ? await run('kernel', 'kernel') : undefined;
  if (kernel) console.log('kernel storm', JSON.stringify(kernel));
  const result = {
    bench: 'sensor',
    synthetic,
    kernel,
    targets: {
      events_per_s_per_core: { value: Math.round(synthetic.events_per_s_per_core), target: 300_000, met: synthetic.events_per_s_per_core >= 300_000 },
      rss_mb_steady: {
        value: Math.round(Math.max(synthetic.rss_mb_steady, kernel?.rss_mb_steady ?? 0)),
        target: 150,
        met: Math.max(synthetic.rss_mb_steady, kernel?.rss_mb_steady ?? 0) < 150,
      },
    },
  };
  console.log(`RESULT ${JSON.stringify(result)}`);
  process.exit(0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
