// Benchmark of the sensor's user-space path: the kernel's packed records →
// RawRecord Avro encode → batched, compressed, idempotent produce,
// acknowledged by the real broker (the native stack or KAFKA_BROKERS). Two
// sources through the same startSensor code: a synthetic generator of socket
// records in the kernel's layout, as the probes hand them over (as fast as
// the producer drains), and the real probes under the loopback storm of
// bpf/tools/storm.c. Each runs in a process of its own, as a sensor does
// (per core: events per CPU-second of that process; RSS: that process's).
// Prints events/s per core, bytes per event on the wire, p99 produce latency,
// RSS, records spooled and dropped, and ends with `RESULT {json}`.
//   NETMON_BENCH_EVENTS (default 2000000: about 10 s, so the steady state
//   outweighs the start; 300,000 took 2 s and read 284k–376k/core where 2M
//   reads 389k–415k on the same code), NETMON_BENCH_CONNECTIONS (default 50000)
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createKafka, createLogger, loadConfig } from '@netmon/common';
import { AF_INET, HDR, Kind, SOCK, type StartSource, TASK, TUPLE, kernelSource, startSensor } from '@netmon/sensor';

const EVENTS = Number(process.env.NETMON_BENCH_EVENTS ?? 2_000_000);
const CONNECTIONS = Number(process.env.NETMON_BENCH_CONNECTIONS ?? 50_000);
const ROOT = path.resolve(__dirname, '..', '..', '..');

/** Socket records in the kernel's layout, as the probes hand them over, refreshed per batch. */
class SyntheticBatch {
  readonly buf: Buffer;
  constructor(readonly size: number) {
    const one = Buffer.alloc(SOCK.size);
    one.writeUInt16LE(SOCK.size, HDR.recsize);
    const t = SOCK.task;
    one.writeBigUInt64LE(123_456_789_000n, t + TASK.start_time_ns);
    one.writeBigUInt64LE(4242n, t + TASK.cgroup_id);
    one.writeUInt32LE(1, t + TASK.ppid);
    for (const f of [TASK.uid, TASK.euid, TASK.auid]) one.writeUInt32LE(1000, t + f);
    one.write('curl', t + TASK.comm);
    one.write('/system.slice/docker-3f4e8d2c1b0a99887766554433221100ffeeddccbbaa99887766554433221100.scope', t + TASK.cgroup_path);
    one.writeUInt16LE(AF_INET, SOCK.tuple + TUPLE.family);
    Buffer.from([127, 0, 0, 1]).copy(one, SOCK.tuple + TUPLE.saddr);
    Buffer.from([127, 0, 0, 1]).copy(one, SOCK.tuple + TUPLE.daddr);
    one.writeUInt16LE(8080, SOCK.tuple + TUPLE.dport);
    this.buf = Buffer.concat(Array.from({ length: size }, () => one));
  }

  /** Records first..first+n: what changes from one connection to the next. */
  fill(first: number, n: number): Buffer {
    const b = this.buf;
    // the layout's offsets read once: module getters cost per access
    const [size, ts, kind, pid, tid, sport, cookie] = [
      SOCK.size,
      HDR.ts_ns,
      HDR.kind,
      SOCK.task + TASK.pid,
      SOCK.task + TASK.tid,
      SOCK.tuple + TUPLE.sport,
      SOCK.cookie,
    ];
    const kinds = [Kind.ESTABLISH, Kind.ACCEPT, Kind.CLOSE];
    for (let k = 0; k < n; k++) {
      const i = first + k;
      const off = k * size;
      const tsNs = 987_654_321_000 + i * 1000;
      b.writeUInt32LE(tsNs % 2 ** 32, off + ts);
      b.writeUInt32LE(Math.floor(tsNs / 2 ** 32), off + ts + 4);
      b.writeUInt16LE(kinds[i % 3]!, off + kind);
      b.writeUInt32LE(1000 + (i % 500), off + pid);
      b.writeUInt32LE(1000 + (i % 500), off + tid);
      b.writeUInt16LE(30000 + (i % 30000), off + sport);
      b.writeUInt32LE(4096 + i, off + cookie);
    }
    return b.subarray(0, n * SOCK.size);
  }
}

/**
 * Emits EVENTS synthetic records, staying at most `ahead` records ahead of
 * the acks; when ahead, it waits for the next ack (resume) rather than spin,
 * as the probes wait for the kernel.
 */
function syntheticSource(sent: () => number, ahead = 20_000): { start: StartSource; done: Promise<void>; resume: () => void } {
  let finish!: () => void;
  const done = new Promise<void>((r) => {
    finish = r;
  });
  let parked = false;
  let tick = () => {};
  const resume = () => {
    if (!parked) return;
    parked = false;
    setImmediate(tick);
  };
  const start: StartSource = (_onPayloads, onRecords) => {
    if (!onRecords) throw new Error('the synthetic source gives packed records only');
    const batch = new SyntheticBatch(2000);
    const decode = { clockOffsetNs: Date.now() * 1e6 - 987_654_321_000 };
    let emitted = 0;
    let stopped = false;
    tick = () => {
      if (stopped) return;
      if (emitted >= EVENTS) return finish();
      if (emitted - sent() >= ahead) {
        parked = true;
        return;
      }
      const n = Math.min(batch.size, EVENTS - emitted);
      onRecords(batch.fill(emitted, n), decode);
      emitted += n;
      setImmediate(tick);
    };
    setImmediate(tick);
    const stop = async () => {
      stopped = true;
    };
    return { mode: 'synthetic', reason: 'benchmark', lost: () => 0, stop };
  };
  return { start, done, resume };
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
    onProduced: (ms: number) => {
      latencies.push(ms);
      synthetic.resume();
    },
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
    spooled: counters.spooled,
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

type RunResult = Awaited<ReturnType<typeof run>>;

/**
 * One source in a process of its own, as a sensor runs: its RSS is not the
 * other run's leftovers. The child prints `RUN {json}`.
 */
async function runInChild(source: 'synthetic' | 'kernel'): Promise<RunResult> {
  const child = spawn(process.execPath, [__filename, '--run', source], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const code = await new Promise((r) => child.on('exit', r));
  const line = out.split('\n').find((l) => l.startsWith('RUN '));
  if (code !== 0 || !line) throw new Error(`the ${source} run failed (exit ${String(code)}): ${out}`);
  return JSON.parse(line.slice(4)) as RunResult;
}

async function main() {
  const only = process.argv.indexOf('--run');
  if (only >= 0) {
    const source = process.argv[only + 1] as 'synthetic' | 'kernel';
    console.log(`RUN ${JSON.stringify(await run(source, source))}`);
    process.exit(0);
  }
  const synthetic = await runInChild('synthetic');
  console.log('synthetic', JSON.stringify(synthetic));
  const kernel = process.getuid?.() === 0 ? await runInChild('kernel') : undefined;
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
