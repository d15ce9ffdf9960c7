// The two commands this package gives the CLI:
//   netmon archiver --config FILE
//   netmon query "SQL" [--json] [--config FILE] [--source s3|DIR] [--file F.sql]
// Each parses its own flags and returns the process exit code: 0 ok, 1 failure,
// 2 usage. A ConfigError is thrown for the caller to print (exit 78).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  ConfigError,
  type Logger,
  type NetmonConfig,
  UsageError,
  checkedFlag,
  createLogger,
  createS3Client,
  describeError,
  isUnreachable,
  loadConfig,
  parseFlags,
  stringFlag,
  unreachableLine,
} from '@netmon/common';
import { Archiver } from './archiver';
import { S3UnavailableError } from './errors';
import { archiverLag, waitingLine } from './lag';
import { ArchiveQuery, cacheRoot, formatTable, statusDir, syncArchive, syncStatusArchive } from './query';
import { ArchiveStore } from './store';

export const ARCHIVER_HELP = `Usage: netmon archiver [--config FILE]

Consumes the events topic (consumer group archiver.group_id, read committed) and
writes every NetworkEvent to S3 exactly once, in archiver.format: json (default),
gzip NDJSON objects under
  <s3.prefix>/dt=YYYY-MM-DD/hour=HH/<topic>+<partition>+<first offset>.json.gz
or parquet (for Athena's bytes scanned), under
  <s3.prefix>-parquet/dt=YYYY-MM-DD/hour=HH/<topic>+<partition>+<first offset>.parquet
The same group archives the status topic (topics.status: the sensors'
heartbeats), gzip NDJSON under
  <s3.prefix>-status/dt=YYYY-MM-DD/hour=HH/<status topic>+<partition>+<first offset>.json.gz
Flushes on archiver.flush_records, flush_bytes, flush_span_s (event time) and
idle_flush_s. Metrics and /healthz on archiver.metrics_port. SIGTERM: uploads
what it holds, commits, leaves the group.

Options:
  --config FILE   netmon.yaml (default: $NETMON_CONFIG, else the local stack)
  --help          this text
`;

export const QUERY_HELP = `Usage: netmon query "SQL" [options]

Runs SQL with DuckDB over the archive, JSON and Parquet objects together: the
view network_events has the Athena table's columns (type, process,
network_event, timestamp, host, source, connection, process_key, dt, hour),
NetworkEvent v1 objects read with v2's defaults; the view netmon_events adds
event_time, as infra/athena's views do. The view sensor_status has the
sensors' heartbeats (the Athena table sensor_status: timestamp, host, source,
seen, lost_kernel, spooled, dropped, spool_bytes, dt, hour), from
<s3.prefix>-status. When events still wait for the archiver (its consumer
lag), a line on stderr says how many and when they will be written.

Options:
  --json           one JSON object per row (field order and JSON types kept)
  --source s3|DIR  s3 (default): mirror the bucket's objects into the cache
                   ($NETMON_CACHE_DIR, else ~/.cache/netmon) first; DIR: a local
                   folder laid out like the prefix (dt=.../hour=.../*.json.gz, *.parquet),
                   its status records in DIR-status (laid out like <s3.prefix>-status)
  --file FILE      read the SQL from FILE (e.g. infra/athena/queries/*.sql)
  --config FILE    netmon.yaml for the S3 settings (default: $NETMON_CONFIG, else the local stack)
  --help           this text
`;

export interface CommandIo {
  out: { write(text: string): unknown };
  err: { write(text: string): unknown };
}

export interface ArchiverArgs {
  config?: string;
}

/** `netmon archiver` argv; undefined after writing the help to `out` for --help. Throws UsageError. */
export function parseArchiverArgs(argv: string[], out: CommandIo['out'] = process.stdout): ArchiverArgs | undefined {
  const flags = parseFlags(argv, { config: { type: 'string' } }, ARCHIVER_HELP, out);
  if (!flags) return undefined;
  if (flags.positionals.length > 0) throw new UsageError(`unexpected argument ${flags.positionals[0]}`);
  return { config: stringFlag(flags, 'config') };
}

export interface QueryArgs {
  /** the SQL argument, or the text of --file */
  sql: string;
  json: boolean;
  /** 's3' (default) or a directory */
  source: string;
  config?: string;
}

