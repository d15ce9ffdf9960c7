// Parquet objects (archiver.format: parquet), written by DuckDB
// (@duckdb/node-api) from a flush group's NDJSON: the lines the JSON archive
// would hold, typed by the Avro contract (columns.ts), plus `event_time`.
//
// Why DuckDB: measured against hyparquet-writer 0.17 and parquet-wasm 0.8 with
// apache-arrow 21 on the same 200,000 events, Avro record to Parquet bytes, CPU
// of every thread (docs/athena.md, "The Parquet archive"): DuckDB from the
// spooled NDJSON lines 7.6 µs and 39 B per event (zstd); hyparquet-writer
// 35 µs and 40-64 B (gzip, snappy); parquet-wasm 82 µs and 44 B (zstd); the
// JSON path itself 12.5 µs and 85 B. DuckDB also reads the archive in
// `netmon query`, so one engine writes and reads it.
//
// One DuckDB instance per archiver, created on first use, one thread, one
// conversion at a time: the output is a function of the input rows (a replay
// writes the same bytes), and memory is bounded by one row group being built
// (about 2 KB per row of these events; 122,880 rows by default).
import { randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import { EVENT_TIME_COLUMN, duckdbType, eventColumns } from './columns';

export type ParquetCompression = 'zstd' | 'snappy';

export interface ParquetOptions {
  /** Scratch folder: inputs written from memory and outputs before they are read back. */
  tmpDir: string;
  /** Rows per row group (NETMON_ARCHIVER_PARQUET_ROW_GROUP_ROWS). */
  rowGroupRows?: number;
  /** Page compression: zstd (default; Athena engine v3 reads it) or snappy. */
  compression?: ParquetCompression;
}

/** DuckDB's default row group (120 vectors of 1024 rows): 3-6 MB of compressed Parquet for these events. */
export const DEFAULT_ROW_GROUP_ROWS = 122_880;

const sqlString = (s: string) => `'${s.replace(/'/g, "''")}'`;

/**
 * The SELECT that types an NDJSON file of NetworkEvents as the Parquet objects
 * hold them: the event's columns in the contract's order, then event_time (the
 * `timestamp` as a millisecond TIMESTAMP in UTC; NULL if it is not an RFC 3339
 * time, which the spec rules out). Needs TimeZone = 'UTC'.
 */
export function parquetRowsSql(file: string, compression: 'gzip' | 'uncompressed'): string {
  const cols = eventColumns();
  const columns = cols.map((c) => `${sqlString(c.name)}: ${sqlString(duckdbType(c.type))}`).join(', ');
  const names = cols.map((c) => `"${c.name}"`).join(', ');
  return (
    `SELECT ${names}, CAST(TRY_CAST("timestamp" AS TIMESTAMPTZ) AS TIMESTAMP_MS) AS "${EVENT_TIME_COLUMN.name}" ` +
    `FROM read_json(${sqlString(file)}, format = 'newline_delimited', compression = ${sqlString(compression)}, columns = {${columns}})`
  );
}

export class ParquetWriter {
  private db?: Promise<{ instance: DuckDBInstance; connection: DuckDBConnection }>;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  readonly rowGroupRows: number;
  readonly compression: ParquetCompression;

  constructor(readonly options: ParquetOptions) {
    this.rowGroupRows = options.rowGroupRows ?? DEFAULT_ROW_GROUP_ROWS;
    this.compression = options.compression ?? 'zstd';
  }

  private connect(): Promise<{ instance: DuckDBInstance; connection: DuckDBConnection }> {
    this.db ??= (async () => {
      // One thread: the bytes written are a function of the rows (and of nothing
      // else), and a conversion takes one core, not all of them.
      const instance = await DuckDBInstance.create(':memory:', {
        threads: '1',
        preserve_insertion_order: 'true',
        temp_directory: path.join(this.options.tmpDir, 'duckdb'),
      });
      const connection = await instance.connect();
      await connection.run("SET TimeZone = 'UTC'");
      return { instance, connection };
    })();
    return this.db;
  }

  /**
   * The Parquet object of the NetworkEvents in an NDJSON file (plain or gzip),
   * one per line. Throws unless it holds exactly `records` rows.
   */
  fromNdjson(file: string, compression: 'gzip' | 'uncompressed', records: number): Promise<Buffer> {
    const run = this.queue.then(() => this.convert(file, compression, records));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** The same from a gzip NDJSON body held in memory (a JSON flush that a Parquet manifest says to write as Parquet). */
  async fromGzip(body: Buffer, records: number): Promise<Buffer> {
    const file = path.join(this.options.tmpDir, `in-${randomBytes(6).toString('hex')}.json.gz`);
    await writeFile(file, body);
    try {
      return await this.fromNdjson(file, 'gzip', records);
    } finally {
      await rm(file, { force: true });
    }
  }

  private async convert(file: string, compression: 'gzip' | 'uncompressed', records: number): Promise<Buffer> {
    if (this.closed) throw new Error('the Parquet writer is closed');
    const { connection } = await this.connect();
    const out = path.join(this.options.tmpDir, `out-${randomBytes(6).toString('hex')}.parquet`);
    try {
      const reader = await connection.runAndReadAll(
        `COPY (${parquetRowsSql(file, compression)}) TO ${sqlString(out)} ` +
          `(FORMAT parquet, COMPRESSION ${this.compression}, ROW_GROUP_SIZE ${this.rowGroupRows})`,
      );
      const written = Number(reader.getRows()[0]?.[0]);
      if (written !== records) throw new Error(`Parquet writer: ${written} rows written of ${records}`);
      return await readFile(out);
    } finally {
      await rm(out, { force: true });
    }
  }

  /** Frees DuckDB once the conversions in flight are done. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    await this.queue;
    const db = this.db;
    this.db = undefined;
    if (!db) return;
    const { instance, connection } = await db.catch(() => ({ instance: undefined, connection: undefined }));
    connection?.closeSync();
    instance?.closeSync();
  }
}
