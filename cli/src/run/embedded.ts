// Single-host mode: the probes and the enrichment library in one process,
// NetworkEvent JSON lines on stdout. No Kafka, no S3. A record the enricher
// refuses (it breaks the contract) is skipped, never fatal: the first of each
// reason is logged, and the count is printed on exit.
import { type NetmonConfig, type NetworkEvent, type RawPayloadOf, type RawRecord, createLogger, describeError, wrapPayload } from '@netmon/common';
import { Enricher, type EnricherOptions, RejectTally, enricherOptions } from '@netmon/enricher';
import { type TimedPayload, compileRedaction, hostIdentity, kernelSource, snapshotProcesses } from '@netmon/sensor';
import { randomUUID } from 'node:crypto';
import { formatEvent } from './view';

export interface EmbeddedOptions {
  pretty: boolean;
  /** Stop after this many seconds (0: until SIGINT/SIGTERM). */
  durationS: number;
  out?: NodeJS.WritableStream;
}

/**
 * The probes' payloads into the enricher, as the records of one sensor run of
 * this host; events out through `print`. No single record stops it: one that
 * the enricher refuses (ContractError) or whose enrichment throws is skipped,
 * counted in `skipped`, and reported to `onFirst` when it is the first of its
 * reason.
 */
export class EmbeddedFeed {
  readonly enricher: Enricher;
  readonly skipped = new RejectTally();
  private seq = 0;

  constructor(
    options: EnricherOptions,
    print: (event: NetworkEvent) => void,
    private readonly host: { id: string; hostname: string },
    private readonly runId: string,
    private readonly onFirst: (reason: string, record: RawRecord | undefined) => void = () => {},
  ) {
    this.enricher = new Enricher(options, { event: print, rejected: (record, _position, err) => this.skip(err, record) });
  }

  push(batch: readonly TimedPayload[], nowMs = Date.now()): void {
    for (const { payload, timeUs } of batch) {
      const seq = this.seq++;
      const record: RawRecord = {
        host_id: this.host.id,
        hostname: this.host.hostname,
        run_id: this.runId,
        seq,
        time_us: timeUs,
        payload: wrapPayload(payload),
      };
      try {
        this.enricher.push(record, seq, nowMs);
      } catch (err) {
        this.skip(err, record);
      }
    }
  }

  /** Lets records whose wait has ended go out. */
  expire(nowMs: number): void {
    try {
      this.enricher.expire(nowMs);
    } catch (err) {
      this.skip(err, undefined);
    }
  }

  /** The skipped records for stderr, or "" when none. */
  summary(): string {
    if (this.skipped.total === 0) return '';
    const lines = this.skipped.counts().map((r) => `  ${r.count} × ${r.first}\n`);
    return `netmon run: ${this.skipped.total} records skipped (refused by the enricher, or failed in it), by reason:\n${lines.join('')}`;
  }

  private skip(err: unknown, record: RawRecord | undefined): void {
    const reason = err instanceof Error ? `${err.name}: ${describeError(err)}` : describeError(err);
    if (this.skipped.add(reason)) this.onFirst(reason, record);
  }
}

export async function runEmbedded(config: NetmonConfig, options: EmbeddedOptions): Promise<number> {
  const out = options.out ?? process.stdout;
  const logger = createLogger('run', config.log.level === 'info' ? 'warn' : config.log.level);
  const host = hostIdentity(config.host);
  const print = (event: NetworkEvent) => out.write(`${options.pretty ? formatEvent(event) : JSON.stringify(event)}\n`);
  const feed = new EmbeddedFeed(enricherOptions(config), print, host, randomUUID(), (reason, record) =>
    logger.warn({ reason, seq: record?.seq }, 'record skipped (logged once per reason; the count is printed on exit)'),
  );
  const { enricher } = feed;
  const push = (batch: readonly TimedPayload[]) => feed.push(batch);

  // Probes first, so nothing is missed during the /proc scan; their batches
  // wait until the snapshot is in the table.
  let held: TimedPayload[][] | undefined = [];
  const source = kernelSource(config.sensor)((batch) => {
    if (held) held.push(batch);
    else push(batch);
  });
  process.stderr.write(`netmon run: probes attached (${source.mode}: ${source.reason})\n`);
  const at = Date.now() * 1000;
  push(
    snapshotProcesses('/proc', config.sensor.maxArgsBytes, compileRedaction(config.sensor.redactArgs)).map((value) => ({
      payload: { kind: 'exec', value } satisfies RawPayloadOf,
      timeUs: at,
    })),
  );
  for (const batch of held) push(batch);
  held = undefined;
  const ticker = setInterval(() => feed.expire(Date.now()), 100);

  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
    if (options.durationS > 0) setTimeout(resolve, options.durationS * 1000).unref();
  });
  await source.stop();
  clearInterval(ticker);
  feed.expire(Number.POSITIVE_INFINITY); // what still waits goes out with what is known
  const lost = source.lost();
  logger.info({ events: enricher.counters.out, lost_kernel: lost, skipped: feed.skipped.total }, 'stopped');
  if (lost > 0) process.stderr.write(`netmon run: ${lost} records lost in the kernel (ring buffer full)\n`);
  process.stderr.write(feed.summary());
  return 0;
}