/** `netmon query` argv (reads --file); undefined after writing the help to `out` for --help. Throws UsageError. */
export function parseQueryArgs(argv: string[], out: CommandIo['out'] = process.stdout): QueryArgs | undefined {
  const flags = parseFlags(
    argv,
    { json: { type: 'boolean' }, source: { type: 'string' }, file: { type: 'string' }, config: { type: 'string' } },
    QUERY_HELP,
    out,
  );
  if (!flags) return undefined;
  let sql: string;
  if (stringFlag(flags, 'file')) {
    if (flags.positionals.length > 0) throw new UsageError('give the SQL or --file, not both');
    sql = checkedFlag(flags, 'file', (file) => readFileSync(file, 'utf8'))!;
  } else {
    if (flags.positionals.length !== 1) throw new UsageError('expected one SQL argument (quote it)');
    sql = flags.positionals[0]!;
  }
  return { sql, json: flags.values.json === true, source: stringFlag(flags, 'source') ?? 's3', config: stringFlag(flags, 'config') };
}

export interface ArchiverHandle {
  archiver: Archiver;
  metricsPort: number | undefined;
  stop(): Promise<void>;
}

/** Starts the archiver; resolves once it consumes. */
export async function start(config: NetmonConfig, logger: Logger = createLogger('archiver', config.log.level)): Promise<ArchiverHandle> {
  const archiver = new Archiver(config, { logger });
  try {
    await archiver.start();
  } catch (err) {
    await archiver.stop().catch(() => undefined);
    throw err;
  }
  return { archiver, metricsPort: archiver.metricsPort, stop: () => archiver.stop() };
}

export async function runArchiverCommand(argv: string[]): Promise<number> {
  let args: ArchiverArgs | undefined;
  try {
    args = parseArchiverArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`netmon archiver: ${err.reason}\n\n${ARCHIVER_HELP}`);
    return 2;
  }
  if (!args) return 0; // --help
  const config = loadConfig(args.config);
  const logger = createLogger('archiver', config.log.level);
  let handle: ArchiverHandle;
  try {
    handle = await start(config, logger);
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    logger.fatal({ err: describeError(err) }, 'archiver failed to start');
    // The one line an operator reads first (the log above is for the collectors).
    if (err instanceof S3UnavailableError) process.stderr.write(`${err.message}\n`);
    return 1;
  }
  await new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      logger.info({ signal }, 'signal received');
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      resolve();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  await handle.stop();
  return 0;
}

export async function runQueryCommand(argv: string[], io: CommandIo = { out: process.stdout, err: process.stderr }): Promise<number> {
  let args: QueryArgs | undefined;
  try {
    args = parseQueryArgs(argv, io.out);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.err.write(`netmon query: ${err.reason}\n\n${QUERY_HELP}`);
    return 2;
  }
  if (!args) return 0; // --help
  const { sql, source } = args;
  let dir: string;
  let lag: Promise<string> = Promise.resolve('');
  if (source === 's3') {
    const config = loadConfig(args.config);
    const store = new ArchiveStore(createS3Client(config.s3), config.s3);
    dir = path.join(cacheRoot(), 'archive', config.s3.bucket, config.s3.prefix);
    try {
      const r = await syncArchive(store, config.s3.prefix, dir);
      const st = await syncStatusArchive(store, config.s3.prefix, statusDir(dir));
      io.err.write(
        `netmon query: s3://${config.s3.bucket}/${config.s3.prefix}: ${r.objects} objects, ${r.downloaded} fetched into ${dir} (sensor status: ${st.objects} objects, ${st.downloaded} fetched)\n`,
      );
    } catch (err) {
      io.err.write(
        isUnreachable(err) ? `${unreachableLine('query', 'S3', config, err)}\n` : `netmon query: cannot read the archive from S3: ${describeError(err)}\n`,
      );
      return 1;
    } finally {
      store.client.destroy();
    }
    lag = archiverLag(config).then(
      (l) => waitingLine(l, config),
      () => '', // Kafka away: the archive is all there is to say
    );
  } else {
    dir = path.resolve(source);
  }
  const q = await ArchiveQuery.open(dir);
  try {
    if (args.json) {
      const rows = await q.jsonRows(sql);
      if (rows.length > 0) io.out.write(`${rows.join('\n')}\n`);
    } else {
      const t = await q.table(sql);
      io.out.write(formatTable(t.columns, t.rows));
    }
    const waiting = await lag;
    if (waiting) io.err.write(`${waiting}\n`);
    return 0;
  } catch (err) {
    io.err.write(`netmon query: ${(err as Error).message}\n`);
    return 1;
  } finally {
    q.close();
  }
}
