// `netmon report` without a browser: the window flags, the escaping, each
// section's rows over a known archive, the page's text, and the command's
// errors (bad flags, an unreachable S3 server: one line). The page in a real
// browser is report-chromium.test.ts.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, type Socket, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ArchiveStore } from '@netmon/archiver';
import { UsageError, createS3Client, loadConfig } from '@netmon/common';
import { SECTIONS, buildReport, escapeHtml, jsonForScript, pageData, parseDuration, parseWindow } from '../src/report';
import { inlineScript } from '../src/report/page';
import { CONTAINER, HOSTILE_ARGS, HOSTILE_BINARY, HOSTILE_NAME, SINCE, UNTIL, writeKnownArchive } from './report-fixture';

const BIN = path.resolve(__dirname, '../../../bin/netmon.js');

function netmon(args: string[], env: NodeJS.ProcessEnv = {}) {
  const e: NodeJS.ProcessEnv = { ...process.env, ...env };
  if (!('NETMON_CONFIG' in env)) delete e.NETMON_CONFIG;
  const started = Date.now();
  const r = spawnSync(process.execPath, [BIN, ...args], { env: e, encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, seconds: (Date.now() - started) / 1000 };
}

describe('report window', () => {
  const now = new Date('2025-06-02T00:00:00.000Z');
  test('--since is a duration back from --until, or a time; buckets follow the span', () => {
    assert.equal(parseDuration('90m'), 90 * 60_000);
    assert.equal(parseDuration('1.5h'), 90 * 60_000);
    assert.equal(parseDuration('24'), undefined);
    assert.deepEqual(parseWindow(undefined, undefined, now), { start: new Date('2025-06-01T00:00:00.000Z'), end: now, unit: 'hour' });
    assert.equal(parseWindow('2h', undefined, now).unit, 'minute');
    assert.equal(parseWindow('30d', undefined, now).unit, 'day');
    assert.deepEqual(parseWindow('2025-05-31', '2025-06-01T12:00:00+02:00', now), {
      start: new Date('2025-05-31T00:00:00.000Z'),
      end: new Date('2025-06-01T10:00:00.000Z'),
      unit: 'hour',
    });
  });
  test('a wrong --since or --until is a usage error naming the flag', () => {
    assert.throws(
      () => parseWindow('yesterday', undefined, now),
      (e: unknown) => e instanceof UsageError && /^--since: /.test(e.reason),
    );
    assert.throws(
      () => parseWindow('24h', '2025-13-45', now),
      (e: unknown) => e instanceof UsageError && /^--until: /.test(e.reason),
    );
    assert.throws(
      () => parseWindow('2025-06-03', undefined, now),
      (e: unknown) => e instanceof UsageError && /must start before it ends/.test(e.reason),
    );
  });
});

describe('report escaping', () => {
  test('escapeHtml leaves no markup', () => {
    assert.equal(escapeHtml(`<script>alert("1")</script> & 'x'`), '&#60;script&#62;alert(&#34;1&#34;)&#60;/script&#62; &#38; &#39;x&#39;');
  });
  test('jsonForScript: the same value back, and nothing that ends or opens a script element', () => {
    const value = { a: HOSTILE_BINARY, b: '</SCRIPT ><!-- &amp; \u2028\u2029', c: [1, 2.5, null] };
    const text = jsonForScript(value);
    assert.deepEqual(JSON.parse(text), value);
    assert.doesNotMatch(text, /[<>&\u2028\u2029]/);
  });
  test('a library that would end the script element is refused', () => {
    assert.throws(() => inlineScript('var s = "</script>";', 'lib'), /cannot be inlined/);
    assert.equal(inlineScript('var a;\n//# sourceMappingURL=a.js.map\n', 'lib'), 'var a;\n');
  });
});

describe('report over a known archive', () => {
  let dir: string;
  let html: string;
  let byId: Map<string, Record<string, unknown>[]>;
  let data: ReturnType<typeof pageData>;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'netmon-report-'));
    writeKnownArchive(dir);
    const r = await buildReport(dir, { since: SINCE, until: UNTIL, top: 20, now: new Date(UNTIL) });
    html = r.html;
    byId = new Map(r.model.sections.map((s) => [s.section.id, s.rows]));
    data = pageData(r.model);
    assert.equal(r.model.summary.events, 18);
    assert.equal(r.model.extent.first_event, '2025-05-30T12:00:00.000Z');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('connections over time: every bucket of the window, per type, zero where nothing happened', () => {
    const timeline = data.charts.find((c) => c.id === 'timeline')!;
    assert.equal(timeline.labels.length, 24);
    assert.equal(timeline.labels[0], '2025-06-01T00:00:00.000Z');
    const series = Object.fromEntries(timeline.datasets.map((d) => [d.label.split(' ')[0], d.data]));
    const at = (label: string, hour: number) => series[label]![hour];
    assert.deepEqual(
      [at('Establish', 10), at('Establish', 11), at('Establish', 13), at('Establish', 14), at('Establish', 15), at('Establish', 23)],
      [2, 1, 2, 1, 1, 1],
    );
    assert.equal(at('Accept', 12), 3);
    assert.equal(at('Listen', 0), 1);
    assert.equal(at('Close', 10), 2);
    assert.equal(
      timeline.datasets.reduce((s, d) => s + d.data.reduce((a, b) => a + b, 0), 0),
      18,
    );
  });

  test('top binaries, remote addresses with their names, containers, refused connects, bytes', () => {
    const pick = (id: string, keys: string[]) => byId.get(id)!.map((r) => keys.map((k) => r[k]));
    assert.deepEqual(pick('binaries', ['binary_path', 'outgoing', 'incoming', 'listens', 'hosts']), [
      ['/usr/bin/curl', 4, 0, 0, 2],
      ['/usr/sbin/nginx', 0, 3, 1, 1],
      ['/usr/local/bin/newtool', 2, 0, 0, 1],
      ['/usr/bin/wget', 1, 0, 0, 1],
      [HOSTILE_BINARY, 1, 0, 0, 1],
    ]);
    assert.deepEqual(pick('remotes', ['remote_addr', 'remote_name', 'connections']), [
      ['203.0.113.7', 'api.example.com', 3],
      ['198.51.100.9', '', 2],
      ['198.51.100.20', '', 1], // the v1 event: no name (the view's default)
      ['198.51.100.20', 'cdn.example.net', 1],
      ['203.0.113.66', HOSTILE_NAME, 1],
    ]);
    assert.deepEqual(pick('new-binaries', ['binary_path', 'first_seen', 'first_args', 'events']), [
      ['/usr/local/bin/newtool', '2025-06-01T13:30:00.000Z', '--scan 198.51.100.9', 4],
      [HOSTILE_BINARY, '2025-06-01T14:00:00.000Z', HOSTILE_ARGS, 2],
      ['/usr/bin/wget', '2025-06-01T15:00:00.000Z', '', 1],
    ]);
    assert.deepEqual(pick('containers', ['container_id', 'hostname', 'outgoing', 'incoming', 'first_binary']), [
      [CONTAINER, 'web-18', 2, 0, '/usr/local/bin/newtool'],
    ]);
    assert.deepEqual(pick('refused', ['binary_path', 'remote_addr', 'remote_port', 'refused']), [['/usr/local/bin/newtool', '198.51.100.9', 22, 2]]);
    assert.deepEqual(pick('bytes', ['binary_path', 'bytes_sent', 'bytes_received', 'closes']), [
      ['/usr/bin/curl', 200, 4096 + 1_048_576, 2],
      ['/usr/sbin/nginx', 2000, 300, 1],
      [HOSTILE_BINARY, 7, 0, 1],
    ]);
  });

  test('text from events is escaped in the markup and in the data block', () => {
    for (const hostile of [HOSTILE_BINARY, HOSTILE_ARGS, HOSTILE_NAME]) {
      assert.ok(!html.includes(hostile), `raw ${hostile} in the page`);
      assert.ok(html.includes(`<td>${escapeHtml(hostile)}</td>`), `${hostile} not in a table cell`);
    }
    assert.equal(html.match(/<script/g)?.length, 3, 'the data block, Chart.js and the page script');
    assert.ok(html.includes('\\u003cscript\\u003ealert(1)\\u003c/script\\u003e'), 'the hostile label in the chart data');
    assert.match(html, /<meta http-equiv="Content-Security-Policy" content="default-src &#39;none&#39;; script-src &#39;sha256-/);
  });

  test('every section prints its SQL, and `netmon query` of it returns the rows the section shows', () => {
    for (const s of SECTIONS) assert.ok(html.includes(escapeHtml(s.sql(parseWindow(SINCE, UNTIL), 20))), s.id);
    const sqlFile = path.join(dir, 'binaries.sql');
    writeFileSync(sqlFile, SECTIONS.find((s) => s.id === 'binaries')!.sql(parseWindow(SINCE, UNTIL), 20));
    const r = netmon(['query', '--json', '--source', dir, '--file', sqlFile]);
    assert.equal(r.status, 0, r.stderr);
    const rows = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(rows, byId.get('binaries'));
  });
});

