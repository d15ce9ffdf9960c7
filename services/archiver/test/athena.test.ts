// The Athena DDL parses and matches the Avro contract; the example queries run
// through `netmon query`'s DuckDB view over objects written by the archiver's
// own FlushBuilder, and return the expected answers on a known data set.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { NetworkEvent } from '@netmon/common';
import { FlushBuilder } from '../src/batch';
import { type Column, type ColumnType, PARTITION_COLUMNS, eventColumns, hiveType } from '../src/columns';
import { hourOf } from '../src/layout';
import { ArchiveQuery, runQueryCommand } from '../src';
import { assertSpecOrder, sampleEvent } from './samples';

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
  const serde = /ROW\s+FORMAT\s+SERDE\s+'([^']+)'/i.exec(rest);
  assert.ok(serde, 'ROW FORMAT SERDE');
  assert.match(rest, /STORED\s+AS\s+INPUTFORMAT\s+'org\.apache\.hadoop\.mapred\.TextInputFormat'/i);
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
  return { table: head[1]!, columns: parseColumns(cols.inner), partitions: parseColumns(parts.inner), serde: serde[1]!, location: location[1]!, properties };
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
    for (const name of ['process', 'network_event', 'host']) {
      assert.equal(parsed.columns.find((c) => c.name === name)?.type.kind, 'struct', `${name} is a struct`);
    }
  });

  test('partition projection: dt as date, hour as integer, location template', () => {
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
  });
});

// ---- the example queries on a known data set ----------------------------------

const WEB = { hostname: 'web-1', hostId: 'aaaa0000000000000000000000000001' };
const DB = { hostname: 'db-1', hostId: 'bbbb0000000000000000000000000002' };
const CONTAINER = '3f4e8a9c1b2d4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f';

function knownEvents(): NetworkEvent[] {
  const ev = sampleEvent;
  return [
    // 2025-05-31: curl connects 3 times from 2 hosts (2 of them to 203.0.113.7), ssh once.
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
    // 2025-06-01: curl twice on web-1; a backdoor on db-1 accepts on 4444 from two clients.
    ev({ ...WEB, timestamp: '2025-06-01T00:00:00.000Z', binary: '/usr/bin/curl', daddr: '198.51.100.2', dport: 443, cookie: 104 }),
    ev({ ...WEB, timestamp: '2025-06-01T05:00:00.000Z', binary: '/usr/bin/curl', daddr: '198.51.100.2', dport: 443, cookie: 105 }),
    ev({
      ...DB,
      timestamp: '2025-06-01T05:10:00.000Z',
      binary: '/tmp/.x/backdoor',
      type: 'TcpConnectionAccept',
      saddr: '10.0.0.2',
      sport: 4444,
      daddr: '192.0.2.50',
      dport: 40001,
      cookie: 200,
    }),
    ev({
      ...DB,
      timestamp: '2025-06-01T05:11:00.000Z',
      binary: '/tmp/.x/backdoor',
      type: 'TcpConnectionAccept',
      saddr: '10.0.0.2',
      sport: 4444,
      daddr: '192.0.2.51',
      dport: 40002,
      cookie: 201,
    }),
    ev({
      ...DB,
      timestamp: '2025-06-01T05:20:00.000Z',
      binary: '/tmp/.x/backdoor',
      type: 'TcpConnectionClose',
      saddr: '10.0.0.2',
      sport: 4444,
      daddr: '192.0.2.50',
      dport: 40001,
      cookie: 200,
    }),
    ev({
      ...WEB,
      timestamp: '2025-06-01T06:00:00.000Z',
      binary: '/usr/bin/wget',
      type: 'TcpConnectionEstablish',
      daddr: '198.51.100.3',
      dport: 80,
      cookie: 106,
      containerId: CONTAINER,
    }),
  ].map((e, i) => ({ ...e, source: { run_id: 'known', seq: i } }));
}

/** Writes the events as the archiver would (two flushes of one partition) under `dir`. */
async function writeArchive(dir: string, events: NetworkEvent[]): Promise<string[]> {
  const lines: string[] = [];
  const half = Math.ceil(events.length / 2);
  for (const [first, slice] of [
    [0, events.slice(0, half)],
    [half, events.slice(half)],
  ] as const) {
    const b = new FlushBuilder('root', 'netmon.events.v1', 0, first, 6, 0);
    slice.forEach((e, i) => {
      const line = JSON.stringify(e);
      lines.push(line);
      b.append({ offset: first + i, line, part: hourOf(e.timestamp)!, timeMs: Date.parse(e.timestamp) }, 0);
    });
    for (const o of (await b.seal()).objects) {
      const file = path.join(dir, o.key.slice('root/'.length));
      mkdirSync(path.dirname(file), { recursive: true });
      writeFileSync(file, o.body);
    }
  }
  return lines;
}

