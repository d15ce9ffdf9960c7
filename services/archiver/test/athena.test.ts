// The Athena DDL parses and matches the Avro contract; the view applies the
// spec's defaults; the example queries run through `netmon query`'s DuckDB views
// over objects written by the archiver's own FlushBuilder (v1 objects from
// before the connection facts, v2 objects after) and return the expected
// answers on a known data set. All of it for the JSON table, the Parquet table
// (whose DDL is also held to the columns of a real Parquet object's footer), and
// both together. And the sensors' status archive: its table's DDL, netmon
// query's sensor_status view, and the shared query of hosts with gaps, on a
// known set of heartbeats (a healthy host, a host with a gap, a host with
// losses, a host down since before the window, a host that came up late).
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { DuckDBInstance } from '@duckdb/node-api';
import { DEFAULT_CONNECTION_FACTS, type NetworkEvent, type SensorStatusRecord } from '@netmon/common';
import { FlushBuilder } from '../src/batch';
import { type Column, type ColumnType, PARTITION_COLUMNS, addedColumns, eventColumns, hiveType, parquetColumns, statusColumns } from '../src/columns';
import { type ArchiveFormat, hourOf, statusPrefix } from '../src/layout';
import { ParquetWriter } from '../src/parquet';
import { COMPAT_MACROS, EVENTS_TABLE, EVENTS_VIEW, PARQUET_TABLE, STATUS_TABLE, archiveSelect, parquetTableSelect, statusDir } from '../src/query';
import { ArchiveQuery, runQueryCommand } from '../src';
import { type NetworkEventV1, SPEC_ORDER, type SampleOverrides, asV1, assertSpecOrder, sampleEvent } from './samples';

const athenaDir = path.resolve(__dirname, '../../../../infra/athena');
const ddl = readFileSync(path.join(athenaDir, 'network_events.sql'), 'utf8');

// ---- a small structural parser of the DDL -----------------------------------

function stripComments(sql: string): string {
  return sql
    .split('\n')
    .map((l) => l.replace(/--.*$/, ''))
    .join('\n');
}

/** The text between the parenthesis at `open` and its match. */
function balanced(text: string, open: number): { inner: string; end: number } {
  assert.equal(text[open], '(');
  let depth = 0;
  let quote: string | undefined;
  for (let i = open; i < text.length; i++) {
    const c = text[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
      continue;
    }
    if (c === "'" || c === '`') quote = c;
    else if (c === '(' || c === '<') depth++;
    else if (c === ')' || c === '>') {
      depth--;
      if (depth === 0) return { inner: text.slice(open + 1, i), end: i };
    }
  }
  throw new Error('unbalanced parentheses');
}

function splitTop(text: string, sep: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quote: string | undefined;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
      continue;
    }
    if (c === "'" || c === '`') quote = c;
    else if (c === '(' || c === '<') depth++;
    else if (c === ')' || c === '>') depth--;
    else if (c === sep && depth === 0) {
      parts.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  parts.push(text.slice(start).trim());
  return parts.filter((p) => p.length > 0);
}

