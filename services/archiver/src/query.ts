// `netmon query "SQL"`: the archive queried locally with DuckDB. The objects
// come from S3 (mirrored into a cache folder, downloading only what is new)
// or from a local folder laid out like the bucket (dt=YYYY-MM-DD/hour=HH/...).
// Two views have the Athena table's columns, partition columns included:
// `netmon_events` (the name of infra/athena/network_events_view.sql, which the
// shared queries of infra/athena/queries read) and `network_events` (the
// table's name). Both read v1 and v2 objects together, and give the fields a
// v1 object lacks the contract's defaults (shared/spec/netmon.md: never NULL),
// as a reader of the Avro records would; in Athena only the view does.
//
// Both formats at once: the JSON objects of s3.prefix and the Parquet objects
// of s3.prefix + "-parquet" are mirrored into one cache folder (their names
// differ by suffix) and the views are the UNION ALL of the two, as the view of
// infra/athena/network_events_both_view.sql is in Athena. The archiver's
// manifests, shared by the two formats, put each event in one format only, so
// every event comes back once. Both views end with `event_time` (TIMESTAMP, ms,
// UTC: stored in Parquet objects, computed from `timestamp` for JSON ones), then
// dt and hour.
//
// The sensors' status records: a third view, `sensor_status`, the columns of
// Athena's table of that name (infra/athena/sensor_status.sql), over the status
// archive (s3.prefix + "-status", mirrored into the cache folder's sibling
// "<folder>-status"; for a local folder DIR, DIR-status).
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { type DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import { QueryError } from './errors';
import {
  type Column,
  type ColumnType,
  EVENT_TIME_COLUMN,
  LAST_PARQUET_V1_FIELD,
  LAST_V1_FIELD,
  PARTITION_COLUMNS,
  addedColumns,
  duckdbType,
  eventColumns,
  parquetColumns,
  statusColumns,
  trinoType,
} from './columns';
import { type ArchiveFormat, JSON_SUFFIX, PARQUET_SUFFIX, STATUS_PREFIX_SUFFIX, dataPrefix, parseDataKey, statusPrefix } from './layout';
import type { ArchiveStore } from './store';

/** The cache folder for an S3 archive: $NETMON_CACHE_DIR, else $XDG_CACHE_HOME/netmon, else ~/.cache/netmon. */
export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.NETMON_CACHE_DIR) return env.NETMON_CACHE_DIR;
  return path.join(env.XDG_CACHE_HOME || path.join(homedir(), '.cache'), 'netmon');
}

/** The data objects under `dir` (both formats), relative path → size. */
function listLocal(dir: string, base = dir): Map<string, number> {
  const out = new Map<string, number>();
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) for (const [k, v] of listLocal(p, base)) out.set(k, v);
    else if (name.endsWith(JSON_SUFFIX) || name.endsWith(PARQUET_SUFFIX)) out.set(path.relative(base, p).split(path.sep).join('/'), st.size);
  }
  return out;
}

/** Whether `dir` holds data objects of `format` in its dt=.../hour=... folders. */
function hasObjects(dir: string, format: ArchiveFormat): boolean {
  const suffix = format === 'parquet' ? PARQUET_SUFFIX : JSON_SUFFIX;
  for (const rel of listLocal(dir).keys()) if (rel.endsWith(suffix) && /^dt=[^/]+\/hour=[^/]+\/[^/]+$/.test(rel)) return true;
  return false;
}

export interface SyncResult {
  dir: string;
  objects: number;
  downloaded: number;
  removed: number;
}

/**
 * Mirrors the data objects of both formats of the archive at `prefix` (JSON
 * under prefix, Parquet under prefix + "-parquet") into `dir`, side by side
 * (dt=.../hour=.../NAME.json.gz and NAME.parquet): downloads what is missing or
 * of another size, removes what S3 no longer has.
 */
export async function syncArchive(store: ArchiveStore, prefix: string, dir: string, concurrency = 8): Promise<SyncResult> {
  const bases = (['json', 'parquet'] as const).map((format) => ({ base: dataPrefix(prefix, format), format }));
  return mirror(store, bases, dir, concurrency);
}