const readQuery = (name: string) => readFileSync(path.join(athenaDir, 'queries', `${name}.sql`), 'utf8');

describe('example queries through DuckDB (netmon query)', () => {
  let dir: string;
  let q: ArchiveQuery;
  let lines: string[];
  const rows = async (sql: string) => (await q.jsonRows(sql)).map((r) => JSON.parse(r) as Record<string, unknown>);

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'netmon-query-'));
    lines = await writeArchive(dir, knownEvents());
    q = await ArchiveQuery.open(dir);
  });
  after(() => {
    q?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('every example query is there', () => {
    assert.deepEqual(readdirSync(path.join(athenaDir, 'queries')).sort(), [
      'connection-duration.sql',
      'connections-per-binary-per-day.sql',
      'container-events.sql',
      'unusual-listeners.sql',
      'who-talks-to-address.sql',
    ]);
  });

  test('SELECT * gives back the archived NetworkEvents: same fields, same order, same JSON types', async () => {
    const out = await q.jsonRows('SELECT * FROM network_events ORDER BY source.seq');
    assert.equal(out.length, lines.length);
    for (const [i, text] of out.entries()) {
      const obj = JSON.parse(text) as Record<string, unknown>;
      assertSpecOrder(obj);
      const { dt, hour, ...event } = obj;
      assert.equal(JSON.stringify(event), lines[i], 'the archived line, byte for byte once dt and hour are set aside');
      const ts = (event as { timestamp: string }).timestamp;
      assert.equal(dt, ts.slice(0, 10));
      assert.equal(hour, Number(ts.slice(11, 13)));
    }
  });

  test('partition columns prune: dt and hour', async () => {
    assert.deepEqual(await rows("SELECT count(*) AS n FROM network_events WHERE dt = '2025-06-01' AND hour = 5"), [{ n: 4 }]);
  });

  test('connections per binary per day', async () => {
    assert.deepEqual(await rows(readQuery('connections-per-binary-per-day')), [
      { dt: '2025-05-31', binary_path: '/usr/bin/curl', connections: 3, hosts: 2 },
      { dt: '2025-05-31', binary_path: '/usr/bin/ssh', connections: 1, hosts: 1 },
      { dt: '2025-06-01', binary_path: '/usr/bin/curl', connections: 2, hosts: 1 },
      { dt: '2025-06-01', binary_path: '/usr/bin/wget', connections: 1, hosts: 1 },
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

  test('connection durations pair Establish/Accept with Close by cookie and host', async () => {
    const r = await rows(readQuery('connection-duration'));
    assert.deepEqual(
      r.map((x) => [x.hostname, x.cookie, x.kind, x.duration_ms]),
      [
        ['db-1', 200, 'TcpConnectionAccept', 600_000],
        ['web-1', 102, 'TcpConnectionEstablish', 2000],
        ['web-1', 100, 'TcpConnectionEstablish', 1500],
        ['web-1', 101, 'TcpConnectionAccept', 250],
      ],
      'cookie 100 on db-1 has no close there and stays unpaired',
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

  test('an empty archive still has the view and its columns', async () => {
    const empty = mkdtempSync(path.join(tmpdir(), 'netmon-query-empty-'));
    const e = await ArchiveQuery.open(empty);
    try {
      assert.deepEqual(await e.jsonRows('SELECT count(*) AS n FROM network_events'), ['{"n":0}']);
      const t = await e.table('SELECT * FROM network_events');
      assert.deepEqual(t.columns, ['type', 'process', 'network_event', 'timestamp', 'host', 'source', 'dt', 'hour']);
    } finally {
      e.close();
      rmSync(empty, { recursive: true, force: true });
    }
  });

  test('runQueryCommand --source DIR --json prints one object per row', async () => {
    const chunks: string[] = [];
    const io = { out: { write: (t: string) => chunks.push(t) }, err: { write: () => true } };
    const code = await runQueryCommand(['SELECT count(*) AS n, max(process.cap_effective) AS caps FROM network_events', '--json', '--source', dir], io);
    assert.equal(code, 0);
    assert.equal(chunks.join(''), `{"n":${lines.length},"caps":${2 ** 40 - 1}}\n`);
  });
});
