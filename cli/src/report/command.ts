// `netmon report [--since 24h] [--until TIME] [--out report.html] [--top N]
//                [--source s3|DIR] [--config FILE]`
// Reads the archive the way `netmon query` does (mirror the bucket into the
// cache, DuckDB views netmon_events over it), runs each section's SQL, and
// writes one self-contained HTML page. Progress on stderr; 0 ok, 1 failure
// (one line saying why), 2 usage.
import { readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ArchiveQuery, ArchiveStore, archiverLag, cacheRoot, syncArchive } from '@netmon/archiver';
import {
  type NetmonConfig,
  UsageError,
  checkS3,
  createS3Client,
  describeError,
  isUnreachable,
  loadConfig,
  parseFlags,
  positiveNumberFlag,
  rootCause,
  stringFlag,
  unreachableLine,
} from '@netmon/common';
import { type PageModel, type SectionResult, renderPage } from './page';
import { EXTENT_SQL, type Row, SECTIONS, SUMMARY_SQL } from './sections';
import { parseWindow } from './window';

export const REPORT_HELP = `Usage: netmon report [options]

Writes one self-contained HTML page about the archive's events in a time
window: connections over time per type, top binaries, top remote addresses
with their DNS names, new binaries talking to the network, connections from
containers, refused connects, bytes per binary. It reads the archive as
\`netmon query\` does, and shows each chart's SQL, which runs in \`netmon query\`.
The page fetches nothing when opened (Chart.js and the data are inside it).

Options:
  --since WHEN     start of the window: a duration back from --until (30m, 24h,
                   7d, 2w) or a time (2025-06-01T10:00:00Z, 2025-06-01); default 24h
  --until TIME     end of the window (excluded); default now
  --out FILE       the page to write (default report.html; - for stdout)
  --top N          rows per table and chart (default 20)
  --source s3|DIR  s3 (default): mirror the bucket's objects into the cache
                   ($NETMON_CACHE_DIR, else ~/.cache/netmon) first; DIR: a local
                   folder laid out like the prefix (dt=.../hour=.../*.json.gz)
  --config FILE    netmon.yaml for the S3 settings (default: $NETMON_CONFIG, else the local stack)
  --help           this text
`;

export interface ReportIo {
  out: { write(text: string): unknown };
  err: { write(text: string): unknown };
}

export interface ReportArgs {
  since?: string;
  until?: string;
  out: string;
  top: number;
  source: string;
  config?: string;
}

/** `netmon report` argv; undefined after writing the help to `out` for --help. Throws UsageError. */
export function parseReportArgs(argv: string[], out: ReportIo['out'] = process.stdout): ReportArgs | undefined {
  const flags = parseFlags(
    argv,
    {
      since: { type: 'string' },
      until: { type: 'string' },
      out: { type: 'string', short: 'o' },
      top: { type: 'string' },
      source: { type: 'string' },
      config: { type: 'string' },
    },
    REPORT_HELP,
    out,
  );
  if (!flags) return undefined;
  if (flags.positionals.length > 0) throw new UsageError(`unexpected argument ${flags.positionals[0]}`);
  const top = positiveNumberFlag(flags, 'top') ?? 20;
  if (!Number.isInteger(top)) throw new UsageError(`--top: expected a whole number, found "${stringFlag(flags, 'top')}"`);
  return {
    since: stringFlag(flags, 'since'),
    until: stringFlag(flags, 'until'),
    out: stringFlag(flags, 'out') ?? 'report.html',
    top,
    source: stringFlag(flags, 'source') ?? 's3',
    config: stringFlag(flags, 'config'),
  };
}

/** Chart.js's minified UMD build, from the installed package. */
export function loadChartJs(): { code: string; version: string } {
  // The package's exports map hides dist/; its CommonJS entry sits beside the UMD build.
  const file = path.join(path.dirname(require.resolve('chart.js')), 'chart.umd.min.js');
  const code = readFileSync(file, 'utf8');
  return { code, version: /Chart\.js v(\S+)/.exec(code)?.[1] ?? 'unknown' };
}

class ArchiveUnreachable extends Error {
  override name = 'ArchiveUnreachable';
}