/** The folder of the status archive beside an archive folder: DIR-status, as <s3.prefix>-status sits beside <s3.prefix>. */
export function statusDir(dir: string): string {
  return `${dir}${STATUS_PREFIX_SUFFIX}`;
}

/** Mirrors the status archive of `prefix` (its JSON objects under prefix + "-status") into `dir` (statusDir of the events' folder). */
export async function syncStatusArchive(store: ArchiveStore, prefix: string, dir: string, concurrency = 8): Promise<SyncResult> {
  return mirror(store, [{ base: statusPrefix(prefix), format: 'json' }], dir, concurrency);
}

async function mirror(store: ArchiveStore, bases: { base: string; format: ArchiveFormat }[], dir: string, concurrency: number): Promise<SyncResult> {
  const remote: { key: string; size: number; rel: string }[] = [];
  for (const { base, format } of bases) {
    for (const o of await store.list(`${base}/dt=`)) {
      if (parseDataKey(o.key)?.format === format) remote.push({ ...o, rel: o.key.slice(base.length + 1) });
    }
  }
  const local = listLocal(dir);
  const wanted = new Set<string>();
  const todo: { key: string; rel: string }[] = [];
  for (const o of remote) {
    const rel = o.rel;
    wanted.add(rel);
    if (local.get(rel) !== o.size) todo.push({ key: o.key, rel });
  }
  let next = 0;
  const worker = async () => {
    while (next < todo.length) {
      const { key, rel } = todo[next++]!;
      const file = path.join(dir, rel);
      mkdirSync(path.dirname(file), { recursive: true });
      const tmp = `${file}.${process.pid}.part`;
      writeFileSync(tmp, await store.getBytes(key));
      renameSync(tmp, file);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, todo.length) }, worker));
  let removed = 0;
  for (const rel of local.keys()) {
    if (!wanted.has(rel)) {
      rmSync(path.join(dir, rel), { force: true });
      removed++;
    }
  }
  return { dir, objects: remote.length, downloaded: todo.length, removed };
}

const sqlString = (s: string) => `'${s.replace(/'/g, "''")}'`;

/** The view the shared queries read (infra/athena/network_events_view.sql): the archive with the spec's defaults. */
export const EVENTS_VIEW = 'netmon_events';
/** The Athena table's name; in `netmon query` it reads like EVENTS_VIEW, so SQL written for either runs. */
export const EVENTS_TABLE = 'network_events';

/** The Parquet table of infra/athena/network_events_parquet.sql. */
export const PARQUET_TABLE = 'network_events_parquet';

/** The sensors' status records: the table of infra/athena/sensor_status.sql, and netmon query's view of the same name. */
export const STATUS_TABLE = 'sensor_status';

const emptySelect = (cols: Column[]) => `SELECT ${cols.map((c) => `CAST(NULL AS ${duckdbType(c.type)}) AS "${c.name}"`).join(', ')} WHERE false`;
const globs = (dirs: string[], suffix: string) => `[${dirs.map((d) => sqlString(path.join(d, 'dt=*', 'hour=*', `*${suffix}`))).join(', ')}]`;
const HIVE = `hive_partitioning = true, hive_types = {'dt': 'VARCHAR', 'hour': 'INTEGER'}`;

/**
 * A SELECT of the JSON objects in the folders `dirs` as stored, columns as
 * Athena's table (network_events.sql) declares them: NULL where an object lacks
 * a field (in v1 objects, the fields added since).
 */
export function jsonTableSelect(dirs: string[], cols: Column[] = eventColumns()): string {
  const all = [...cols, ...PARTITION_COLUMNS];
  const withFiles = dirs.filter((d) => hasObjects(d, 'json'));
  // An empty archive still has the columns, so queries run and return nothing.
  if (withFiles.length === 0) return emptySelect(all);
  const names = all.map((c) => `"${c.name}"`).join(', ');
  const columns = cols.map((c) => `${sqlString(c.name)}: ${sqlString(duckdbType(c.type))}`).join(', ');
  return (
    `SELECT ${names} FROM read_json(${globs(withFiles, JSON_SUFFIX)}, ` + `format = 'newline_delimited', compression = 'gzip', ${HIVE}, columns = {${columns}})`
  );
}

