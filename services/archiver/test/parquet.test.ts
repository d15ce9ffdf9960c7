// Parquet mode without a broker or S3: FlushBuilder's two ways of holding a
// flush (gzip in memory, spool file) sealed as either format, the Parquet
// writer's rows, types, row groups and determinism, the spool's clean-up, and
// the partition machine's handling of the format a manifest fixes.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { DuckDBInstance } from '@duckdb/node-api';
import { type NetworkEvent, networkEventCodec } from '@netmon/common';
import { type ArchiveRecord, FlushBuilder, type FlushStorage, SpoolDir } from '../src/batch';
import { EventDecoder } from '../src/decode';
import { type ArchiveFormat, manifestKey } from '../src/layout';
import type { Manifest } from '../src/manifest';
import { ParquetWriter } from '../src/parquet';
import { type Command, type OpenFlush, PartitionMachine } from '../src/partition';
import { sampleEvent } from './samples';

let root: string;
let spool: SpoolDir;
let parquet: ParquetWriter;
before(async () => {
  root = mkdtempSync(path.join(tmpdir(), 'netmon-parquet-test-'));
  spool = await SpoolDir.create(root);
  parquet = new ParquetWriter({ tmpDir: spool.dir });
});
after(async () => {
  await parquet.close();
  spool.remove();
  rmSync(root, { recursive: true, force: true });
});

/** Events over two hours, with strings JSON must escape and non-ASCII ones (the codec's path, not the fast one). */
function events(n: number): NetworkEvent[] {
  return Array.from({ length: n }, (_, i) =>
    sampleEvent({
      seq: i,
      cookie: 1000 + i,
      timestamp: new Date(Date.parse('2025-05-31T10:59:58.000Z') + i * 7).toISOString(),
      type: (['TcpConnectionEstablish', 'TcpConnectionAccept', 'TcpConnectionClose', 'TcpListen'] as const)[i % 4],
      binary: i % 3 ? '/usr/bin/curl' : '/opt/tëst/bin "quoted" \\ tab\there',
      connection: {
        outcome: i % 4 === 2 ? 'refused' : '',
        duration_ms: i,
        bytes_sent: 2 ** 40 + i,
        remote_name: i % 2 ? 'api.example.com' : '',
        netns: 4026531840,
      },
    }),
  );
}

/** Appends the events as the archiver does: Avro → EventDecoder → the flush. */
function fill(b: FlushBuilder, evs: NetworkEvent[], first = 0): void {
  const codec = networkEventCodec();
  const decoder = new EventDecoder();
  evs.forEach((e, i) => {
    const rec = decoder.decode({ offset: first + i, key: null, value: codec.encode(e) }, first + i) as ArchiveRecord;
    b.append(rec, 0);
  });
}

const builder = (storage: FlushStorage, first = 0) => new FlushBuilder('root', 'netmon.events.v1', 0, first, 6, 0, storage);

/** The rows of a Parquet body, as DuckDB's to_json gives them. */
async function parquetRows(body: Buffer, sql = 'SELECT * FROM t'): Promise<Record<string, unknown>[]> {
  const file = path.join(root, `read-${Math.random().toString(36).slice(2)}.parquet`);
  writeFileSync(file, body);
  const instance = await DuckDBInstance.create(':memory:');
  const c = await instance.connect();
  try {
    await c.run(`CREATE VIEW t AS SELECT * FROM read_parquet('${file}')`);
    const r = await c.runAndReadAll(`SELECT to_json(x) FROM (${sql}) AS x`);
    return r.getRows().map((row) => JSON.parse(String(row[0])) as Record<string, unknown>);
  } finally {
    c.closeSync();
    instance.closeSync();
    rmSync(file, { force: true });
  }
}

