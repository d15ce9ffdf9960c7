// Where things live in the bucket. Pure functions of the records, so that a
// replay computes the same names again.
//
//   <prefix>/dt=YYYY-MM-DD/hour=HH/<topic>+<partition>+<first offset>.json.gz           data, archiver.format json
//   <prefix>-parquet/dt=YYYY-MM-DD/hour=HH/<topic>+<partition>+<first offset>.parquet   data, archiver.format parquet
//   <prefix>/_flushes/<topic>+<partition>/<first offset>.json                            flush manifests (both formats)
//   <prefix>-status/dt=YYYY-MM-DD/hour=HH/<status topic>+<partition>+<first offset>.json.gz  sensor status records
//   <prefix>-status/_flushes/<status topic>+<partition>/<first offset>.json              their flush manifests
//
// Offsets are zero-padded to 20 digits so that a listing sorts by offset. The
// manifests sit under a folder whose name starts with "_": Athena's projected
// partition locations never reach it, and Hive treats "_" names as hidden.
//
// Each format has its own prefix, since an Athena table reads every object under
// its LOCATION: <prefix>-parquet is a sibling of <prefix>, not inside it. The
// manifests of both formats share one place, so that one conditional create
// decides the range of the flush at an offset and the format it is written in,
// whichever format the writer that comes next is configured for (a format switch
// after a crash, a rolling restart with a new format): the archive under one
// s3.prefix, JSON and Parquet together, holds every event once.
//
// The sensors' status records (the status topic) are an archive of their own
// under <prefix>-status, with the same partitions, names and manifests: a
// sibling again, so that its Athena table (sensor_status) reads only them. They
// are always gzip NDJSON (a heartbeat per host per status interval: small).
import type { ArchiveFormat } from '@netmon/common';

export type { ArchiveFormat };
export const OFFSET_WIDTH = 20;
/** The JSON objects' suffix (DATA_SUFFIX before Parquet existed). */
export const DATA_SUFFIX = '.json.gz';
export const JSON_SUFFIX = DATA_SUFFIX;
export const PARQUET_SUFFIX = '.parquet';
/** Appended to s3.prefix for the Parquet objects' prefix. */
export const PARQUET_PREFIX_SUFFIX = '-parquet';
export const FLUSHES_DIR = '_flushes';
/** Appended to s3.prefix for the sensor status records' prefix. */
export const STATUS_PREFIX_SUFFIX = '-status';

/** The prefix of the status archive (its objects and its manifests): s3.prefix + "-status". */
export function statusPrefix(prefix: string): string {
  return `${prefix}${STATUS_PREFIX_SUFFIX}`;
}

export function suffixOf(format: ArchiveFormat): string {
  return format === 'parquet' ? PARQUET_SUFFIX : JSON_SUFFIX;
}

/** The prefix a format's data objects live under: s3.prefix for JSON, s3.prefix + "-parquet" for Parquet. */
export function dataPrefix(prefix: string, format: ArchiveFormat): string {
  return format === 'parquet' ? `${prefix}${PARQUET_PREFIX_SUFFIX}` : prefix;
}

export interface HourPartition {
  /** YYYY-MM-DD, UTC. */
  dt: string;
  /** 00..23, UTC. */
  hour: string;
}

const RFC3339_UTC = /^(\d{4}-\d{2}-\d{2})T(\d{2}):\d{2}:\d{2}(\.\d+)?Z$/;

/**
 * The UTC hour partition of an event timestamp. The spec's form (RFC 3339 UTC,
 * "Z") is sliced without parsing; any other offset is parsed and converted.
 * Returns undefined for a timestamp that is not a date at all.
 */
export function hourOf(timestamp: string): HourPartition | undefined {
  const m = RFC3339_UTC.exec(timestamp);
  // The shape alone is not a date: 2026-13-45T99:… would make a partition no
  // Athena projection reaches. The fast path takes what really is one.
  if (m && realDateHour(m[1]!, m[2]!, timestamp)) return { dt: m[1]!, hour: m[2]! };
  if (m) return undefined;
  const ms = Date.parse(timestamp);
  if (Number.isNaN(ms)) return undefined;
  const iso = new Date(ms).toISOString();
  return { dt: iso.slice(0, 10), hour: iso.slice(11, 13) };
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** The date and hour exist, and so do the minutes and seconds that follow them (no Date: this runs per event). */
function realDateHour(dt: string, hour: string, timestamp: string): boolean {
  const year = Number(dt.slice(0, 4));
  const month = Number(dt.slice(5, 7));
  const day = Number(dt.slice(8, 10));
  if (month < 1 || month > 12 || day < 1) return false;
  const leap = month === 2 && year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  if (day > DAYS_IN_MONTH[month - 1]! + (leap ? 1 : 0)) return false;
  return Number(hour) <= 23 && Number(timestamp.slice(14, 16)) <= 59 && Number(timestamp.slice(17, 19)) <= 59;
}

/** Milliseconds since the epoch of an event timestamp (NaN when unreadable). */
export function timeOf(timestamp: string): number {
  return Date.parse(timestamp);
}

export function padOffset(offset: number): string {
  return String(offset).padStart(OFFSET_WIDTH, '0');
}

/**
 * A data object's key. `prefix` is s3.prefix: the format picks the data prefix and the suffix.
 * A topic name may contain "." "_" "-" but never "+" or "/", so "+" separates safely.
 */
export function dataKey(prefix: string, topic: string, partition: number, part: HourPartition, firstOffset: number, format: ArchiveFormat = 'json'): string {
  return `${dataPrefix(prefix, format)}/dt=${part.dt}/hour=${part.hour}/${topic}+${partition}+${padOffset(firstOffset)}${suffixOf(format)}`;
}

export function manifestKey(prefix: string, topic: string, partition: number, firstOffset: number): string {
  return `${manifestDir(prefix, topic, partition)}${padOffset(firstOffset)}.json`;
}

export function manifestDir(prefix: string, topic: string, partition: number): string {
  return `${prefix}/${FLUSHES_DIR}/${topic}+${partition}/`;
}

export interface ParsedDataKey extends HourPartition {
  topic: string;
  partition: number;
  firstOffset: number;
  format: ArchiveFormat;
}

const DATA_KEY = /(?:^|\/)dt=(\d{4}-\d{2}-\d{2})\/hour=(\d{2})\/([a-zA-Z0-9._-]+)\+(\d+)\+(\d+)(\.json\.gz|\.parquet)$/;

/** Reads a data object's key back, JSON or Parquet (undefined for anything else). */
export function parseDataKey(key: string): ParsedDataKey | undefined {
  const m = DATA_KEY.exec(key);
  if (!m) return undefined;
  const format: ArchiveFormat = m[6] === PARQUET_SUFFIX ? 'parquet' : 'json';
  return { dt: m[1]!, hour: m[2]!, topic: m[3]!, partition: Number(m[4]), firstOffset: Number(m[5]), format };
}