/** The JSON table over one folder (an empty one when `hasFiles` is false). */
export function archiveSelect(dir: string, hasFiles: boolean): string {
  return jsonTableSelect(hasFiles ? [dir] : []);
}

/**
 * A SELECT of the Parquet objects in `dirs`, columns as Athena's table
 * (network_events_parquet.sql) declares them, by name: NULL for a column an
 * object lacks (one added after it was written).
 */
export function parquetTableSelect(dirs: string[]): string {
  const all = [...parquetColumns(), ...PARTITION_COLUMNS];
  const withFiles = dirs.filter((d) => hasObjects(d, 'parquet'));
  if (withFiles.length === 0) return emptySelect(all);
  const list = all.map((c) => `CAST("${c.name}" AS ${duckdbType(c.type)}) AS "${c.name}"`).join(', ');
  return `SELECT ${list} FROM read_parquet(${globs(withFiles, PARQUET_SUFFIX)}, ${HIVE}, union_by_name = true)`;
}

function sqlLiteral(value: unknown, where: string): string {
  if (typeof value === 'string') return sqlString(value);
  if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
  throw new Error(`${where}: default ${JSON.stringify(value)} has no SQL literal here`);
}

/**
 * SQL for `expr` with `fallback` (the Avro default) wherever it is NULL; a struct
 * is rebuilt field by field, so a missing struct reads as its default and keeps
 * its nested shape (connection.outcome). Plain COALESCE, CAST and ROW: the same
 * text is valid in Athena (Trino) and DuckDB.
 */
export function withDefault(expr: string, type: ColumnType, fallback: unknown, where = expr): string {
  if (type.kind !== 'struct') return `COALESCE(${expr}, ${sqlLiteral(fallback, where)})`;
  const fields = type.fields.map((f) => {
    const inner = (fallback as Record<string, unknown> | undefined)?.[f.name] ?? f.default;
    if (inner === undefined) throw new Error(`${where}.${f.name}: no default`);
    return withDefault(`${expr}."${f.name}"`, f.type, inner, `${where}.${f.name}`);
  });
  return `CAST(ROW(${fields.join(', ')}) AS ${trinoType(type)})`;
}

/** event_time of a JSON object's row: its `timestamp` read as Athena's view reads it (NULL if not a time). */
export const JSON_EVENT_TIME = `try(CAST(from_iso8601_timestamp("timestamp") AS ${duckdbType(EVENT_TIME_COLUMN.type)}))`;

/**
 * The columns of the views: every column of `from`, those added after `since`
 * with their defaults (after LAST_V1_FIELD for JSON objects, which may be v1;
 * after LAST_PARQUET_V1_FIELD for Parquet ones, which all have v2's), then
 * event_time (`eventTime`), dt and hour.
 */
export function defaultsSelect(from: string, since: string = LAST_V1_FIELD, eventTime = JSON_EVENT_TIME): string {
  const cols = eventColumns();
  const added = new Set(addedColumns(cols, since).map((c) => c.name));
  const list = [
    ...cols.map((c) => (added.has(c.name) ? `${withDefault(`"${c.name}"`, c.type, c.default, c.name)} AS "${c.name}"` : `"${c.name}"`)),
    `${eventTime} AS "${EVENT_TIME_COLUMN.name}"`,
    ...PARTITION_COLUMNS.map((c) => `"${c.name}"`),
  ];
  return `SELECT ${list.join(', ')} FROM ${from}`;
}

/** The statements that create `network_events` and `netmon_events` over the archive folders `dirs` (JSON and Parquet objects). */
export function viewSql(dirs: string | string[], _hasFiles?: boolean): string[] {
  const list = typeof dirs === 'string' ? [dirs] : dirs;
  const json = list.some((d) => hasObjects(d, 'json'));
  const parquet = list.some((d) => hasObjects(d, 'parquet'));
  const parts: string[] = [];
  if (json || !parquet) parts.push(defaultsSelect(`(${jsonTableSelect(list)}) AS archive`));
  if (parquet) parts.push(defaultsSelect(`(${parquetTableSelect(list)}) AS archive`, LAST_PARQUET_V1_FIELD, `"${EVENT_TIME_COLUMN.name}"`));
  return [`CREATE OR REPLACE VIEW ${EVENTS_TABLE} AS ${parts.join(' UNION ALL ')}`, `CREATE OR REPLACE VIEW ${EVENTS_VIEW} AS SELECT * FROM ${EVENTS_TABLE}`];
}

