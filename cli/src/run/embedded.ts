// Single-host mode: the probes and the enrichment library in one process,
// NetworkEvent JSON lines on stdout. No Kafka, no S3.
import { type NetmonConfig, type NetworkEvent, type RawPayloadOf, type RawRecord, createLogger, wrapPayload } from '@netmon/common';
import { Enricher, enricherOptions } from '@netmon/enricher';
import { type TimedPayload, hostIdentity, kernelSource, snapshotProcesses } from '@netmon/sensor';
import { randomUUID } from 'node:crypto';
import { formatEvent } from './view';

export interface EmbeddedOptions {
  pretty: boolean;
  /** Stop after this many seconds (0: until SIGINT/SIGTERM). */
  durationS: number;
  out?: NodeJS.WritableStream;
}

export async function runEmbedded(config: NetmonConfig, options: EmbeddedOptions): Promise<number> {
  const out = options.out ?? process.stdout;
  const logger = createLogger('run', config.log.level === 'info' ? 'warn' : config.log.level);
  const host = hostIdentity(config.host);
  const runId = randomUUID();
  let seq = 0;
  const print = (event: NetworkEvent) => out.write(`${options.pretty ? formatEvent(event) : JSON.stringify(event)}\n`);
  const enricher = new Enricher(enricherOptions(config), { event: print });
  const push = (batch: readonly TimedPayload[]) => {
    const now = Date.now();
    for (const { payload, timeUs } of batch) {
      const record: RawRecord = { host_id: host.id, hostname: host.hostname, run_id: runId, seq, time_us: timeUs, payload: wrapPayload(payload) };
      enricher.push(record, seq++, now);
    }
  };

  // Probes first, so nothing is missed during the /proc scan; their batches
  // wait until the snapshot is in the table.
  let held: TimedPayload[][] | undefined = [];
  const source = kernelSource({ mode: config.sensor.attachMode, ringBufferBytes: config.sensor.ringBufferBytes })((batch) => {
    if (held) held.push(batch);
    else push(batch);
  });
  process.stderr.write(`netmon run: probes attached (${source.mode}: ${source.reason})\n`);
  const at = Date.now() * 1000;
  push(snapshotProcesses().map((value) => ({ payload: { kind: 'exec', value } satisfies RawPayloadOf, timeUs: at })));
  for (const batch of held) push(batch);
  held = undefined;
  const ticker = setInterval(() => enricher.expire(Date.now()), 100);

  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
    if (options.durationS > 0) setTimeout(resolve, options.durationS * 1000).unref();
  });
  await source.stop();
  clearInterval(ticker);
  enricher.expire(Number.POSITIVE_INFINITY); // what still waits goes out with what is known
  const lost = source.lost();
  logger.info({ events: enricher.counters.out, lost_kernel: lost }, 'stopped');
  if (lost > 0) process.stderr.write(`netmon run: ${lost} records lost in the kernel (ring buffer full)\n`);
  return 0;
}