function parseHiveType(text: string): ColumnType {
  const t = text.trim();
  if (t === 'string') return { kind: 'string' };
  if (t === 'int') return { kind: 'int' };
  if (t === 'bigint') return { kind: 'bigint' };
  if (t === 'timestamp') return { kind: 'timestamp' };
  const m = /^struct\s*<([\s\S]*)>$/.exec(t);
  if (!m) throw new Error(`unknown Hive type ${t}`);
  const fields = splitTop(m[1]!, ',').map((f) => {
    const colon = f.indexOf(':');
    return { name: f.slice(0, colon).trim().replace(/`/g, ''), type: parseHiveType(f.slice(colon + 1)) };
  });
  return { kind: 'struct', fields };
}

function parseColumns(list: string): Column[] {
  return splitTop(list, ',').map((def) => {
    const m = /^`?([a-z_][a-z0-9_]*)`?\s+([\s\S]+)$/i.exec(def);
    if (!m) throw new Error(`not a column definition: ${def}`);
    return { name: m[1]!, type: parseHiveType(m[2]!) };
  });
}

interface ParsedDdl {
  table: string;
  columns: Column[];
  partitions: Column[];
  /** The JSON SerDe, or 'parquet' for STORED AS PARQUET. */
  serde: string;
  location: string;
  properties: Record<string, string>;
}

function parseDdl(sql: string): ParsedDdl {
  const text = stripComments(sql).trim();
  assert.equal(text.split(';').filter((s) => s.trim()).length, 1, 'one statement');
  const head = /^CREATE\s+EXTERNAL\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?`?([a-z_][a-z0-9_.]*)`?\s*\(/i.exec(text);
  assert.ok(head, 'starts with CREATE EXTERNAL TABLE name (');
  const cols = balanced(text, head[0].length - 1);
  let rest = text.slice(cols.end + 1);
  const part = /^\s*PARTITIONED\s+BY\s*\(/i.exec(rest);
  assert.ok(part, 'PARTITIONED BY follows the columns');
  const parts = balanced(rest, part[0].length - 1);
  rest = rest.slice(parts.end + 1);
  let serde = /ROW\s+FORMAT\s+SERDE\s+'([^']+)'/i.exec(rest)?.[1];
  if (/^\s*STORED\s+AS\s+PARQUET\b/i.test(rest)) serde = 'parquet';
  else assert.match(rest, /STORED\s+AS\s+INPUTFORMAT\s+'org\.apache\.hadoop\.mapred\.TextInputFormat'/i);
  assert.ok(serde, 'ROW FORMAT SERDE or STORED AS PARQUET');
  const location = /LOCATION\s+'([^']+)'/i.exec(rest);
  assert.ok(location, 'LOCATION');
  const tbl = /TBLPROPERTIES\s*\(/i.exec(rest);
  assert.ok(tbl, 'TBLPROPERTIES');
  const props = balanced(rest, tbl.index + tbl[0].length - 1);
  assert.match(rest.slice(props.end + 1), /^\s*;?\s*$/, 'nothing after TBLPROPERTIES');
  const properties: Record<string, string> = {};
  for (const p of splitTop(props.inner, ',')) {
    const m = /^'([^']+)'\s*=\s*'([^']*)'$/.exec(p);
    assert.ok(m, `property ${p}`);
    properties[m[1]!] = m[2]!;
  }
  return { table: head[1]!, columns: parseColumns(cols.inner), partitions: parseColumns(parts.inner), serde, location: location[1]!, properties };
}

/** The partition projection both tables declare (dt a date, hour an integer) and its location template. */
function assertProjection(parsed: ParsedDdl): void {
  assert.deepEqual(parsed.partitions, PARTITION_COLUMNS);
  const p = parsed.properties;
  assert.equal(p['projection.enabled'], 'true');
  assert.equal(p['projection.dt.type'], 'date');
  assert.equal(p['projection.dt.format'], 'yyyy-MM-dd');
  assert.match(p['projection.dt.range'] ?? '', /^\d{4}-\d{2}-\d{2},NOW$/);
  assert.equal(p['projection.hour.type'], 'integer');
  assert.equal(p['projection.hour.range'], '0,23');
  assert.equal(p['projection.hour.digits'], '2');
  assert.equal(p['storage.location.template'], `${parsed.location}dt=\${dt}/hour=\${hour}/`);
}

describe('Athena DDL (infra/athena/network_events.sql)', () => {
  const parsed = parseDdl(ddl);

  test('parses: table, Hive JSON SerDe, location', () => {
    assert.equal(parsed.table, 'network_events');
    assert.equal(parsed.serde, 'org.apache.hive.hcatalog.data.JsonSerDe');
    assert.match(parsed.location, /^s3:\/\/[a-z0-9.-]+\/.+\/$/);
  });

  test('columns match the Avro schema field for field, in order, with struct columns', () => {
    const expected = eventColumns();
    assert.deepEqual(
      parsed.columns.map((c) => c.name),
      expected.map((c) => c.name),
    );
    for (const [i, c] of parsed.columns.entries()) assert.deepEqual(c.type, expected[i]!.type, `column ${c.name}: ${hiveType(c.type)}`);
    for (const name of ['process', 'network_event', 'host', 'connection']) {
      assert.equal(parsed.columns.find((c) => c.name === name)?.type.kind, 'struct', `${name} is a struct`);
    }
  });

  test('partition projection: dt as date, hour as integer, location template', () => assertProjection(parsed));
});

// ---- the Parquet table (infra/athena/network_events_parquet.sql) ------------

const parquetDdl = readFileSync(path.join(athenaDir, 'network_events_parquet.sql'), 'utf8');

/** A Parquet column's Hive type from DuckDB's parquet_schema() rows (depth first, as the footer lists them). */
function footerColumns(rows: Record<string, string | null>[]): Column[] {
  let i = 1; // row 0 is the schema's root
  const read = (): Column => {
    const r = rows[i++]!;
    const name = r.name!;
    if (r.num_children !== null && Number(r.num_children) > 0 && r.type === null) {
      const fields: Column[] = [];
      for (let k = 0; k < Number(r.num_children); k++) fields.push(read());
      return { name, type: { kind: 'struct', fields } };
    }
    if (r.type === 'BYTE_ARRAY' && r.converted_type === 'UTF8') return { name, type: { kind: 'string' } };
    if (r.type === 'INT32' && (r.converted_type === null || r.converted_type === 'INT_32')) return { name, type: { kind: 'int' } };
    if (r.type === 'INT64' && r.converted_type === 'TIMESTAMP_MILLIS') {
      assert.match(r.logical_type ?? '', /unit=TimeUnit\(MILLIS=MilliSeconds\(\)/, `${name}: milliseconds (Athena cannot read nanoseconds)`);
      return { name, type: { kind: 'timestamp' } };
    }
    if (r.type === 'INT64' && (r.converted_type === null || r.converted_type === 'INT_64')) return { name, type: { kind: 'bigint' } };
    throw new Error(`column ${name}: Parquet type ${r.type}/${r.converted_type} has no Hive type here`);
  };
  const root = rows[0]!;
  const out: Column[] = [];
  for (let k = 0; k < Number(root.num_children); k++) out.push(read());
  assert.equal(i, rows.length, 'every footer column read');
  return out;
}

describe('Athena Parquet DDL (infra/athena/network_events_parquet.sql)', () => {
  const parsed = parseDdl(parquetDdl);
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'netmon-parquet-ddl-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("parses: its own table, STORED AS PARQUET, a location beside the JSON table's, not inside it", () => {
    assert.equal(parsed.table, PARQUET_TABLE);
    assert.equal(parsed.serde, 'parquet');
    const json = parseDdl(ddl).location;
    assert.equal(parsed.location, `${json.replace(/\/$/, '')}-parquet/`);
    assert.ok(!parsed.location.startsWith(json) && !json.startsWith(parsed.location), 'neither location holds the other');
  });

  test('columns: the Avro schema field for field, in order, then event_time', () => {
    assert.deepEqual(
      parsed.columns,
      parquetColumns().map((c) => ({ name: c.name, type: c.type })),
    );
    assert.deepEqual(
      parsed.columns.slice(0, -1).map((c) => c.name),
      parseDdl(ddl).columns.map((c) => c.name),
      "the JSON table's columns, in the same order",
    );
  });

  test('partition projection: dt as date, hour as integer, location template', () => assertProjection(parsed));

  test("the columns match a Parquet object's footer (DuckDB parquet_schema), names, nesting and types", async () => {
    const writer = new ParquetWriter({ tmpDir: dir });
    const b = new FlushBuilder('root', 'netmon.events.v1', 0, 0, 6, 0, { parquet: writer });
    const e = sampleEvent({ connection: { outcome: 'refused', duration_ms: 3, remote_name: 'api.example.com', netns: 4026531840 } });
    b.append({ offset: 0, line: JSON.stringify(e), part: hourOf(e.timestamp)!, timeMs: Date.parse(e.timestamp) }, 0);
    const [o] = (await b.seal('parquet')).objects;
    const file = path.join(dir, 'one.parquet');
    writeFileSync(file, o!.body);
    await writer.close();
    const instance = await DuckDBInstance.create(':memory:');
    const c = await instance.connect();
    try {
      const rows = (await c.runAndReadAll(`SELECT * FROM parquet_schema('${file}')`)).getRowObjectsJson() as Record<string, string | null>[];
      assert.deepEqual(footerColumns(rows), parsed.columns);
    } finally {
      c.closeSync();
      instance.closeSync();
    }
  });
});

// ---- the view (infra/athena/network_events_view.sql) ------------------------

const viewDdl = readFileSync(path.join(athenaDir, 'network_events_view.sql'), 'utf8');

/** The three ways to create netmon_events: over the JSON table, the Parquet table, or both. */
const VIEW_FILES: Record<Layout, string> = {
  json: 'network_events_view.sql',
  parquet: 'network_events_parquet_view.sql',
  both: 'network_events_both_view.sql',
};
const viewText = (layout: Layout) => readFileSync(path.join(athenaDir, VIEW_FILES[layout]), 'utf8');

describe('Athena views (infra/athena/network_events_view.sql, _parquet_view.sql, _both_view.sql)', () => {
  test('one CREATE OR REPLACE VIEW netmon_events each, over its table or tables', () => {
    const tables: Record<Layout, string[]> = { json: ['network_events'], parquet: [PARQUET_TABLE], both: ['network_events', PARQUET_TABLE] };
    for (const layout of LAYOUTS) {
      const text = stripComments(viewText(layout)).trim();
      assert.equal(text.split(';').filter((s) => s.trim()).length, 1, `${VIEW_FILES[layout]}: one statement`);
      assert.match(text, new RegExp(`^CREATE\\s+OR\\s+REPLACE\\s+VIEW\\s+${EVENTS_VIEW}\\s+AS\\s+SELECT\\b`, 'i'));
      assert.deepEqual(
        [...text.matchAll(/\bFROM\s+([a-z_]+)/gi)].map((m) => m[1]),
        tables[layout],
        VIEW_FILES[layout],
      );
    }
    assert.match(stripComments(viewDdl).trim(), /\bFROM\s+network_events\s*;?$/i);
  });

  test('the fields added after v1 are the ones the view gives defaults', () => {
    assert.deepEqual(
      addedColumns().map((c) => [c.name, c.default]),
      [
        ['connection', { ...DEFAULT_CONNECTION_FACTS }],
        ['process_key', ''],
      ],
    );
    for (const c of addedColumns()) assert.match(stripComments(viewDdl), new RegExp(`\\bAS\\s+${c.name}\\b`), `the view defines ${c.name}`);
  });
});

// ---- the example queries on a known data set ----------------------------------

const WEB = { hostname: 'web-1', hostId: 'aaaa0000000000000000000000000001' };
const DB = { hostname: 'db-1', hostId: 'bbbb0000000000000000000000000002' };
const CONTAINER = '3f4e8a9c1b2d4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f';
const REDIS_CONTAINER = '9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b';
const HOST_NETNS = 4026531840;
const REDIS_NETNS = 4026532500;

type ArchivedEvent = NetworkEvent | NetworkEventV1;

/**
 * 2025-05-31 as the archiver wrote it before v2 (no connection, no process_key);
 * 2025-06-01 and 2025-06-02 in v2, with the facts a Close carries.
 */
function knownEvents(): ArchivedEvent[] {
  const ev = sampleEvent;
  const v2 = (o: SampleOverrides) => ev({ ...o, connection: { netns: HOST_NETNS, ...o.connection } });
  const listen = (o: SampleOverrides) => v2({ ...o, type: 'TcpListen', saddr: '0.0.0.0', daddr: '0.0.0.0', dport: 0 });
  const close = (o: SampleOverrides) => v2({ ...o, type: 'TcpConnectionClose' });
  const day1: ArchivedEvent[] = [
    // curl connects 3 times from 2 hosts (2 of them to 203.0.113.7), ssh once.
    ev({ ...WEB, timestamp: '2025-05-31T10:00:00.000Z', binary: '/usr/bin/curl', daddr: '203.0.113.7', dport: 443, cookie: 100 }),
    ev({ ...WEB, timestamp: '2025-05-31T10:00:01.500Z', binary: '/usr/bin/curl', type: 'TcpConnectionClose', daddr: '203.0.113.7', dport: 443, cookie: 100 }),
    ev({ ...DB, timestamp: '2025-05-31T10:30:00.000Z', binary: '/usr/bin/curl', daddr: '203.0.113.7', dport: 443, cookie: 100 }),
    ev({ ...WEB, timestamp: '2025-05-31T11:15:00.000Z', binary: '/usr/bin/curl', daddr: '198.51.100.1', dport: 80, cookie: 102, containerId: CONTAINER }),
    ev({
      ...WEB,
      timestamp: '2025-05-31T11:15:02.000Z',
      binary: '/usr/bin/curl',
      type: 'TcpConnectionClose',
      daddr: '198.51.100.1',
      dport: 80,
      cookie: 102,
      containerId: CONTAINER,
    }),
    ev({ ...DB, timestamp: '2025-05-31T23:59:59.999Z', binary: '/usr/bin/ssh', daddr: '192.0.2.10', dport: 22, cookie: 103 }),
    // nginx on web-1 accepts on 443 from 203.0.113.7 (a usual port), closes after 250 ms.
    ev({
      ...WEB,
      timestamp: '2025-05-31T10:05:00.000Z',
      binary: '/usr/sbin/nginx',
      type: 'TcpConnectionAccept',
      saddr: '10.0.0.1',
      sport: 443,
      daddr: '203.0.113.7',
      dport: 50000,
      cookie: 101,
      containerId: CONTAINER,
    }),
    ev({
      ...WEB,
      timestamp: '2025-05-31T10:05:00.250Z',
      binary: '/usr/sbin/nginx',
      type: 'TcpConnectionClose',
      saddr: '10.0.0.1',
      sport: 443,
      daddr: '203.0.113.7',
      dport: 50000,
      cookie: 101,
      containerId: CONTAINER,
    }),
  ].map(asV1);
  const api = { binary: '/usr/bin/curl', daddr: '198.51.100.2', dport: 443 };
  const backdoor = { ...DB, binary: '/tmp/.x/backdoor', pid: 6666, saddr: '10.0.0.2', sport: 4444 };
  const day2: ArchivedEvent[] = [
    // curl on web-1 reaches api.example.com twice; the first connection carries 20 kB back in 3 s.
    v2({ ...WEB, ...api, timestamp: '2025-06-01T00:00:00.000Z', cookie: 104, connection: { remote_name: 'api.example.com' } }),
    close({
      ...WEB,
      ...api,
      timestamp: '2025-06-01T00:00:03.000Z',
      cookie: 104,
      connection: { outcome: 'established', duration_ms: 3000, bytes_sent: 512, bytes_received: 20_000, remote_name: 'api.example.com' },
    }),
    v2({ ...WEB, ...api, timestamp: '2025-06-01T05:00:00.000Z', cookie: 105, connection: { remote_name: 'api.example.com' } }),
    // a backdoor on db-1 listens on 4444, accepts two clients, sends 4 kB and receives 1 MiB on the first.
    listen({ ...backdoor, timestamp: '2025-06-01T05:09:00.000Z', cookie: 199 }),
    v2({ ...backdoor, timestamp: '2025-06-01T05:10:00.000Z', type: 'TcpConnectionAccept', daddr: '192.0.2.50', dport: 40001, cookie: 200 }),
    v2({ ...backdoor, timestamp: '2025-06-01T05:11:00.000Z', type: 'TcpConnectionAccept', daddr: '192.0.2.51', dport: 40002, cookie: 201 }),
    close({
      ...backdoor,
      timestamp: '2025-06-01T05:20:00.000Z',
      daddr: '192.0.2.50',
      dport: 40001,
      cookie: 200,
      connection: { outcome: 'established', duration_ms: 600_000, bytes_sent: 4096, bytes_received: 1_048_576 },
    }),
    v2({
      ...WEB,
      timestamp: '2025-06-01T06:00:00.000Z',
      binary: '/usr/bin/wget',
      daddr: '198.51.100.3',
      dport: 80,
      cookie: 106,
      containerId: CONTAINER,
      connection: { remote_name: 'mirror.example.org' },
    }),
    // listeners: a bind shell never accepts; nginx's master listens on 8080 and a worker accepts;
    // redis listens on 6379 on the host (accepts) and in a container's namespace (never accepts).
    listen({ ...WEB, timestamp: '2025-06-01T07:00:00.000Z', binary: '/tmp/.y/bindsh', pid: 31337, sport: 31337, cookie: 207 }),
    listen({ ...WEB, timestamp: '2025-06-01T07:30:00.000Z', binary: '/usr/sbin/nginx', pid: 800, sport: 8080, cookie: 208 }),
    v2({
      ...WEB,
      timestamp: '2025-06-01T07:31:00.000Z',
      binary: '/usr/sbin/nginx',
      pid: 801,
      type: 'TcpConnectionAccept',
      saddr: '10.0.0.1',
      sport: 8080,
      daddr: '192.0.2.60',
      dport: 40100,
      cookie: 210,
    }),
    listen({ ...DB, timestamp: '2025-06-01T08:00:00.000Z', binary: '/usr/bin/redis-server', pid: 900, sport: 6379, cookie: 209 }),
    listen({
      ...DB,
      timestamp: '2025-06-01T08:00:00.500Z',
      binary: '/usr/bin/redis-server',
      pid: 901,
      sport: 6379,
      cookie: 212,
      containerId: REDIS_CONTAINER,
      connection: { netns: REDIS_NETNS },
    }),
    v2({
      ...DB,
      timestamp: '2025-06-01T08:10:00.000Z',
      binary: '/usr/bin/redis-server',
      pid: 900,
      type: 'TcpConnectionAccept',
      saddr: '10.0.0.2',
      sport: 6379,
      daddr: '10.0.0.1',
      dport: 41000,
      cookie: 211,
    }),
    // refused connects: web-1 twice at 9 h and once at 10 h, db-1 once at 9 h; one timeout (not refused).
    ...(
      [
        [WEB, '09:00:00.000', '198.51.100.9', 8443, 220, 'refused', 1],
        [WEB, '09:20:00.000', '198.51.100.9', 8443, 221, 'refused', 1],
        [DB, '09:30:00.000', '192.0.2.20', 5432, 222, 'refused', 2],
        [WEB, '09:40:00.000', '198.51.100.10', 443, 224, 'timeout', 130_000],
        [WEB, '10:05:00.000', '198.51.100.9', 8443, 223, 'refused', 1],
      ] as const
    ).flatMap(([host, time, daddr, dport, cookie, outcome, ms]) => {
      const at = Date.parse(`2025-06-01T${time}Z`);
      return [
        v2({ ...host, timestamp: new Date(at).toISOString(), binary: '/usr/bin/curl', daddr, dport, cookie }),
        close({ ...host, timestamp: new Date(at + ms).toISOString(), binary: '/usr/bin/curl', daddr, dport, cookie, connection: { outcome, duration_ms: ms } }),
      ];
    }),
    // an ssh session older than the sensor closes after a day: no Accept to pair with, its duration is on the Close.
    close({
      ...DB,
      timestamp: '2025-06-01T12:00:00.000Z',
      binary: '/usr/sbin/sshd',
      pid: 700,
      saddr: '10.0.0.2',
      sport: 22,
      daddr: '192.0.2.77',
      dport: 51515,
      cookie: 300,
      connection: { outcome: 'established', duration_ms: 86_400_000, bytes_sent: 300_000, bytes_received: 50_000 },
    }),
  ];
  const evil = { binary: '/usr/bin/python3', daddr: '203.0.113.99', dport: 443, pid: 4242 };
  const day3: ArchivedEvent[] = [
    // web-1 reaches api.example.com again (not new there), and evil.example.net twice (new), sending 2 MB;
    // db-1 reaches api.example.com for the first time (new on db-1); wget dials a literal address (no name).
    v2({ ...WEB, ...api, timestamp: '2025-06-02T08:00:00.000Z', cookie: 400, connection: { remote_name: 'api.example.com' } }),
    v2({ ...WEB, ...evil, timestamp: '2025-06-02T08:30:00.000Z', cookie: 401, connection: { remote_name: 'evil.example.net' } }),
    v2({ ...WEB, ...evil, timestamp: '2025-06-02T08:31:00.000Z', cookie: 402, connection: { remote_name: 'evil.example.net' } }),
    close({
      ...WEB,
      ...evil,
      timestamp: '2025-06-02T08:30:05.000Z',
      cookie: 401,
      connection: { outcome: 'established', duration_ms: 5000, bytes_sent: 2_000_000, bytes_received: 1000, remote_name: 'evil.example.net' },
    }),
    v2({ ...DB, ...api, timestamp: '2025-06-02T09:00:00.000Z', cookie: 403, connection: { remote_name: 'api.example.com' } }),
    v2({ ...WEB, timestamp: '2025-06-02T09:10:00.000Z', binary: '/usr/bin/wget', daddr: '198.51.100.50', dport: 80, cookie: 404 }),
    // a dev server listens on 8080 after nginx has gone: nginx's accepts of the day before do not count for it.
    listen({ ...WEB, timestamp: '2025-06-02T11:00:00.000Z', binary: '/usr/local/bin/devserver', pid: 5000, sport: 8080, cookie: 405 }),
  ];
  return [...day1, ...day2, ...day3].map((e, i) => ({ ...e, source: { run_id: 'known', seq: i } }));
}

/** The event as a reader of the contract sees it: a v1 event with the spec's defaults. */
function withDefaults(e: ArchivedEvent): NetworkEvent {
  return 'connection' in e ? e : { ...e, connection: { ...DEFAULT_CONNECTION_FACTS }, process_key: '' };
}

/** Which objects hold the known data set: all JSON, all Parquet, or the first day JSON (v1) and the rest Parquet. */
type Layout = 'json' | 'parquet' | 'both';
const LAYOUTS: Layout[] = ['json', 'parquet', 'both'];

/**
 * Writes the events as the archiver would under `dir`: in flushes of `perFlush`
 * events (one object per hour touched), each line JSON.stringify of the event,
 * each flush in the format `formatOf` gives it. The archiver writes every
 * Parquet object in v2's shape (it reads v1 records with the defaults), so a v1
 * event goes into Parquet with the defaults. Objects sit as in the bucket
 * (prefix "root"): JSON under dir/, Parquet under dir-parquet/.
 */
async function writeArchive(
  dir: string,
  events: ArchivedEvent[],
  perFlush = Math.ceil(events.length / 2),
  formatOf: (flush: number) => ArchiveFormat = () => 'json',
): Promise<string[]> {
  const lines: string[] = [];
  const parquet = new ParquetWriter({ tmpDir: mkdtempSync(path.join(tmpdir(), 'netmon-parquet-tmp-')) });
  try {
    for (let first = 0; first < events.length; first += perFlush) {
      const format = formatOf(first / perFlush);
      const b = new FlushBuilder('root', 'netmon.events.v1', 0, first, 6, 0, { parquet });
      events.slice(first, first + perFlush).forEach((e, i) => {
        const line = JSON.stringify(format === 'parquet' ? withDefaults(e) : e);
        lines.push(line);
        b.append({ offset: first + i, line, part: hourOf(e.timestamp)!, timeMs: Date.parse(e.timestamp) }, 0);
      });
      for (const o of (await b.seal(format)).objects) {
        const file = path.join(`${dir}${o.key.slice('root'.length, o.key.indexOf('/'))}`, o.key.slice(o.key.indexOf('/') + 1));
        mkdirSync(path.dirname(file), { recursive: true });
        writeFileSync(file, o.body);
      }
    }
  } finally {
    await parquet.close();
    rmSync(parquet.options.tmpDir, { recursive: true, force: true });
  }
  return lines;
}

/** The folders `writeArchive` filled: JSON objects under dir, Parquet ones under dir-parquet. */
const archiveDirs = (dir: string) => [dir, `${dir}-parquet`];

const readQuery = (name: string) => readFileSync(path.join(athenaDir, 'queries', `${name}.sql`), 'utf8');

for (const layout of LAYOUTS)
  describe(`example queries through DuckDB (netmon query), ${layout} objects`, () => {
    let dir: string;
    let q: ArchiveQuery;
    let events: ArchivedEvent[];
    let lines: string[];
    const rows = async (sql: string) => (await q.jsonRows(sql)).map((r) => JSON.parse(r) as Record<string, unknown>);

    before(async () => {
      dir = mkdtempSync(path.join(tmpdir(), 'netmon-query-'));
      events = knownEvents();
      // 2025-05-31 (the first 8 events) as v1 JSON objects; then flushes of 8, v2, JSON or Parquet as the layout says.
      const formatOf = (flush: number): ArchiveFormat => (layout === 'json' ? 'json' : layout === 'parquet' || flush > 0 ? 'parquet' : 'json');
      lines = await writeArchive(dir, events, 8, formatOf);
      q = await ArchiveQuery.open(archiveDirs(dir));
    });
    after(() => {
      q?.close();
      for (const d of archiveDirs(dir)) rmSync(d, { recursive: true, force: true });
    });

    test('every example query is there, and reads the view, not the table', () => {
      const files = readdirSync(path.join(athenaDir, 'queries')).sort();
      assert.deepEqual(files, [
        'connection-duration.sql',
        'connections-per-binary-per-day.sql',
        'container-events.sql',
        'listeners-never-accepted.sql',
        'new-remote-names.sql',
        'refused-connects-per-host-per-hour.sql',
        'sensor-gaps.sql',
        'top-talkers-by-binary.sql',
        'unusual-listeners.sql',
        'who-talks-to-address.sql',
      ]);
      for (const f of files) {
        const sql = stripComments(readFileSync(path.join(athenaDir, 'queries', f), 'utf8'));
        if (f === 'sensor-gaps.sql') {
          // the one query of the status archive: its table (there is only one version of it, no view)
          assert.match(sql, new RegExp(`\\bFROM\\s+${STATUS_TABLE}\\b`), `${f} reads ${STATUS_TABLE}`);
          assert.doesNotMatch(sql, new RegExp(`\\b(${EVENTS_VIEW}|${EVENTS_TABLE})\\b`), `${f} reads no events`);
        } else {
          assert.match(sql, new RegExp(`\\bFROM\\s+${EVENTS_VIEW}\\b`), `${f} reads ${EVENTS_VIEW}`);
          assert.doesNotMatch(sql, new RegExp(`\\b${EVENTS_TABLE}\\b`), `${f} does not read the table`);
        }
        assert.match(readFileSync(path.join(athenaDir, 'queries', f), 'utf8'), /^-- \S/, `${f} opens with a comment saying its question`);
      }
    });

    test('the known data set: v1 JSON objects on the first day, v2 after; JSON or Parquet as the layout says', () => {
      const v1 = lines.filter((l) => !l.includes('"connection"')).length;
      assert.equal(v1, layout === 'parquet' ? 0 : 8);
      const [json, parquet] = archiveDirs(dir).map((d) => listFiles(d).length);
      assert.deepEqual([json! > 0, parquet! > 0], [layout !== 'parquet', layout !== 'json']);
    });

    test('SELECT * gives back the archived NetworkEvents, v1 ones with the defaults: same fields, same order, same JSON types, then event_time, dt, hour', async () => {
      for (const view of [EVENTS_VIEW, EVENTS_TABLE]) {
        const out = await q.jsonRows(`SELECT * FROM ${view} ORDER BY source.seq`);
        assert.equal(out.length, lines.length);
        for (const [i, text] of out.entries()) {
          const obj = JSON.parse(text) as Record<string, unknown>;
          assertSpecOrder(obj);
          assert.deepEqual(Object.keys(obj).slice(-3), ['event_time', 'dt', 'hour']);
          const { event_time: eventTime, dt, hour, ...event } = obj;
          assert.equal(
            JSON.stringify(event),
            JSON.stringify(withDefaults(events[i]!)),
            `${view} row ${i}: the archived event (with the defaults), byte for byte once event_time, dt and hour are set aside`,
          );
          const ts = (event as { timestamp: string }).timestamp;
          assert.equal(Date.parse(`${String(eventTime).replace(' ', 'T')}Z`), Date.parse(ts), `event_time ${eventTime} is ${ts}`);
          assert.equal(dt, ts.slice(0, 10));
          assert.equal(hour, Number(ts.slice(11, 13)));
        }
      }
    });

    test('event_time: range predicates in milliseconds', async () => {
      const sql =
        "SELECT count(*) AS n, min(\"timestamp\") AS first FROM netmon_events WHERE event_time >= TIMESTAMP '2025-06-01 05:09:00' AND event_time < TIMESTAMP '2025-06-01 05:11:00.001'";
      assert.deepEqual(await rows(sql), [{ n: 3, first: '2025-06-01T05:09:00.000Z' }]);
    });

    test('partition columns prune: dt and hour', async () => {
      assert.deepEqual(await rows("SELECT count(*) AS n FROM netmon_events WHERE dt = '2025-06-01' AND hour = 5"), [{ n: 5 }]);
    });

    test('connections per binary per day', async () => {
      assert.deepEqual(await rows(readQuery('connections-per-binary-per-day')), [
        { dt: '2025-05-31', binary_path: '/usr/bin/curl', connections: 3, hosts: 2 },
        { dt: '2025-05-31', binary_path: '/usr/bin/ssh', connections: 1, hosts: 1 },
        { dt: '2025-06-01', binary_path: '/usr/bin/curl', connections: 7, hosts: 2 },
        { dt: '2025-06-01', binary_path: '/usr/bin/wget', connections: 1, hosts: 1 },
        { dt: '2025-06-02', binary_path: '/usr/bin/curl', connections: 2, hosts: 2 },
        { dt: '2025-06-02', binary_path: '/usr/bin/python3', connections: 2, hosts: 1 },
        { dt: '2025-06-02', binary_path: '/usr/bin/wget', connections: 1, hosts: 1 },
      ]);
    });

    test('who talks to 203.0.113.7', async () => {
      const r = await rows(readQuery('who-talks-to-address'));
      assert.deepEqual(
        r.map((x) => [x.hostname, x.binary_path, x.direction, x.connections]),
        [
          ['db-1', '/usr/bin/curl', 'TcpConnectionEstablish', 1],
          ['web-1', '/usr/bin/curl', 'TcpConnectionEstablish', 1],
          ['web-1', '/usr/sbin/nginx', 'TcpConnectionAccept', 1],
        ],
      );
    });

    test('listeners accepting on unusual ports', async () => {
      assert.deepEqual(await rows(readQuery('unusual-listeners')), [{ hostname: 'db-1', binary_path: '/tmp/.x/backdoor', port: 4444, accepts: 2, clients: 2 }]);
    });

    test('connection durations: the v2 Close duration where there is one, else Close minus Establish/Accept by cookie and host', async () => {
      const r = await rows(readQuery('connection-duration'));
      assert.deepEqual(
        r.map((x) => [x.hostname, x.cookie, x.kind, x.binary_path, x.outcome, x.duration_ms]),
        [
          ['db-1', 300, '', '/usr/sbin/sshd', 'established', 86_400_000],
          ['db-1', 200, 'TcpConnectionAccept', '/tmp/.x/backdoor', 'established', 600_000],
          ['web-1', 224, 'TcpConnectionEstablish', '/usr/bin/curl', 'timeout', 130_000],
          ['web-1', 401, 'TcpConnectionEstablish', '/usr/bin/python3', 'established', 5000],
          ['web-1', 104, 'TcpConnectionEstablish', '/usr/bin/curl', 'established', 3000],
          ['web-1', 102, 'TcpConnectionEstablish', '/usr/bin/curl', '', 2000],
          ['web-1', 100, 'TcpConnectionEstablish', '/usr/bin/curl', '', 1500],
          ['web-1', 101, 'TcpConnectionAccept', '/usr/sbin/nginx', '', 250],
          ['db-1', 222, 'TcpConnectionEstablish', '/usr/bin/curl', 'refused', 2],
          ['web-1', 220, 'TcpConnectionEstablish', '/usr/bin/curl', 'refused', 1],
          ['web-1', 221, 'TcpConnectionEstablish', '/usr/bin/curl', 'refused', 1],
          ['web-1', 223, 'TcpConnectionEstablish', '/usr/bin/curl', 'refused', 1],
        ],
        'v1 Closes (outcome "") are timed from their opening; cookie 100 on db-1 has no Close there and stays out',
      );
    });

    test('all events of one container, in time order', async () => {
      const r = await rows(readQuery('container-events'));
      assert.deepEqual(
        r.map((x) => [x.timestamp, x.binary_path, x.type]),
        [
          ['2025-05-31T10:05:00.000Z', '/usr/sbin/nginx', 'TcpConnectionAccept'],
          ['2025-05-31T10:05:00.250Z', '/usr/sbin/nginx', 'TcpConnectionClose'],
          ['2025-05-31T11:15:00.000Z', '/usr/bin/curl', 'TcpConnectionEstablish'],
          ['2025-05-31T11:15:02.000Z', '/usr/bin/curl', 'TcpConnectionClose'],
          ['2025-06-01T06:00:00.000Z', '/usr/bin/wget', 'TcpConnectionEstablish'],
        ],
      );
    });

    test('new remote names per host: reached on 2025-06-02, never before on that host', async () => {
      assert.deepEqual(await rows(readQuery('new-remote-names')), [
        {
          hostname: 'db-1',
          remote_name: 'api.example.com',
          first_seen: '2025-06-02T09:00:00.000Z',
          first_binary: '/usr/bin/curl',
          first_addr: '198.51.100.2',
          connections: 1,
        },
        {
          hostname: 'web-1',
          remote_name: 'evil.example.net',
          first_seen: '2025-06-02T08:30:00.000Z',
          first_binary: '/usr/bin/python3',
          first_addr: '203.0.113.99',
          connections: 2,
        },
      ]);
    });

    test('top talkers by bytes per binary', async () => {
      assert.deepEqual(await rows(readQuery('top-talkers-by-binary')), [
        { binary_path: '/usr/bin/python3', bytes_sent: 2_000_000, bytes_received: 1000, bytes_total: 2_001_000, connections: 1, hosts: 1 },
        { binary_path: '/tmp/.x/backdoor', bytes_sent: 4096, bytes_received: 1_048_576, bytes_total: 1_052_672, connections: 1, hosts: 1 },
        { binary_path: '/usr/sbin/sshd', bytes_sent: 300_000, bytes_received: 50_000, bytes_total: 350_000, connections: 1, hosts: 1 },
        { binary_path: '/usr/bin/curl', bytes_sent: 512, bytes_received: 20_000, bytes_total: 20_512, connections: 8, hosts: 2 },
      ]);
    });

    test('refused connects per host per hour', async () => {
      assert.deepEqual(await rows(readQuery('refused-connects-per-host-per-hour')), [
        { dt: '2025-06-01', hour: 9, hostname: 'db-1', refused: 1, remote_addrs: 1, remote_ports: 1 },
        { dt: '2025-06-01', hour: 9, hostname: 'web-1', refused: 2, remote_addrs: 1, remote_ports: 1 },
        { dt: '2025-06-01', hour: 10, hostname: 'web-1', refused: 1, remote_addrs: 1, remote_ports: 1 },
      ]);
    });

    test('listeners that never accepted: not the pre-fork server, not the host redis; the bind shell, the namespaced redis, the late dev server', async () => {
      assert.deepEqual(await rows(readQuery('listeners-never-accepted')), [
        {
          hostname: 'web-1',
          binary_path: '/tmp/.y/bindsh',
          pid: 31337,
          process_key: `${WEB.hostId}:31337:1748685951282000`,
          netns: HOST_NETNS,
          local_addr: '0.0.0.0',
          port: 31337,
          listened_at: '2025-06-01T07:00:00.000Z',
        },
        {
          hostname: 'db-1',
          binary_path: '/usr/bin/redis-server',
          pid: 901,
          process_key: `${DB.hostId}:901:1748685951282000`,
          netns: REDIS_NETNS,
          local_addr: '0.0.0.0',
          port: 6379,
          listened_at: '2025-06-01T08:00:00.500Z',
        },
        {
          hostname: 'web-1',
          binary_path: '/usr/local/bin/devserver',
          pid: 5000,
          process_key: `${WEB.hostId}:5000:1748685951282000`,
          netns: HOST_NETNS,
          local_addr: '0.0.0.0',
          port: 8080,
          listened_at: '2025-06-02T11:00:00.000Z',
        },
      ]);
    });

    test(`the Athena view DDL (${VIEW_FILES[layout]}, and the one over both tables), run over the tables as Athena reads them, gives what netmon query gives`, async () => {
      const instance = await DuckDBInstance.create(':memory:');
      const raw = await instance.connect();
      try {
        await raw.run("SET TimeZone = 'UTC'");
        for (const m of COMPAT_MACROS) await raw.run(m);
        await raw.run(`CREATE VIEW ${EVENTS_TABLE} AS ${archiveSelect(dir, layout !== 'parquet')}`);
        await raw.run(`CREATE VIEW ${PARQUET_TABLE} AS ${parquetTableSelect([`${dir}-parquet`])}`);
        const nulls = await raw.runAndReadAll(
          `SELECT count(*) FILTER (WHERE connection IS NULL AND process_key IS NULL) AS v1, count(*) AS n FROM ${EVENTS_TABLE}`,
        );
        const inJson = layout === 'json' ? lines.length : layout === 'both' ? 8 : 0;
        assert.deepEqual(
          nulls.getRowsJson(),
          [[String(Math.min(8, inJson)), String(inJson)]],
          'the JSON table reads the v1 objects with NULL connection and process_key',
        );
        for (const file of new Set([VIEW_FILES[layout], VIEW_FILES.both])) {
          await raw.run(readFileSync(path.join(athenaDir, file), 'utf8').trim().replace(/;\s*$/, ''));
          const describe = async (c: typeof raw) => (await c.runAndReadAll(`DESCRIBE ${EVENTS_VIEW}`)).getRowsJson().map((r) => [r[0], r[1]]);
          assert.deepEqual(await describe(raw), await describe(q.connection), `${file}: same columns, same types`);
          const all = `SELECT to_json(e) AS j FROM ${EVENTS_VIEW} AS e ORDER BY source.seq`;
          const got = (await raw.runAndReadAll(all)).getRowsJson().map((r) => r[0]);
          assert.equal(got.length, lines.length, file);
          assert.deepEqual(
            got,
            (await q.connection.runAndReadAll(all)).getRowsJson().map((r) => r[0]),
            file,
          );
        }
      } finally {
        raw.closeSync();
        instance.closeSync();
      }
    });

    test('an empty archive still has the views and their columns', async () => {
      const empty = mkdtempSync(path.join(tmpdir(), 'netmon-query-empty-'));
      const e = await ArchiveQuery.open(empty);
      try {
        for (const view of [EVENTS_VIEW, EVENTS_TABLE]) {
          assert.deepEqual(await e.jsonRows(`SELECT count(*) AS n FROM ${view}`), ['{"n":0}']);
          const t = await e.table(`SELECT * FROM ${view}`);
          assert.deepEqual(t.columns, [
            'type',
            'process',
            'network_event',
            'timestamp',
            'host',
            'source',
            'connection',
            'process_key',
            'event_time',
            'dt',
            'hour',
          ]);
        }
        for (const name of ['top-talkers-by-binary', 'listeners-never-accepted', 'new-remote-names', 'sensor-gaps'])
          assert.deepEqual(await e.jsonRows(readQuery(name)), [], name);
        const t = await e.table(`SELECT * FROM ${STATUS_TABLE}`);
        assert.deepEqual(
          t.columns,
          [...statusColumns(), ...PARTITION_COLUMNS].map((c) => c.name),
          `${STATUS_TABLE}: its columns, no rows`,
        );
        assert.deepEqual(t.rows, []);
      } finally {
        e.close();
        rmSync(empty, { recursive: true, force: true });
      }
    });

    test('runQueryCommand --source DIR --json prints one object per row', async () => {
      const chunks: string[] = [];
      const io = { out: { write: (t: string) => chunks.push(t) }, err: { write: () => true } };
      // --source names one folder: the objects of both formats side by side, as the S3 mirror holds them.
      const mirror = mkdtempSync(path.join(tmpdir(), 'netmon-query-mirror-'));
      for (const d of archiveDirs(dir)) if (existsSync(d)) cpSync(d, mirror, { recursive: true });
      const code = await runQueryCommand(['SELECT count(*) AS n, max(process.cap_effective) AS caps FROM network_events', '--json', '--source', mirror], io);
      rmSync(mirror, { recursive: true, force: true });
      assert.equal(code, 0);
      assert.equal(chunks.join(''), `{"n":${lines.length},"caps":${2 ** 40 - 1}}\n`);
    });
  });

// ---- v1 and v2 archive objects together -----------------------------------------

describe('netmon query reads a v1 and a v2 archive object together', () => {
  let dir: string;
  const v1 = asV1(
    sampleEvent({
      ...WEB,
      timestamp: '2025-05-31T10:00:00.000Z',
      binary: '/usr/bin/curl',
      type: 'TcpConnectionClose',
      daddr: '203.0.113.7',
      dport: 443,
      cookie: 1,
    }),
  );
  const v2 = sampleEvent({
    ...WEB,
    timestamp: '2025-06-01T10:00:00.000Z',
    binary: '/usr/bin/curl',
    pid: 4242,
    type: 'TcpConnectionClose',
    daddr: '198.51.100.2',
    dport: 443,
    cookie: 2,
    processKey: `${WEB.hostId}:4242:987654321`,
    connection: { outcome: 'refused', duration_ms: 3, bytes_sent: 0, bytes_received: 0, remote_name: 'api.example.com', netns: HOST_NETNS },
  });
  const query = async (args: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runQueryCommand([...args, '--source', dir], { out: { write: (t: string) => out.push(t) }, err: { write: (t: string) => err.push(t) } });
    assert.equal(code, 0, err.join(''));
    return out.join('');
  };

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'netmon-query-v1v2-'));
    await writeArchive(dir, [v1, v2], 1);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('one object per version: the v1 one lacks the new fields, the v2 one has them', () => {
    const objects = listObjects(dir);
    assert.deepEqual(
      objects.map((o) => o.rel.split('/').slice(0, 2).join('/')),
      ['dt=2025-05-31/hour=10', 'dt=2025-06-01/hour=10'],
    );
    assert.deepEqual(Object.keys(JSON.parse(objects[0]!.text) as object), SPEC_ORDER.top.slice(0, 6));
    assert.deepEqual(Object.keys(JSON.parse(objects[1]!.text) as object), SPEC_ORDER.top);
  });

  test('the v1 rows come back with the spec defaults, the v2 rows with their values, in both views', async () => {
    for (const view of [EVENTS_VIEW, EVENTS_TABLE]) {
      const out = await query([`SELECT "timestamp", connection, process_key FROM ${view} ORDER BY "timestamp"`, '--json']);
      assert.deepEqual(
        out
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as unknown),
        [
          { timestamp: v1.timestamp, connection: { ...DEFAULT_CONNECTION_FACTS }, process_key: '' },
          { timestamp: v2.timestamp, connection: v2.connection, process_key: v2.process_key },
        ],
        view,
      );
    }
  });

  test('never NULL: filters and the table output see the defaults', async () => {
    const nulls = await query([
      `SELECT count(*) AS n FROM ${EVENTS_VIEW} WHERE connection IS NULL OR process_key IS NULL OR connection.outcome IS NULL ` +
        'OR connection.duration_ms IS NULL OR connection.bytes_sent IS NULL OR connection.bytes_received IS NULL ' +
        'OR connection.remote_name IS NULL OR connection.netns IS NULL',
      '--json',
    ]);
    assert.equal(nulls, '{"n":0}\n');
    assert.equal(await query([`SELECT count(*) AS n FROM ${EVENTS_VIEW} WHERE connection.outcome = '' AND process_key = ''`, '--json']), '{"n":1}\n');
    const table = await query([`SELECT connection.outcome AS outcome, connection.netns AS netns, process_key FROM ${EVENTS_VIEW} ORDER BY "timestamp"`]);
    assert.doesNotMatch(table, /NULL/);
    assert.match(table, new RegExp(`refused\\s+${HOST_NETNS}\\s+${v2.process_key}`));
  });

  test('a shared query runs over both: refused connects per host per hour', async () => {
    const out = await query(['--file', path.join(athenaDir, 'queries', 'refused-connects-per-host-per-hour.sql'), '--json']);
    assert.equal(out, '{"dt":"2025-06-01","hour":10,"hostname":"web-1","refused":1,"remote_addrs":1,"remote_ports":1}\n');
  });
});

/** The files under `dir` (none if it does not exist). */
function listFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((d) => d.isFile())
    .map((d) => path.join(d.parentPath, d.name));
}

/** The archive's data objects under `dir`, in path order, with their first line. */
function listObjects(dir: string): { rel: string; text: string }[] {
  const out: { rel: string; text: string }[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, name.name);
      if (name.isDirectory()) walk(p);
      else out.push({ rel: path.relative(dir, p).split(path.sep).join('/'), text: gunzipSync(readFileSync(p)).toString('utf8').split('\n')[0]! });
    }
  };
  walk(dir);
  return out.sort((a, b) => a.rel.localeCompare(b.rel));
}

// ---- the status archive (infra/athena/sensor_status.sql, queries/sensor-gaps.sql) ----

const statusDdl = readFileSync(path.join(athenaDir, 'sensor_status.sql'), 'utf8');

describe('Athena status DDL (infra/athena/sensor_status.sql)', () => {
  const parsed = parseDdl(statusDdl);

  test("parses: its own table, the JSON SerDe, a location beside the events table's, not inside it", () => {
    assert.equal(parsed.table, STATUS_TABLE);
    assert.equal(parsed.serde, 'org.apache.hive.hcatalog.data.JsonSerDe');
    const json = parseDdl(ddl).location;
    assert.equal(parsed.location, `${statusPrefix(json.replace(/\/$/, ''))}/`);
    assert.ok(!parsed.location.startsWith(json) && !json.startsWith(parsed.location), 'neither location holds the other');
  });

  test('columns match the Avro schema (sensor-status.avsc) field for field, in order', () => {
    assert.deepEqual(
      parsed.columns,
      statusColumns().map((c) => ({ name: c.name, type: c.type })),
    );
  });

  test('partition projection: dt as date, hour as integer, location template', () => assertProjection(parsed));
});

const STATUS_TOPIC = 'netmon.status.v1';
const HOSTS = {
  web: { hostname: 'web-1', id: 'aaaa0000000000000000000000000001' },
  db: { hostname: 'db-1', id: 'bbbb0000000000000000000000000002' },
  app: { hostname: 'app-1', id: 'cccc0000000000000000000000000003' },
  old: { hostname: 'old-1', id: 'dddd0000000000000000000000000004' },
  late: { hostname: 'late-1', id: 'eeee0000000000000000000000000005' },
};

/**
 * Heartbeats every 10 s (the default status interval) from `from` to `to`
 * (inclusive), of one sensor run; `counters(t)` gives its counters at time t.
 */
function beats(
  host: { hostname: string; id: string },
  run: string,
  from: string,
  to: string,
  counters: (t: number) => Partial<Pick<SensorStatusRecord, 'lost_kernel' | 'dropped' | 'spooled'>> = () => ({}),
): SensorStatusRecord[] {
  const out: SensorStatusRecord[] = [];
  for (let t = Date.parse(from), seq = 1000; t <= Date.parse(to); t += 10_000, seq += 1000) {
    out.push({
      timestamp: new Date(t).toISOString(),
      host: { ...host },
      source: { run_id: run, seq },
      seen: seq * 3,
      lost_kernel: 0,
      spooled: 0,
      dropped: 0,
      spool_bytes: 0,
      ...counters(t),
    });
  }
  return out;
}

/**
 * The known heartbeats around the window of queries/sensor-gaps.sql
 * (2025-06-01, UTC, status interval 10 s, factor 3: a gap is over 30 s):
 * - web-1: healthy all day (its spool grows: late, not lost); after the window, losses that do not count;
 * - db-1: its sensor down from 10:00:00 to 10:05:00 (300 s), back as a new run that lost 3 records at its
 *   start; its first run had lost 5 the day before (not in the window);
 * - app-1: heartbeats all day, 120 records lost in the kernel around 12:00 and 7 dropped at 15:00;
 * - old-1: its last heartbeat on 2025-05-31 at 20:00: down the whole window;
 * - late-1: first heartbeat at 18:00 on the window's day, none before.
 */
function knownBeats(): SensorStatusRecord[] {
  const t = (hms: string, day = '2025-06-01') => `${day}T${hms}.000Z`;
  const before = t('23:59:40', '2025-05-31');
  const lastOfDay = t('23:59:50');
  return [
    ...beats(HOSTS.web, 'web-run', before, lastOfDay, (at) => ({ spooled: at > Date.parse(t('08:00:00')) ? 5000 : 0 })),
    ...beats(HOSTS.web, 'web-run-2', t('00:00:00', '2025-06-02'), t('00:10:00', '2025-06-02'), () => ({ lost_kernel: 999, dropped: 999 })),
    ...beats(HOSTS.db, 'db-run-1', t('23:00:00', '2025-05-31'), t('10:00:00'), (at) => ({
      lost_kernel: at >= Date.parse(t('23:30:00', '2025-05-31')) ? 5 : 0,
    })),
    ...beats(HOSTS.db, 'db-run-2', t('10:05:00'), lastOfDay, () => ({ lost_kernel: 3 })),
    ...beats(HOSTS.app, 'app-run', before, lastOfDay, (at) => ({
      lost_kernel: at >= Date.parse(t('12:00:20')) ? 120 : at >= Date.parse(t('12:00:10')) ? 100 : 0,
      dropped: at >= Date.parse(t('15:00:00')) ? 7 : 0,
    })),
    ...beats(HOSTS.old, 'old-run', t('19:00:00', '2025-05-31'), t('20:00:00', '2025-05-31')),
    ...beats(HOSTS.late, 'late-run', t('18:00:00'), lastOfDay),
  ];
}

/**
 * Writes status records as the archiver's status stream does: flushes of
 * `perFlush` records of the status topic through FlushBuilder (JSON, one object
 * per hour touched), under prefix "root-status" (statusPrefix of "root"), so
 * under dir + "-status" here. Returns the lines.
 */
async function writeStatusArchive(dir: string, records: SensorStatusRecord[], perFlush = 5000): Promise<string[]> {
  const lines: string[] = [];
  const prefix = statusPrefix('root');
  for (let first = 0; first < records.length; first += perFlush) {
    const b = new FlushBuilder(prefix, STATUS_TOPIC, 0, first, 6, 0);
    records.slice(first, first + perFlush).forEach((r, i) => {
      const line = JSON.stringify(r);
      lines.push(line);
      b.append({ offset: first + i, line, part: hourOf(r.timestamp)!, timeMs: Date.parse(r.timestamp) }, 0);
    });
    for (const o of (await b.seal('json')).objects) {
      assert.ok(o.key.startsWith(`${prefix}/dt=`), o.key);
      const file = path.join(statusDir(dir), o.key.slice(prefix.length + 1));
      mkdirSync(path.dirname(file), { recursive: true });
      writeFileSync(file, o.body);
    }
  }
  return lines;
}

describe('the status archive through DuckDB (netmon query): sensor_status and the hosts with gaps', () => {
  let dir: string;
  let q: ArchiveQuery;
  let records: SensorStatusRecord[];
  const rows = async (sql: string) => (await q.jsonRows(sql)).map((r) => JSON.parse(r) as Record<string, unknown>);

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'netmon-status-'));
    records = knownBeats();
    await writeStatusArchive(dir, records);
    // Events beside it, so that the views of both archives are there together.
    await writeArchive(dir, [sampleEvent({ ...WEB, timestamp: '2025-06-01T10:02:00.000Z' })], 1);
    q = await ArchiveQuery.open(dir);
  });
  after(() => {
    q?.close();
    for (const d of [dir, statusDir(dir)]) rmSync(d, { recursive: true, force: true });
  });

  test('SELECT * gives back every status record, fields in schema order, then dt and hour', async () => {
    const out = await q.jsonRows(`SELECT * FROM ${STATUS_TABLE} ORDER BY host.id, "timestamp"`);
    assert.equal(out.length, records.length);
    const sorted = [...records].sort((a, b) => (a.host.id === b.host.id ? (a.timestamp < b.timestamp ? -1 : 1) : a.host.id < b.host.id ? -1 : 1));
    for (const [i, text] of out.entries()) {
      const { dt, hour, ...rec } = JSON.parse(text) as Record<string, unknown>;
      assert.equal(JSON.stringify(rec), JSON.stringify(sorted[i]), `row ${i}`);
      assert.equal(dt, sorted[i]!.timestamp.slice(0, 10));
      assert.equal(hour, Number(sorted[i]!.timestamp.slice(11, 13)));
    }
    assert.deepEqual(await rows(`SELECT count(*) AS n FROM ${EVENTS_VIEW}`), [{ n: 1 }], 'the events are their own view');
  });

  test('the events of a host and its heartbeats side by side: db-1 had no heartbeat when its event would be missed', async () => {
    assert.deepEqual(
      await rows(
        `SELECT host.hostname AS hostname, count(*) AS heartbeats FROM ${STATUS_TABLE} WHERE dt = '2025-06-01' AND hour = 10 AND "timestamp" < '2025-06-01T10:05:00' GROUP BY 1 ORDER BY 1`,
      ),
      [
        { hostname: 'app-1', heartbeats: 30 },
        { hostname: 'db-1', heartbeats: 1 },
        { hostname: 'web-1', heartbeats: 30 },
      ],
    );
  });

  test('hosts with gaps: the down host, the late host, the host with a 300 s gap, the host with losses; not the healthy one', async () => {
    assert.deepEqual(await rows(readQuery('sensor-gaps')), [
      {
        hostname: 'old-1',
        host_id: HOSTS.old.id,
        heartbeats: 0,
        runs: 0,
        gaps: 1,
        blind_s: 86_400,
        longest_gap_s: 86_400,
        first_gap_at: '2025-06-01T00:00:00.000Z',
        lost_kernel: 0,
        dropped: 0,
        last_heartbeat: '2025-05-31T20:00:00.000Z',
      },
      {
        hostname: 'late-1',
        host_id: HOSTS.late.id,
        heartbeats: 2160,
        runs: 1,
        gaps: 1,
        blind_s: 64_800,
        longest_gap_s: 64_800,
        first_gap_at: '2025-06-01T00:00:00.000Z',
        lost_kernel: 0,
        dropped: 0,
        last_heartbeat: '2025-06-01T23:59:50.000Z',
      },
      {
        hostname: 'db-1',
        host_id: HOSTS.db.id,
        heartbeats: 8640 - 29,
        runs: 2,
        gaps: 1,
        blind_s: 300,
        longest_gap_s: 300,
        first_gap_at: '2025-06-01T10:00:00.000Z',
        lost_kernel: 3,
        dropped: 0,
        last_heartbeat: '2025-06-01T23:59:50.000Z',
      },
      {
        hostname: 'app-1',
        host_id: HOSTS.app.id,
        heartbeats: 8640,
        runs: 1,
        gaps: 0,
        blind_s: 0,
        longest_gap_s: 0,
        first_gap_at: null,
        lost_kernel: 120,
        dropped: 7,
        last_heartbeat: '2025-06-01T23:59:50.000Z',
      },
    ]);
  });

  test('runQueryCommand --source DIR reads the status records from DIR-status', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const io = { out: { write: (t: string) => out.push(t) }, err: { write: (t: string) => err.push(t) } };
    const code = await runQueryCommand([`SELECT count(*) AS n, count(DISTINCT host.id) AS hosts FROM ${STATUS_TABLE}`, '--json', '--source', dir], io);
    assert.equal(code, 0, err.join(''));
    assert.equal(out.join(''), `{"n":${records.length},"hosts":5}\n`);
  });
});
