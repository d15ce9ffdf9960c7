// `netmon query "SQL"`: the archive queried locally with DuckDB. The objects
// come from S3 (mirrored into a cache folder, downloading only what is new)
// or from a local folder laid out like the bucket (dt=YYYY-MM-DD/hour=HH/...).
// Two views have the Athena table's columns, partition columns included:
// `netmon_events` (the name of infra/athena/network_events_view.sql, which the
// shared queries of infra/athena/queries read) and `network_events` (the
// table's name). Both read v1 and v2 objects together, and give the fields a
// v1 object lacks the contract's defaults (shared/spec/netmon.md: never NULL),
// as a reader of the Avro records would; in Athena only the view does.
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { type DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import { QueryError } from './errors';
import { type ColumnType, PARTITION_COLUMNS, addedColumns, duckdbType, eventColumns, trinoType } from './columns';
import { DATA_SUFFIX, parseDataKey } from './layout';
import type { ArchiveStore } from './store';

/** The cache folder for an S3 archive: $NETMON_CACHE_DIR, else $XDG_CACHE_HOME/netmon, else ~/.cache/netmon. */
export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.NETMON_CACHE_DIR) return env.NETMON_CACHE_DIR;
  return path.join(env.XDG_CACHE_HOME || path.join(homedir(), '.cache'), 'netmon');
}

function listLocal(dir: string, base = dir): Map<string, number> {
  const out = new Map<string, number>();
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) for (const [k, v] of listLocal(p, base)) out.set(k, v);
    else if (name.endsWith(DATA_SUFFIX)) out.set(path.relative(base, p).split(path.sep).join('/'), st.size);
  }
  return out;
}

export interface SyncResult {
  dir: string;
  objects: number;
  downloaded: number;
  removed: number;
}

/**
 * Mirrors the data objects under the store's prefix into `dir`: downloads what
 * is missing or of another size, removes what S3 no longer has.
 */
export async function syncArchive(store: ArchiveStore, prefix: string, dir: string, concurrency = 8): Promise<SyncResult> {
  const remote = (await store.list(`${prefix}/dt=`)).filter((o) => parseDataKey(o.key) !== undefined);
  const local = listLocal(dir);
  const wanted = new Set<string>();
  const todo: { key: string; rel: string }[] = [];
  for (const o of remote) {
    const rel = o.key.slice(prefix.length + 1);
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

/**
 * A SELECT of the archive folder `dir` as stored, columns as Athena's table
 * declares them: NULL where an object lacks a field (in v1 objects, the fields
 * added since).
 */
export function archiveSelect(dir: string, hasFiles: boolean): string {
  const cols = eventColumns();
  const all = [...cols, ...PARTITION_COLUMNS];
  if (!hasFiles) {
    // An empty archive still has the columns, so queries run and return nothing.
    return `SELECT ${all.map((c) => `CAST(NULL AS ${duckdbType(c.type)}) AS "${c.name}"`).join(', ')} WHERE false`;
  }
  const names = all.map((c) => `"${c.name}"`).join(', ');
  const columns = cols.map((c) => `${sqlString(c.name)}: ${sqlString(duckdbType(c.type))}`).join(', ');
  const glob = path.join(dir, 'dt=*', 'hour=*', `*${DATA_SUFFIX}`);
  return (
    `SELECT ${names} FROM read_json(${sqlString(glob)}, ` +
    `format = 'newline_delimited', compression = 'gzip', hive_partitioning = true, ` +
    `hive_types = {'dt': 'VARCHAR', 'hour': 'INTEGER'}, columns = {${columns}})`
  );
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

/** The columns of the views: every column of `from`, those a v1 object lacks with their defaults. */
export function defaultsSelect(from: string): string {
  const cols = eventColumns();
  const added = new Set(addedColumns(cols).map((c) => c.name));
  const list = [
    ...cols.map((c) => (added.has(c.name) ? `${withDefault(`"${c.name}"`, c.type, c.default, c.name)} AS "${c.name}"` : `"${c.name}"`)),
    ...PARTITION_COLUMNS.map((c) => `"${c.name}"`),
  ];
  return `SELECT ${list.join(', ')} FROM ${from}`;
}

/** The statements that create `network_events` and `netmon_events` over the archive folder `dir`. */
export function viewSql(dir: string, hasFiles: boolean): string[] {
  return [
    `CREATE OR REPLACE VIEW ${EVENTS_TABLE} AS ${defaultsSelect(`(${archiveSelect(dir, hasFiles)}) AS archive`)}`,
    `CREATE OR REPLACE VIEW ${EVENTS_VIEW} AS SELECT * FROM ${EVENTS_TABLE}`,
  ];
}

/** Presto/Athena functions the example queries use, so that they run here unchanged. */
const COMPAT_MACROS = [
  'CREATE OR REPLACE MACRO from_iso8601_timestamp(s) AS CAST(s AS TIMESTAMPTZ)',
  "CREATE OR REPLACE MACRO to_iso8601(t) AS strftime(t, '%Y-%m-%dT%H:%M:%S.%gZ')",
];

export class ArchiveQuery {
  private constructor(
    private readonly instance: DuckDBInstance,
    readonly connection: DuckDBConnection,
    readonly dir: string,
  ) {}

  /** Opens an in-memory DuckDB with `netmon_events` and `network_events` over the archive folder `dir`. */
  static async open(dir: string): Promise<ArchiveQuery> {
    const instance = await DuckDBInstance.create(':memory:');
    const connection = await instance.connect();
    const q = new ArchiveQuery(instance, connection, dir);
    await connection.run("SET TimeZone = 'UTC'").catch(() => undefined);
    for (const m of COMPAT_MACROS) await connection.run(m);
    for (const v of viewSql(path.resolve(dir), listLocal(dir).size > 0)) await connection.run(v);
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
