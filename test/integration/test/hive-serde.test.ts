// Hostile processes through the whole pipeline (the real sensor, enricher and
// archiver, broker and S3), the archive read back by the real Hive JsonSerDe
// with the Athena table's columns (the reader Athena's DDL names), and by
// DuckDB (`netmon query`) from the same mirrored objects. Argv with invalid
// UTF-8, newlines, CR, tabs, quotes, backslashes, control characters, JSON of
// its own, a 1 MB argv of two-byte characters; binaries under directories
// whose names hold a newline, CR, quotes, tab, or invalid UTF-8. Every archived
// line is one JSON object that Hive reads whole; Hive's row is the line's
// fields; the hostile processes' args and paths are what they ran with, invalid
// bytes replaced (U+FFFD), the text cut at sensor.max_args_bytes with "…", and
// DuckDB reads the same.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import type { NetworkEvent } from '@netmon/common';
import { NETMON_BIN, archived, startChild, startPipeline, stopPipelines, testConfig, waitUntil } from '../src';
import { type HiveLine, hiveClassPath, hiveRead, hiveTable } from '../src/hive';

const PY = realpathSync('/usr/bin/python3');
/** Below the kernel's 4096-byte argv copy, so the cut is the setting's and the same on every run. */
const MAX_ARGS_BYTES = 3000;
const ELLIPSIS = '…';
after(stopPipelines);

/** A process to run: the binary's path and argv[1..], as raw bytes. */
interface Hostile {
  binary: Buffer;
  args: Buffer[];
}

// python3 reads the bytes (hex, from a file: a 1 MB argv does not fit in one
// argument) and execs them: Node cannot pass invalid UTF-8 in argv or paths.
const LAUNCH = `import json, os, sys
spec = json.load(open(sys.argv[1]))
os.execv(bytes.fromhex(spec['binary']), [b'hostile'] + [bytes.fromhex(a) for a in spec['args']])`;
// what the exec'd python runs: one connection to the port in argv[1]
const CONNECT = 'import socket,sys; s=socket.socket(); s.connect(("127.0.0.1", int(sys.argv[1]))); s.close()';

function run(h: Hostile, dir: string, name: string) {
  const spec = path.join(dir, `${name}.json`);
  writeFileSync(spec, JSON.stringify({ binary: h.binary.toString('hex'), args: h.args.map((a) => a.toString('hex')) }));
  return startChild(PY, ['-c', LAUNCH, spec]);
}

/** args as the spec says the archive holds them: joined by spaces, invalid UTF-8 as U+FFFD, cut at a character within max bytes with "…". */
function expectedArgs(args: Buffer[], maxBytes: number): string {
  const text = args.map((a) => a.toString('utf8')).join(' ');
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= maxBytes) return text;
  let end = maxBytes - Buffer.byteLength(ELLIPSIS);
  while ((bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.toString('utf8', 0, end) + ELLIPSIS;
}

/** A copy of python3 at dir/<dirName>/<fileName>, names given as raw bytes. */
function pythonAt(dir: string, dirName: Buffer, fileName: Buffer): Buffer {
  const where = Buffer.concat([Buffer.from(`${dir}/`), dirName]);
  mkdirSync(where);
  const binary = Buffer.concat([where, Buffer.from('/'), fileName]);
  copyFileSync(PY, binary);
  chmodSync(binary, 0o755);
  return binary;
}

/** Hive's row holds every field of the line, and nothing the line lacks but NULLs. */
function assertRowIsLine(row: unknown, line: unknown, where: string): void {
  if (row !== null && typeof row === 'object') {
    assert.ok(line !== null && typeof line === 'object' && !Array.isArray(line), `${where}: a struct in Hive, ${JSON.stringify(line)} in the line`);
    const fields = line as Record<string, unknown>;
    for (const key of Object.keys(fields)) assert.ok(key in row, `${where}.${key}: in the line, not in the table`);
    for (const [key, value] of Object.entries(row)) assertRowIsLine(value, fields[key], `${where}.${key}`);
    return;
  }
  assert.deepEqual(row, line ?? null, where);
}

// The reader is no rubber stamp: what Athena would refuse or split, it refuses or splits.
test('the Hive reader refuses a raw control character, splits at a raw CR, and reads escaped ones back', async (t) => {
  const cp = await hiveClassPath();
  if ('unreachable' in cp) {
    t.skip(cp.unreachable);
    return;
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'netmon-hive-'));
  const file = path.join(dir, 'lines.json');
  const good = { type: 'NetworkEvent', process: { pid: 7, args: 'a\nb\r\u0001"\\ \ufffd 😀' }, unknown_field: 1 };
  writeFileSync(file, [JSON.stringify(good), '{"type":"raw \u0001 control"}', '{"type":"raw \r CR"}'].join('\n'));
  const read = await hiveRead([file], hiveTable(), cp);
  rmSync(dir, { recursive: true, force: true });
  assert.equal(read.length, 4, 'the raw CR ends a line, as in TextInputFormat');
  assert.equal((read[0]!.row!.process as { args: string }).args, good.process.args);
  assert.equal(read[0]!.row!.connection, null, 'a column the line lacks is NULL');
  assert.deepEqual(
    read.slice(1).map((l) => (l.error ? 'refused' : 'read')),
    ['refused', 'refused', 'refused'],
    JSON.stringify(read.slice(1)),
  );
});

