// Where things live in the bucket. Pure functions of the records, so that a
// replay computes the same names again.
//
//   <prefix>/dt=YYYY-MM-DD/hour=HH/<topic>+<partition>+<first offset>.json.gz           data, archiver.format json
//   <prefix>-parquet/dt=YYYY-MM-DD/hour=HH/<topic>+<partition>+<first offset>.parquet   data, archiver.format parquet
//   <prefix>/_flushes/<topic>+<partition>/<first offset>.json                            flush manifests (both formats)
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
  if (m) return { dt: m[1]!, hour: m[2]! };
  const ms = Date.parse(timestamp);
  if (Number.isNaN(ms)) return undefined;
  const iso = new Date(ms).toISOString();
  return { dt: iso.slice(0, 10), hour: iso.slice(11, 13) };
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