describe('FlushBuilder sealed as Parquet', () => {
  test('one object per hour under <prefix>-parquet, each row the event as the JSON archive has it, plus event_time in ms', async () => {
    const evs = events(600);
    const b = builder({ spool, parquet });
    fill(b, evs);
    const { objects } = await b.seal('parquet');
    assert.deepEqual(
      objects.map((o) => [o.key, o.records]),
      [
        ['root-parquet/dt=2025-05-31/hour=10/netmon.events.v1+0+00000000000000000000.parquet', 286],
        ['root-parquet/dt=2025-05-31/hour=11/netmon.events.v1+0+00000000000000000286.parquet', 314],
      ],
    );
    let i = 0;
    for (const o of objects) {
      assert.equal(o.body.subarray(0, 4).toString(), 'PAR1');
      for (const row of await parquetRows(o.body)) {
        const { event_time: eventTime, ...event } = row;
        assert.equal(JSON.stringify(event), JSON.stringify(evs[i]), `row ${i}: the JSON line's fields, values and order`);
        assert.equal(Date.parse(`${String(eventTime).replace(' ', 'T')}Z`), Date.parse(evs[i]!.timestamp));
        i++;
      }
    }
    assert.equal(i, evs.length);
  });

  test('the same records give the same bytes: again, and from the gzip hold (JSON mode replaying a Parquet manifest)', async () => {
    const evs = events(300);
    const seal = async (storage: FlushStorage) => {
      const b = builder(storage);
      fill(b, evs);
      return (await b.seal('parquet')).objects.map((o) => o.body.toString('base64'));
    };
    const first = await seal({ spool, parquet });
    assert.deepEqual(await seal({ spool, parquet }), first);
    assert.deepEqual(await seal({ parquet }), first);
  });

  test('a spooled flush sealed as JSON (Parquet mode replaying a JSON manifest) gives the JSON mode bytes', async () => {
    const evs = events(500);
    const a = builder({ parquet });
    const b = builder({ spool, parquet });
    fill(a, evs);
    fill(b, evs);
    const ja = (await a.seal('json')).objects;
    const jb = (await b.seal('json')).objects;
    assert.deepEqual(
      jb.map((o) => o.key),
      ja.map((o) => o.key),
    );
    assert.ok(jb.every((o) => o.key.startsWith('root/dt=') && o.key.endsWith('.json.gz')));
    for (const [k, o] of jb.entries()) assert.equal(gunzipSync(o.body).toString(), gunzipSync(ja[k]!.body).toString());
    assert.deepEqual(
      jb.map((o) => o.body.toString('base64')),
      ja.map((o) => o.body.toString('base64')),
      'byte for byte',
    );
  });

  test('row groups of the configured size; zstd pages', async () => {
    // DuckDB cuts row groups at its vectors' bounds (2,048 rows).
    const small = new ParquetWriter({ tmpDir: spool.dir, rowGroupRows: 2048 });
    try {
      const b = new FlushBuilder('root', 't', 0, 0, 6, 0, { spool, parquet: small });
      const evs = events(5000).map((e) => ({ ...e, timestamp: '2025-05-31T10:00:00.000Z' }));
      fill(b, evs);
      const [o] = (await b.seal('parquet')).objects;
      const file = path.join(root, 'rg.parquet');
      writeFileSync(file, o!.body);
      const instance = await DuckDBInstance.create(':memory:');
      const c = await instance.connect();
      const meta = (
        await c.runAndReadAll(
          `SELECT row_group_id, max(row_group_num_rows) AS n, min(compression) AS codec FROM parquet_metadata('${file}') GROUP BY 1 ORDER BY 1`,
        )
      ).getRowsJson();
      c.closeSync();
      instance.closeSync();
      assert.deepEqual(
        meta.map((r) => Number(r[1])),
        [2048, 2048, 904],
      );
      assert.ok(meta.every((r) => r[2] === 'ZSTD'));
    } finally {
      await small.close();
    }
  });

  test('spool files: one per hour group while open, gone after the seal and after a discard', async () => {
    const files = () => readdirSync(spool.dir).filter((f) => f.endsWith('.json'));
    const before = files().length;
    const b = builder({ spool, parquet });
    fill(b, events(300));
    const c = builder({ spool, parquet }, 1000);
    fill(c, events(300), 1000);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(files().length, before + 4, 'two groups each');
    await b.seal('parquet');
    c.discard();
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(files().length, before);
  });

  test('SpoolDir removes the folders of archivers that are gone, not those of live ones', async () => {
    const base = mkdtempSync(path.join(root, 'spools-'));
    const dead = path.join(base, 'netmon-archiver-999999999-abc');
    const live = path.join(base, `netmon-archiver-${process.ppid}-def`);
    const other = path.join(base, 'something-else');
    for (const d of [dead, live, other]) mkdirSync(d);
    const s = await SpoolDir.create(base);
    assert.deepEqual([existsSync(dead), existsSync(live), existsSync(other), existsSync(s.dir)], [false, true, true, true]);
    s.remove();
    assert.equal(existsSync(s.dir), false);
  });

  test('a Parquet seal without a writer fails (and the machine reads the flush again)', async () => {
    const b = builder({ spool });
    fill(b, events(3));
    await assert.rejects(b.seal('parquet'), /needs a Parquet writer/);
  });
});

// ---- the partition machine and the format a manifest fixes ---------------------

class FakeFlush implements OpenFlush {
  lastOffset: number;
  nextOffset: number;
  records = 0;
  rawBytes = 0;
  firstTimeMs = Number.NaN;
  maxTimeMs = Number.NaN;
  lastAppendAt = 0;
  constructor(readonly firstOffset: number) {
    this.lastOffset = firstOffset - 1;
    this.nextOffset = firstOffset;
  }
  append(rec: ArchiveRecord): void {
    if (this.records === 0) this.firstTimeMs = rec.timeMs;
    this.records++;
    this.rawBytes += 100;
    this.lastOffset = rec.offset;
    this.nextOffset = rec.offset + 1;
    this.maxTimeMs = rec.timeMs;
  }
  coverThrough(): void {}
  discard(): void {}
}