/**
 * The statement that creates `sensor_status` over the status archive folders
 * `dirs`: the columns of Athena's table (sensor_status.sql), dt and hour, as
 * the JSON SerDe reads them (every status object has every field: one version).
 */
export function statusViewSql(dirs: string[]): string {
  return `CREATE OR REPLACE VIEW ${STATUS_TABLE} AS ${jsonTableSelect(dirs, statusColumns())}`;
}

/** Presto/Athena functions the example queries and the Athena views use, so that they run here unchanged. */
export const COMPAT_MACROS = [
  'CREATE OR REPLACE MACRO from_iso8601_timestamp(s) AS CAST(s AS TIMESTAMPTZ)',
  "CREATE OR REPLACE MACRO to_iso8601(t) AS strftime(t, '%Y-%m-%dT%H:%M:%S.%gZ')",
];

export class ArchiveQuery {
  private constructor(
    private readonly instance: DuckDBInstance,
    readonly connection: DuckDBConnection,
    readonly dirs: string[],
  ) {}

  /** The first archive folder. */
  get dir(): string {
    return this.dirs[0]!;
  }

  /**
   * Opens an in-memory DuckDB with `netmon_events` and `network_events` over
   * the archive folders `dirs` (the JSON and the Parquet objects in each), and
   * `sensor_status` over the status folders `statusDirs` (default: each
   * folder's statusDir sibling).
   */
  static async open(dirs: string | string[], statusDirs?: string[]): Promise<ArchiveQuery> {
    const list = (typeof dirs === 'string' ? [dirs] : dirs).map((d) => path.resolve(d));
    const instance = await DuckDBInstance.create(':memory:');
    const connection = await instance.connect();
    const q = new ArchiveQuery(instance, connection, list);
    await connection.run("SET TimeZone = 'UTC'").catch(() => undefined);
    for (const m of COMPAT_MACROS) await connection.run(m);
    for (const v of viewSql(list)) await connection.run(v);
    await connection.run(statusViewSql((statusDirs ?? list.map(statusDir)).map((d) => path.resolve(d))));
    return q;
  }

  /** Rows as JSON text, one per row, field order and JSON types kept (DuckDB's to_json). */
  async jsonRows(sql: string): Promise<string[]> {
    const body = sql.trim().replace(/;+\s*$/, '');
    try {
      const reader = await this.connection.runAndReadAll(`SELECT to_json(netmon_row) AS j FROM (${body}) AS netmon_row`);
      return reader.getRows().map((r) => String(r[0]));
    } catch (wrapped) {
      // Not a query that nests (e.g. PRAGMA, SET): run it as is.
      try {
        const reader = await this.connection.runAndReadAll(body);
        return reader.getRowObjectsJson().map((r) => JSON.stringify(r));
      } catch (err) {
        throw new QueryError((err as Error).message, { cause: wrapped });
      }
    }
  }

  /** Column names and rows as display strings. */
  async table(sql: string): Promise<{ columns: string[]; rows: string[][] }> {
    let reader: Awaited<ReturnType<DuckDBConnection['runAndReadAll']>>;
    try {
      reader = await this.connection.runAndReadAll(sql);
    } catch (err) {
      throw new QueryError((err as Error).message, { cause: err });
    }
    const columns = reader.columnNames();
    const rows = reader.getRowsJson().map((r) => r.map((v) => (v === null ? 'NULL' : typeof v === 'string' ? v : JSON.stringify(v))));
    return { columns, rows };
  }

  close(): void {
    this.connection.closeSync();
    this.instance.closeSync();
  }
}

/** A plain text table, columns padded to their widest cell. */
export function formatTable(columns: string[], rows: string[][]): string {
  const widths = columns.map((c, i) => Math.max(c.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(columns), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line), `(${rows.length} row${rows.length === 1 ? '' : 's'})`, ''].join('\n');
}
