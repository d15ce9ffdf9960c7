// The archive's columns, derived from the Avro contract (schemas/avro/network-event.avsc):
// one source of truth for the DuckDB view of `netmon query` and for the test
// that checks the Athena DDL in infra/athena/.
import { readSchema } from '@netmon/common';

export type ColumnType = { kind: 'string' } | { kind: 'int' } | { kind: 'bigint' } | { kind: 'struct'; fields: Column[] };

export interface Column {
  name: string;
  type: ColumnType;
}

/** Partition columns after the record's own: dt (YYYY-MM-DD) and hour (0..23). */
export const PARTITION_COLUMNS: Column[] = [
  { name: 'dt', type: { kind: 'string' } },
  { name: 'hour', type: { kind: 'int' } },
];

interface AvroField {
  name: string;
  type: unknown;
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
  if (t.type === 'record') return { kind: 'struct', fields: t.fields!.map((f) => ({ name: f.name, type: fromAvro(f.type, `${where}.${f.name}`) })) };
  if (typeof t.type === 'string' && !t.fields) return fromAvro(t.type, where);
  throw new Error(`${where}: Avro type ${JSON.stringify(type)} has no archive column type`);
}

/** The NetworkEvent's top-level fields as columns, in the schema's (= the spec's) order. */
export function eventColumns(schema: object = readSchema('network-event.avsc')): Column[] {
  const fields = (schema as { fields: AvroField[] }).fields;
  return fields.map((f) => ({ name: f.name, type: fromAvro(f.type, f.name) }));
}

export function duckdbType(t: ColumnType): string {
  switch (t.kind) {
    case 'string':
      return 'VARCHAR';
    case 'int':
      return 'INTEGER';
    case 'bigint':
      return 'BIGINT';
    case 'struct':
      return `STRUCT(${t.fields.map((f) => `"${f.name}" ${duckdbType(f.type)}`).join(', ')})`;
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
    case 'struct':
      return `struct<${t.fields.map((f) => `${f.name}:${hiveType(f.type)}`).join(',')}>`;
  }
}
