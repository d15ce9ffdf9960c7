// The archive's columns, derived from the Avro contracts (schemas/avro/network-event.avsc,
// and sensor-status.avsc for the status archive): one source of truth for the
// DuckDB views of `netmon query` and for the test that checks the Athena DDL in
// infra/athena/.
import { readSchema } from '@netmon/common';

export type ColumnType = { kind: 'string' } | { kind: 'int' } | { kind: 'bigint' } | { kind: 'timestamp' } | { kind: 'struct'; fields: Column[] };

export interface Column {
  name: string;
  type: ColumnType;
  /** The Avro default of the field, when it has one (what a reader gives a record written without it). */
  default?: unknown;
}

/**
 * The last field of the first NetworkEvent ever archived (v1, schemas/avro/history/network-event.v1.avsc).
 * The spec adds fields only after it, each with a default: archive objects written
 * before a field existed lack it, and readers give them the default.
 */
export const LAST_V1_FIELD = 'source';

/**
 * The last field of the first NetworkEvent ever archived as Parquet (v2): every
 * Parquet object has the fields up to here; fields added later get defaults in
 * the views, as those after LAST_V1_FIELD do in the JSON archive.
 */
export const LAST_PARQUET_V1_FIELD = 'process_key';

/**
 * `event_time`: the event's `timestamp` as a TIMESTAMP in milliseconds (UTC), for
 * range predicates. Stored in the Parquet objects (INT64, TIMESTAMP_MILLIS: Athena
 * reads milliseconds, not nanoseconds), computed from `timestamp` by the views over
 * the JSON objects. After the record's columns, before the partition columns.
 */
export const EVENT_TIME_COLUMN: Column = { name: 'event_time', type: { kind: 'timestamp' } };

/** Partition columns after the record's own: dt (YYYY-MM-DD) and hour (0..23). */
export const PARTITION_COLUMNS: Column[] = [
  { name: 'dt', type: { kind: 'string' } },
  { name: 'hour', type: { kind: 'int' } },
];

interface AvroField {
  name: string;
  type: unknown;
  default?: unknown;
}

function fromAvro(type: unknown, where: string): ColumnType {
  if (typeof type === 'string') {
    if (type === 'string') return { kind: 'string' };
    if (type === 'int') return { kind: 'int' };
    if (type === 'long') return { kind: 'bigint' };
    throw new Error(`${where}: Avro type ${type} has no archive column type`);
  }
  const t = type as { type: string; fields?: AvroField[] };
  if (t.type === 'enum') return { kind: 'string' };
  if (t.type === 'record') return { kind: 'struct', fields: t.fields!.map((f) => column(f, `${where}.${f.name}`)) };
  if (typeof t.type === 'string' && !t.fields) return fromAvro(t.type, where);
  throw new Error(`${where}: Avro type ${JSON.stringify(type)} has no archive column type`);
}

function column(f: AvroField, where: string): Column {
  const c: Column = { name: f.name, type: fromAvro(f.type, where) };
  if (f.default !== undefined) c.default = f.default;
  return c;
}

/** The NetworkEvent's top-level fields as columns, in the schema's (= the spec's) order. */
export function eventColumns(schema: object = readSchema('network-event.avsc')): Column[] {
  const fields = (schema as { fields: AvroField[] }).fields;
  return fields.map((f) => column(f, f.name));
}

/** The sensor status records' columns (the status archive, table sensor_status), in the schema's order. */
export function statusColumns(schema: object = readSchema('sensor-status.avsc')): Column[] {
  return eventColumns(schema);
}

/**
 * The columns added after v1 (after LAST_V1_FIELD), which v1 archive objects lack:
 * Athena's table reads them as NULL there, and the views apply these defaults.
 * Throws if one has no default: the schema would not be a compatible evolution.
 */
export function addedColumns(cols: Column[] = eventColumns(), since: string = LAST_V1_FIELD): Column[] {
  const last = cols.findIndex((c) => c.name === since);
  if (last < 0) throw new Error(`the NetworkEvent schema has no ${since} field`);
  const added = cols.slice(last + 1);
  for (const c of added) if (c.default === undefined) throw new Error(`${c.name}: a field added after ${since} needs a default`);
  return added;
}

/** The Parquet objects' columns: the event's, then event_time (the partition columns are in the keys). */
export function parquetColumns(cols: Column[] = eventColumns()): Column[] {
  return [...cols, EVENT_TIME_COLUMN];
}

export function duckdbType(t: ColumnType): string {
  switch (t.kind) {
    case 'string':
      return 'VARCHAR';
    case 'int':
      return 'INTEGER';
    case 'bigint':
      return 'BIGINT';
    case 'timestamp':
      // Milliseconds, as Athena's timestamp(3) (DuckDB's TIMESTAMP(3) is TIMESTAMP_MS too).
      return 'TIMESTAMP_MS';
    case 'struct':
      return `STRUCT(${t.fields.map((f) => `"${f.name}" ${duckdbType(f.type)}`).join(', ')})`;
  }
}

/** Trino / Athena SQL spelling (views, CASTs): varchar, integer, bigint, ROW(name type, ...). DuckDB reads it too. */
export function trinoType(t: ColumnType): string {
  switch (t.kind) {
    case 'string':
      return 'varchar';
    case 'int':
      return 'integer';
    case 'bigint':
      return 'bigint';
    case 'timestamp':
      return 'timestamp';
    case 'struct':
      return `ROW(${t.fields.map((f) => `"${f.name}" ${trinoType(f.type)}`).join(', ')})`;
  }
}

/** Hive / Athena spelling: string, int, bigint, struct<name:type,...>. */
export function hiveType(t: ColumnType): string {
  switch (t.kind) {
    case 'string':
      return 'string';
    case 'int':
      return 'int';
    case 'bigint':
      return 'bigint';
    case 'timestamp':
      return 'timestamp';
    case 'struct':
      return `struct<${t.fields.map((f) => `${f.name}:${hiveType(f.type)}`).join(',')}>`;
  }
}
