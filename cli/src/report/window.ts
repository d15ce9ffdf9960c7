// The time window of a report: --since (a duration back from --until, or a
// start time) and --until (an end time, default now), and the time buckets its
// charts count in. Pure.
import { UsageError } from '@netmon/common';

/** date_trunc units: the same names in DuckDB and Athena (Trino). */
export type BucketUnit = 'minute' | 'hour' | 'day';

export interface ReportWindow {
  /** Inclusive. */
  start: Date;
  /** Exclusive. */
  end: Date;
  unit: BucketUnit;
}

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 };
export const BUCKET_MS: Record<BucketUnit, number> = { minute: 60_000, hour: 3_600_000, day: 86_400_000 };
/** Timestamps the flags accept: RFC 3339 with an explicit zone, or a bare date (UTC midnight). */
const TIME = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2}))?$/i;

/** A duration such as 90m, 24h, 7d, 2w, 30s in milliseconds; undefined when `text` is not one. */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)([smhdw])$/.exec(text.trim());
  if (!m) return undefined;
  const ms = Number(m[1]) * UNIT_MS[m[2]!]!;
  return ms > 0 ? Math.round(ms) : undefined;
}

function parseTime(flag: string, text: string): Date {
  const t = text.trim();
  if (!TIME.test(t))
    throw new UsageError(
      `--${flag}: expected a time such as 2025-06-01T10:00:00Z or 2025-06-01${flag === 'since' ? ', or a duration such as 24h' : ''}, found "${text}"`,
    );
  const ms = Date.parse(t.length === 10 ? `${t}T00:00:00Z` : t);
  if (Number.isNaN(ms)) throw new UsageError(`--${flag}: not a valid time: "${text}"`);
  return new Date(ms);
}

/** The unit that gives a readable number of points: minutes up to 3 h, hours up to 8 days, days beyond. */
export function bucketUnit(spanMs: number): BucketUnit {
  if (spanMs <= 3 * 3_600_000) return 'minute';
  if (spanMs <= 8 * 86_400_000) return 'hour';
  return 'day';
}

/** The window of `--since` (default 24h) and `--until` (default `now`). Throws UsageError. */
export function parseWindow(since: string | undefined, until: string | undefined, now: Date = new Date()): ReportWindow {
  const end = until === undefined || until === 'now' ? now : parseTime('until', until);
  const sinceText = since ?? '24h';
  const back = parseDuration(sinceText);
  const start = back !== undefined ? new Date(end.getTime() - back) : parseTime('since', sinceText);
  if (!(start.getTime() < end.getTime())) throw new UsageError(`--since ${sinceText}: the window must start before it ends (${end.toISOString()})`);
  return { start, end, unit: bucketUnit(end.getTime() - start.getTime()) };
}

/** The event timestamps' form (RFC 3339 UTC, milliseconds, Z): strings of it compare in time order. */
export const iso = (d: Date): string => d.toISOString();
/** The `dt` partition (UTC date) of a time. */
export const dateOf = (d: Date): string => d.toISOString().slice(0, 10);

/** The start of every bucket from the one holding `start` to the one holding the window's last millisecond. */
export function bucketStarts(w: ReportWindow, max = 5000): number[] {
  const step = BUCKET_MS[w.unit];
  const out: number[] = [];
  for (let t = Math.floor(w.start.getTime() / step) * step; t < w.end.getTime() && out.length < max; t += step) out.push(t);
  return out;
}