describe('netmon report (the command)', () => {
  test('--help, a wrong flag, a missing folder', () => {
    const help = netmon(['report', '--help']);
    assert.equal(help.status, 0);
    assert.match(help.stdout, /^Usage: netmon report/);
    const bad = netmon(['report', '--since', 'yesterday']);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /^netmon report: --since: expected a time/);
    const missing = netmon(['report', '--source', '/nonexistent/archive']);
    assert.equal(missing.status, 1);
    assert.equal(missing.stderr, 'netmon report: --source /nonexistent/archive: no such folder\n');
  });

  test('writes the page with progress on stderr', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'netmon-report-cmd-'));
    try {
      writeKnownArchive(path.join(dir, 'archive'));
      const out = path.join(dir, 'r.html');
      const r = netmon(['report', '--source', path.join(dir, 'archive'), '--since', SINCE, '--until', UNTIL, '--out', out]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, '');
      const lines = r.stderr.trim().split('\n');
      assert.match(lines[0]!, /^netmon report: \[1\/8\] summary: 18 events in the window/);
      assert.match(lines.at(-1)!, /^netmon report: wrote .*r\.html \(\d+ KiB; 18 events from 2025-06-01T00:00:00\.000Z to 2025-06-02T00:00:00\.000Z\)$/);
      assert.match(readFileSync(out, 'utf8'), /^<!DOCTYPE html>/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('an unreachable S3 server: one line within 5 s naming the server, the cause and the fix', () => {
    const r = netmon(['report', '--out', '/dev/null'], { S3_ENDPOINT: 'http://127.0.0.1:1', NETMON_CACHE_DIR: tmpdir() });
    assert.equal(r.status, 1, r.stderr);
    assert.ok(r.seconds < 5.5, `took ${r.seconds} s`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(
      lines[0]!,
      /^netmon report: cannot reach S3 at http:\/\/127\.0\.0\.1:1: connect ECONNREFUSED 127\.0\.0\.1:1; is the S3 server running\? For the local stack: \.\/bin\/netmon\.js stack up$/,
    );
  });

  test('an S3 server that never answers: one line within 5 s', async () => {
    // Accepts connections and says nothing (a hung server, a black-holing firewall).
    const held: Socket[] = [];
    const server = createServer((socket) => held.push(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const env: NodeJS.ProcessEnv = { ...process.env, S3_ENDPOINT: endpoint, NETMON_CACHE_DIR: tmpdir() };
      delete env.NETMON_CONFIG;
      const started = Date.now();
      const child = spawn(process.execPath, [BIN, 'report', '--out', '/dev/null'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (c: string) => {
        stderr += c;
      });
      const [code] = (await once(child, 'exit')) as [number | null];
      const seconds = (Date.now() - started) / 1000;
      assert.equal(code, 1, stderr);
      assert.ok(seconds < 5.5, `took ${seconds} s`);
      const lines = stderr.trim().split('\n');
      assert.equal(lines.length, 1, stderr);
      assert.ok(
        lines[0]!.startsWith(`netmon report: cannot reach S3 at ${endpoint}: `) &&
          lines[0]!.endsWith('; is the S3 server running? For the local stack: ./bin/netmon.js stack up'),
        lines[0],
      );
    } finally {
      for (const s of held) s.destroy();
      server.close();
    }
  });

  test('from S3: the same charts as from the folder (local S3 server)', async (t) => {
    const id = `report-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
    const dir = mkdtempSync(path.join(tmpdir(), 'netmon-report-s3-'));
    const configFile = path.join(dir, 'netmon.yaml');
    writeFileSync(configFile, `s3: { prefix: test/${id} }\n`);
    const config = loadConfig(configFile);
    const store = new ArchiveStore(createS3Client(config.s3), config.s3);
    try {
      try {
        await store.list(`${config.s3.prefix}/`);
      } catch (err) {
        t.skip(`no S3 server at ${config.s3.endpoint} (${(err as Error).message}): ./bin/netmon.js stack up`);
        return;
      }
      for (const o of writeKnownArchive(path.join(dir, 'archive'), config.s3.prefix)) await store.putObject(o.key, o.body);
      const common = ['--since', SINCE, '--until', UNTIL, '--out', '-'];
      const fromS3 = netmon(['report', '--config', configFile, ...common], { NETMON_CACHE_DIR: path.join(dir, 'cache') });
      assert.equal(fromS3.status, 0, fromS3.stderr);
      assert.match(fromS3.stderr, new RegExp(`s3://${config.s3.bucket}/test/${id}: 12 objects, 12 fetched`));
      const fromDir = netmon(['report', '--source', path.join(dir, 'archive'), ...common]);
      const block = (page: string) => /<script type="application\/json" id="netmon-data">(.*?)<\/script>/s.exec(page)?.[1];
      assert.ok(block(fromS3.stdout));
      assert.equal(block(fromS3.stdout), block(fromDir.stdout));
    } finally {
      await store.deletePrefix(`${config.s3.prefix}/`).catch(() => undefined);
      store.client.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