test('hostile processes through the pipeline: the real Hive JsonSerDe reads every archived line with the Athena columns, as DuckDB does', {
  skip: process.getuid?.() === 0 ? false : 'the kernel probes need root',
  timeout: 600_000,
}, async (t) => {
  const cp = await hiveClassPath();
  if ('unreachable' in cp) {
    t.skip(cp.unreachable);
    return;
  }
  const table = hiveTable();
  assert.equal(table.serde, 'org.apache.hive.hcatalog.data.JsonSerDe');

  const dir = mkdtempSync(path.join(tmpdir(), 'netmon-hive-'));
  const server = createServer((s) => s.resume());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const connect = [Buffer.from('-c'), Buffer.from(CONNECT), Buffer.from(String(port))];
  const hostiles: Record<string, Hostile> = {
    bytes: {
      binary: Buffer.from(PY),
      args: [
        ...connect,
        ...[
          Buffer.from([0xff, 0xfe, 0x20, 0x62, 0x61, 0x64]), // invalid UTF-8, then " bad"
          Buffer.from([0xed, 0xa0, 0x80, 0xc0, 0xaf, 0xe2, 0x82]), // a surrogate, an overlong '/', a cut euro sign
          'line1\nline2',
          'cr\rlf\r\n',
          'tab\there',
          `quote"q'`,
          'back\\slash \\u0000 \\"',
          '\x01\x02\x1b[31m\x7f',
          '',
          '{"type":"forged","process":{"pid":1}}',
          'ünïcødé ✓ 😀',
        ].map((a) => (typeof a === 'string' ? Buffer.from(a) : a)),
      ],
    },
    // 1 MB: 8 arguments of 65,000 two-byte characters (one argument is at most 128 KiB)
    huge: { binary: Buffer.from(PY), args: [...connect, ...Array.from({ length: 8 }, (_, i) => Buffer.from(`${i}${'é'.repeat(65_000)}`))] },
    newline: { binary: pythonAt(dir, Buffer.from('bin\nwith newline\r'), Buffer.from('py "q"\ttab\\')), args: [...connect, Buffer.from('plain')] },
    invalidPath: { binary: pythonAt(dir, Buffer.from([0x62, 0xff, 0xfe, 0x0a, 0x01]), Buffer.from('py')), args: connect },
  };

  const p = await startPipeline('', `, max_args_bytes: ${MAX_ARGS_BYTES}`);
  const pids = new Map<string, number>();
  for (const [name, h] of Object.entries(hostiles)) {
    const child = run(h, dir, name);
    assert.equal(await child.exited, 0, `${name}: ${child.stderr()}`);
    pids.set(name, child.proc.pid!);
  }
  const establishOf = (events: NetworkEvent[], pid: number) => events.find((e) => e.process.pid === pid && e.network_event.type === 'TcpConnectionEstablish');
  await waitUntil(
    'an archived Establish of each hostile process',
    async () => {
      const events = await archived(p);
      return [...pids.values()].every((pid) => establishOf(events, pid)) || undefined;
    },
    120_000,
    1000,
  );
  server.close();

  // DuckDB, through `netmon query`, which mirrors the prefix's objects into its cache folder first
  const cache = path.join(dir, 'cache');
  const sql = `SELECT process.pid AS pid, process.args AS args, process.binary_path AS binary_path, process.filename AS filename,
    (SELECT count(*) FROM network_events) AS lines
    FROM network_events WHERE process.pid IN (${[...pids.values()].join(',')}) AND network_event.type = 'TcpConnectionEstablish'`;
  const { stdout } = await promisify(execFile)(process.execPath, [NETMON_BIN, 'query', '--json', '--config', p.config, sql], {
    env: { ...process.env, NETMON_CACHE_DIR: cache },
    maxBuffer: 1 << 26,
  });
  const duck = stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { pid: number; args: string; binary_path: string; filename: string; lines: number });

  // Hive, over the very objects DuckDB read
  const mirror = path.join(cache, 'archive', testConfig().s3.bucket, p.prefix);
  const files = readdirSync(mirror, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.json.gz'))
    .map((f) => path.join(mirror, f))
    .sort();
  assert.ok(files.length > 0, `no objects in ${mirror}`);
  const started = Date.now();
  const hive = await hiveRead(files, table, cp);
  const hiveMs = Date.now() - started;

  let lineCount = 0;
  const hiveByPid = new Map<number, NonNullable<HiveLine['row']>>();
  for (const file of files) {
    const lines = gunzipSync(readFileSync(file)).toString('utf8').split('\n');
    assert.equal(lines.pop(), '', `${file}: ends with a newline`);
    const read = hive.filter((h) => h.file === file);
    const failed = read.filter((h) => h.error);
    assert.deepEqual(failed.slice(0, 3), [], `${file}: lines Hive's JsonSerDe refused`);
    // as many rows as lines: no line split by a raw CR or LF inside it, none lost
    assert.deepEqual(
      read.map((h) => h.line),
      lines.map((_, i) => i + 1),
      `${file}: Hive read ${read.length} lines of ${lines.length}`,
    );
    lines.forEach((text, i) => {
      const json: unknown = JSON.parse(text);
      assert.ok(json !== null && typeof json === 'object' && !Array.isArray(json), `${file}:${i + 1}: one JSON object`);
      const row = read[i]!.row!;
      assert.deepEqual(
        Object.keys(row),
        table.columns.map((c) => c.name),
        `${file}:${i + 1}: the table's columns`,
      );
      assertRowIsLine(row, json, `${file}:${i + 1}`);
      const pid = (row.process as { pid?: number } | null)?.pid;
      if (pid !== undefined && (row.network_event as { type?: string } | null)?.type === 'TcpConnectionEstablish') hiveByPid.set(pid, row);
    });
    lineCount += lines.length;
  }
  assert.equal(hive.length, lineCount, 'Hive read no more lines than the objects hold');
  assert.equal(duck[0]?.lines, lineCount, 'DuckDB reads every archived line too');

  for (const [name, h] of Object.entries(hostiles)) {
    const pid = pids.get(name)!;
    const binaryPath = h.binary.toString('utf8');
    const truth = { args: expectedArgs(h.args, MAX_ARGS_BYTES), binary_path: binaryPath, filename: binaryPath.slice(binaryPath.lastIndexOf('/') + 1) };
    const hiveProcess = hiveByPid.get(pid)?.process as Record<string, unknown> | undefined;
    assert.ok(hiveProcess, `${name}: Hive read its Establish`);
    assert.deepEqual({ args: hiveProcess.args, binary_path: hiveProcess.binary_path, filename: hiveProcess.filename }, truth, `${name}: in Hive`);
    const fromDuck = duck.find((r) => r.pid === pid);
    assert.deepEqual({ args: fromDuck?.args, binary_path: fromDuck?.binary_path, filename: fromDuck?.filename }, truth, `${name}: in DuckDB`);
  }
  // the cut is the setting's: within max_args_bytes, the 1 MB argument kept up to it
  const hugeArgs = expectedArgs(hostiles.huge!.args, MAX_ARGS_BYTES);
  assert.ok(Buffer.byteLength(hugeArgs) <= MAX_ARGS_BYTES && Buffer.byteLength(hugeArgs) > MAX_ARGS_BYTES - 8 && hugeArgs.endsWith(ELLIPSIS));
  t.diagnostic(`${lineCount} lines in ${files.length} objects; Hive's JsonSerDe read them in ${hiveMs} ms (JVM start and compile included)`);
  rmSync(dir, { recursive: true, force: true }); // kept when the test fails, to look at
});