/** Mirrors the configured archive into the cache; throws ArchiveUnreachable with the one line to print. */
async function mirror(config: NetmonConfig, progress: (line: string) => void): Promise<{ dir: string; where: string }> {
  const { bucket, prefix } = config.s3;
  const where = `s3://${bucket}/${prefix}`;
  const cannotRead = (err: unknown) =>
    new ArchiveUnreachable(
      isUnreachable(err)
        ? unreachableLine('report', 'S3', config, err)
        : `netmon report: cannot read the archive ${where}${config.s3.endpoint ? ` at ${config.s3.endpoint}` : ''}: ${rootCause(err) || (err as Error).name}`,
    );
  // One bounded request first: a server that is down or does not answer fails
  // here within seconds, instead of in the S3 client's retries of the listing.
  try {
    await checkS3(config);
  } catch (err) {
    throw cannotRead(err);
  }
  const store = new ArchiveStore(createS3Client(config.s3), config.s3);
  const dir = path.join(cacheRoot(), 'archive', bucket, prefix);
  progress(`reading ${where} into ${dir}`);
  const started = Date.now();
  try {
    const r = await syncArchive(store, prefix, dir);
    progress(`${where}: ${r.objects} objects, ${r.downloaded} fetched (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  } catch (err) {
    throw cannotRead(err);
  } finally {
    store.client.destroy();
  }
  return { dir, where };
}

/** The line about events the archiver has not written yet ('' when none wait, or Kafka cannot say). */
async function waitingNote(config: NetmonConfig): Promise<string> {
  try {
    const { waiting } = await archiverLag(config);
    return waiting > 0
      ? `about ${waiting} events are still waiting for the archiver (group ${config.archiver.groupId}) and are not in this report; ` +
          `it writes them within ${config.archiver.idleFlushS} s of the last event, ${config.archiver.flushSpanS} s at most`
      : '';
  } catch {
    return ''; // Kafka away: the archive is all there is to say
  }
}

export interface ReportResult {
  html: string;
  model: PageModel;
}

/** Runs the report's queries over the archive folder `dir` and renders the page. */
export async function buildReport(
  dir: string,
  opts: { since?: string; until?: string; top?: number; source?: string; now?: Date },
  progress: (line: string) => void = () => {},
): Promise<ReportResult> {
  const window = parseWindow(opts.since, opts.until, opts.now);
  const top = opts.top ?? 20;
  const q = await ArchiveQuery.open(dir);
  try {
    const rows = async (sql: string): Promise<Row[]> => (await q.jsonRows(sql)).map((r) => JSON.parse(r) as Row);
    const steps = SECTIONS.length + 1;
    let t = Date.now();
    const [summary = {}] = await rows(SUMMARY_SQL(window));
    const [extent = {}] = await rows(EXTENT_SQL(window));
    progress(`[1/${steps}] summary: ${summary.events ?? 0} events in the window (${((Date.now() - t) / 1000).toFixed(1)} s)`);
    const sections: SectionResult[] = [];
    for (const [i, section] of SECTIONS.entries()) {
      t = Date.now();
      const sql = section.sql(window, top);
      const got = await rows(sql);
      sections.push({ section, sql, rows: got, chart: section.chart?.(got, window) });
      progress(
        `[${i + 2}/${steps}] ${section.title.toLowerCase()}: ${got.length} row${got.length === 1 ? '' : 's'} (${((Date.now() - t) / 1000).toFixed(1)} s)`,
      );
    }
    const model: PageModel = {
      window,
      generatedAt: opts.now ?? new Date(),
      source: opts.source ?? dir,
      summary,
      extent,
      sections,
      top,
      chartJs: loadChartJs(),
    };
    return { html: renderPage(model), model };
  } finally {
    q.close();
  }
}

export async function runReportCommand(argv: string[], io: ReportIo = { out: process.stdout, err: process.stderr }): Promise<number> {
  let args: ReportArgs | undefined;
  try {
    args = parseReportArgs(argv, io.out);
    // The window's flags are checked before anything is read.
    if (args) parseWindow(args.since, args.until);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.err.write(`netmon report: ${err.reason}\n\n${REPORT_HELP}`);
    return 2;
  }
  if (!args) return 0; // --help
  const progress = (line: string) => io.err.write(`netmon report: ${line}\n`);

  let dir: string;
  let where: string;
  let waiting: Promise<string> = Promise.resolve('');
  if (args.source === 's3') {
    const config = loadConfig(args.config);
    try {
      ({ dir, where } = await mirror(config, progress));
    } catch (err) {
      if (!(err instanceof ArchiveUnreachable)) throw err;
      io.err.write(`${err.message}\n`);
      return 1;
    }
    waiting = waitingNote(config); // asked while the queries run
  } else {
    dir = path.resolve(args.source);
    where = dir;
    try {
      if (!statSync(dir).isDirectory()) throw new Error('not a folder');
    } catch (err) {
      io.err.write(`netmon report: --source ${args.source}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such folder' : (err as Error).message}\n`);
      return 1;
    }
  }

  let result: ReportResult;
  try {
    result = await buildReport(dir, { since: args.since, until: args.until, top: args.top, source: where }, progress);
  } catch (err) {
    io.err.write(`netmon report: ${describeError(err)}\n`);
    return 1;
  }
  const { html, model } = result;
  const note = await waiting;
  if (note) progress(note);
  if (args.out === '-') {
    io.out.write(html);
  } else {
    const out = path.resolve(args.out);
    const tmp = `${out}.${process.pid}.part`;
    try {
      writeFileSync(tmp, html);
      renameSync(tmp, out);
    } catch (err) {
      io.err.write(`netmon report: cannot write ${args.out}: ${(err as Error).message}\n`);
      return 1;
    }
    const kib = Math.round(Buffer.byteLength(html) / 1024);
    progress(`wrote ${out} (${kib} KiB; ${model.summary.events ?? 0} events from ${model.window.start.toISOString()} to ${model.window.end.toISOString()})`);
  }
  return 0;
}