type Cmd = Command<FakeFlush>;
const find = <K extends Cmd['kind']>(cmds: Cmd[], kind: K) => cmds.find((c) => c.kind === kind) as Extract<Cmd, { kind: K }> | undefined;

function machine(format: ArchiveFormat): PartitionMachine<FakeFlush> {
  return new PartitionMachine<FakeFlush>({
    topic: 't',
    partition: 0,
    prefix: 'p',
    format,
    limits: { records: 5, bytes: 1 << 30, spanMs: 3_600_000, idleMs: 60_000 },
    maxQueuedFlushes: 2,
    writer: { host: 'h', pid: 1, memberId: 'm' },
    openFlush: (first) => new FakeFlush(first),
    decode: (_m, offset) => ({ offset, line: '{}', part: { dt: '2025-05-31', hour: '10' }, timeMs: offset }),
    random: () => 1,
  });
}

const msgs = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => ({ offset: from + i, key: null, value: Buffer.from('x') }));
const manifestOf = (format: ArchiveFormat | undefined, first: number, last: number): Manifest => ({
  version: 1,
  topic: 't',
  partition: 0,
  firstOffset: first,
  lastOffset: last,
  nextOffset: last + 1,
  records: last - first + 1,
  ...(format ? { format } : {}),
  objects: [],
  writer: { host: 'earlier', pid: 2, memberId: 'm0' },
  createdAt: '2025-05-31T10:00:00.000Z',
});
const body = (format: ArchiveFormat) => [
  { key: `k.${format}`, part: { dt: '2025-05-31', hour: '10' }, firstOffset: 0, records: 5, rawBytes: 500, body: Buffer.alloc(1) },
];

describe('partition machine: the manifest fixes the format', () => {
  test("a new flush is sealed in the member's format, and its manifest says so", () => {
    const m = machine('parquet');
    const lookup = find(m.records(msgs(0, 0), undefined, 0), 'readManifest')!;
    const seal = find([...m.manifestRead(lookup.op, undefined, 0), ...m.records(msgs(1, 4), undefined, 0)], 'seal')!;
    assert.equal(seal.format, 'parquet');
    const create = find(m.sealed(seal.op, body('parquet'), 0), 'createManifest')!;
    assert.equal(create.key, manifestKey('p', 't', 0, 0), 'manifests of both formats under s3.prefix');
    assert.equal(create.manifest.format, 'parquet');
  });

  for (const [mine, theirs] of [
    ['parquet', undefined],
    ['parquet', 'json'],
    ['json', 'parquet'],
  ] as const) {
    test(`a ${mine} member replaying a manifest of ${theirs ?? 'before Parquet (no format: JSON)'} writes that format, and creates no manifest`, () => {
      const m = machine(mine);
      const lookup = find(m.records(msgs(0, 0), undefined, 0), 'readManifest')!;
      const out = [...m.manifestRead(lookup.op, manifestOf(theirs, 0, 2), 0), ...m.records(msgs(1, 2), undefined, 0)];
      const seal = find(out, 'seal')!;
      assert.deepEqual([seal.firstOffset, seal.lastOffset, seal.format], [0, 2, theirs ?? 'json']);
      const next = m.sealed(seal.op, body(theirs ?? 'json'), 0);
      assert.equal(find(next, 'createManifest'), undefined);
      assert.ok(find(next, 'put'));
    });
  }

  test('another writer created the manifest first with the same range in the other format: read again, then its format', () => {
    const m = machine('parquet');
    const lookup = find(m.records(msgs(0, 0), undefined, 0), 'readManifest')!;
    const seal = find([...m.manifestRead(lookup.op, undefined, 0), ...m.records(msgs(1, 4), undefined, 0)], 'seal')!;
    const create = find(m.sealed(seal.op, body('parquet'), 0), 'createManifest')!;
    const verify = find(m.manifestCreated(create.op, 'exists', 0), 'readManifest')!;
    assert.equal(verify.why, 'verify');
    const out = m.manifestRead(verify.op, manifestOf('json', 0, 4), 0);
    assert.equal(find(out, 'put'), undefined, 'not the same flush: nothing put');
    assert.deepEqual(find(out, 'seek'), { kind: 'seek', offset: 0 });
    // Read again: the lookup finds the JSON manifest, and the flush is sealed as JSON.
    const again = find(m.records(msgs(0, 0), undefined, 0), 'readManifest')!;
    const seal2 = find([...m.manifestRead(again.op, manifestOf('json', 0, 4), 0), ...m.records(msgs(1, 4), undefined, 0)], 'seal')!;
    assert.deepEqual([seal2.lastOffset, seal2.format], [4, 'json']);
  });
});
