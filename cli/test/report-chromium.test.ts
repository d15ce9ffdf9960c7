// `netmon report` opened in headless Chromium (Debian's chromium), driven over
// the DevTools protocol on a pipe (--remote-debugging-pipe: no port, no
// WebSocket client needed). The page must render its charts with no console
// error, no exception, no dialog and no network request; the timeline chart
// must hold what `netmon query` returns for the SQL the page prints, and the
// known archive's counts; a hostile binary path must show as text.
// Skips, saying why, only when Chromium cannot start here even with --no-sandbox.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { HOSTILE_ARGS, HOSTILE_BINARY, HOSTILE_NAME, KNOWN, SINCE, UNTIL, inWindow, writeKnownArchive } from './report-fixture';

const BIN = path.resolve(__dirname, '../../../bin/netmon.js');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

type Message = {
  id?: number;
  method?: string;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: { message: string };
  sessionId?: string;
};

/** The DevTools protocol over Chromium's pipe: JSON messages ended by NUL, fd 3 in, fd 4 out. */
class Cdp {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: Record<string, unknown>) => void; reject: (e: Error) => void; method: string }>();
  private readonly listeners = new Set<(m: Message) => void>();
  private buffer = '';
  private closed?: Error;

  constructor(
    private readonly input: Writable,
    output: Readable,
  ) {
    output.setEncoding('utf8');
    output.on('data', (chunk: string) => {
      this.buffer += chunk;
      for (let end = this.buffer.indexOf('\0'); end >= 0; end = this.buffer.indexOf('\0')) {
        const message = JSON.parse(this.buffer.slice(0, end)) as Message;
        this.buffer = this.buffer.slice(end + 1);
        this.dispatch(message);
      }
    });
    output.on('close', () => this.fail(new Error('the DevTools pipe closed')));
    input.on('error', (err) => this.fail(err));
  }

  private dispatch(m: Message): void {
    if (m.id !== undefined) {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (m.error) p?.reject(new Error(`${p.method}: ${m.error.message}`));
      else p?.resolve(m.result ?? {});
      return;
    }
    for (const l of this.listeners) l(m);
  }

  private fail(err: Error): void {
    this.closed ??= err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  send(method: string, params: Record<string, unknown> = {}, sessionId?: string, timeoutMs = 15_000): Promise<Record<string, unknown>> {
    if (this.closed) return Promise.reject(this.closed);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${method}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        method,
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.input.write(`${JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) })}\0`);
    });
  }

  on(listener: (m: Message) => void): void {
    this.listeners.add(listener);
  }

  waitFor(what: string, match: (m: Message) => boolean, timeoutMs = 15_000): Promise<Message> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.listeners.delete(l);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const l = (m: Message) => {
        if (!match(m)) return;
        clearTimeout(timer);
        this.listeners.delete(l);
        resolve(m);
      };
      this.listeners.add(l);
    });
  }
}

interface Browser {
  proc: ChildProcess;
  cdp: Cdp;
  stderr: () => string;
  close(): Promise<void>;
}

/** Starts headless Chromium with the DevTools protocol on a pipe; rejects with its stderr when it cannot start. */
async function launch(profile: string): Promise<Browser> {
  const args = [
    '--headless',
    '--no-sandbox', // root in a container: Chromium's own sandbox needs user namespaces it may not have
    '--disable-gpu',
    '--remote-debugging-pipe',
    `--user-data-dir=${profile}`,
    '--no-first-run',
    '--no-default-browser-check',
    '--disable-extensions',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-default-apps',
    '--mute-audio',
    // Nothing may leave the machine, whatever the page asks for (requests still show in the Network domain).
    '--proxy-server=http://127.0.0.1:9',
    '--host-resolver-rules=MAP * ~NOTFOUND',
    '--window-size=1280,2000',
    'about:blank',
  ];
  const proc = spawn(CHROMIUM, args, { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
  let err = '';
  proc.stderr!.setEncoding('utf8');
  proc.stderr!.on('data', (c: string) => {
    err = (err + c).slice(-20_000);
  });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const cdp = new Cdp(proc.stdio[3] as Writable, proc.stdio[4] as Readable);
  const close = async () => {
    await cdp.send('Browser.close', {}, undefined, 3000).catch(() => undefined);
    const timer = setTimeout(() => proc.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  };
  try {
    await cdp.send('Browser.getVersion', {}, undefined, 20_000);
  } catch (e) {
    proc.kill('SIGKILL');
    await exited;
    throw new Error(`${(e as Error).message}; chromium's stderr ends:\n${err.split('\n').slice(-8).join('\n')}`);
  }
  return { proc, cdp, stderr: () => err, close };
}

function netmon(args: string[]) {
  const env = { ...process.env };
  delete env.NETMON_CONFIG;
  const r = spawnSync(process.execPath, [BIN, ...args], { env, encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, `netmon ${args.join(' ')}: ${r.stderr}`);
  return r;
}

test('the report in headless Chromium: charts drawn from the archive, nothing fetched, no error, hostile text inert', { timeout: 60_000 }, async (t) => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} not found: apt-get install chromium (scripts/setup.sh installs .ci/apt-packages.txt), or set CHROMIUM_PATH`);
  const dir = mkdtempSync(path.join(tmpdir(), 'netmon-report-chromium-'));
  let browser: Browser | undefined;
  try {
    const archive = path.join(dir, 'archive');
    writeKnownArchive(archive);
    const page = path.join(dir, 'report.html');
    netmon(['report', '--source', archive, '--since', SINCE, '--until', UNTIL, '--out', page]);

    try {
      browser = await launch(path.join(dir, 'profile'));
    } catch (err) {
      t.skip(`Chromium cannot start here, even with --no-sandbox: ${(err as Error).message}`);
      return;
    }
    const { cdp } = browser;
    const { targetId } = (await cdp.send('Target.createTarget', { url: 'about:blank' })) as { targetId: string };
    const { sessionId } = (await cdp.send('Target.attachToTarget', { targetId, flatten: true })) as { sessionId: string };

    const url = pathToFileURL(page).href;
    const requests: string[] = [];
    const problems: string[] = [];
    const dialogs: string[] = [];
    cdp.on((m) => {
      if (m.sessionId !== sessionId || !m.params) return;
      // biome-ignore lint/suspicious/noExplicitAny: the protocol's event parameters, read field by field
      const p = m.params as Record<string, any>;
      switch (m.method) {
        case 'Network.requestWillBeSent':
          requests.push(String(p.request?.url));
          break;
        case 'Runtime.consoleAPICalled':
          if (p.type === 'error' || p.type === 'assert' || p.type === 'warning')
            problems.push(`console.${p.type}: ${(p.args as { value?: unknown; description?: string }[]).map((a) => a.value ?? a.description).join(' ')}`);
          break;
        case 'Runtime.exceptionThrown':
          problems.push(`exception: ${p.exceptionDetails?.exception?.description ?? p.exceptionDetails?.text}`);
          break;
        case 'Log.entryAdded':
          if (p.entry?.level === 'error' || p.entry?.level === 'warning')
            problems.push(`log ${p.entry.level} (${p.entry.source}): ${p.entry.text} ${p.entry.url ?? ''}`);
          break;
        case 'Page.javascriptDialogOpening':
          dialogs.push(String(p.message));
          void cdp.send('Page.handleJavaScriptDialog', { accept: false }, sessionId).catch(() => undefined);
          break;
      }
    });
    for (const domain of ['Page', 'Network', 'Runtime', 'Log']) await cdp.send(`${domain}.enable`, {}, sessionId);
    const loaded = cdp.waitFor('the page to load', (m) => m.sessionId === sessionId && m.method === 'Page.loadEventFired');
    await cdp.send('Page.navigate', { url }, sessionId);
    await loaded;

    const evaluate = async <T>(expression: string): Promise<T> => {
      const r = (await cdp.send('Runtime.evaluate', { expression, returnByValue: true }, sessionId)) as {
        result: { value?: T };
        exceptionDetails?: { text: string };
      };
      if (r.exceptionDetails) throw new Error(`${expression}: ${r.exceptionDetails.text}`);
      return r.result.value as T;
    };
    // The page script marks the body once it has drawn every chart.
    const deadline = Date.now() + 10_000;
    let drawn = await evaluate<string | undefined>('document.body.dataset.charts');
    while (drawn === undefined && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      drawn = await evaluate<string | undefined>('document.body.dataset.charts');
    }
    assert.equal(drawn, '6', 'charts drawn: timeline, binaries, remotes, containers, refused, bytes');
    await new Promise((r) => setTimeout(r, 300)); // anything late (a lazy fetch, an error in a timer) shows up

    assert.ok(requests.includes(url), `the Network domain saw the page's own load (${requests.join(', ')})`);
    assert.deepEqual(
      { problems, dialogs, requests: requests.filter((r) => r !== url) },
      { problems: [], dialogs: [], requests: [] },
      'console errors, warnings, exceptions or CSP violations; dialogs (injected script ran); network requests but the page itself',
    );

    // Each chart as Chart.js holds it.
    type ChartData = { labels: string[]; datasets: { label: string; data: number[] }[] };
    const charts = await evaluate<Record<string, ChartData>>(`Object.fromEntries([...document.querySelectorAll('canvas')].map((c) => {
      const d = Chart.getChart(c).data;
      return [c.id, { labels: d.labels, datasets: d.datasets.map((s) => ({ label: s.label, data: s.data })) }];
    }))`);
    assert.deepEqual(Object.keys(charts), ['chart-timeline', 'chart-binaries', 'chart-remotes', 'chart-containers', 'chart-refused', 'chart-bytes']);
    const canvasesDrawn = await evaluate<boolean[]>(
      `[...document.querySelectorAll('canvas')].map((c) => c.width > 0 && c.height > 0 && c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some((v) => v !== 0))`,
    );
    assert.deepEqual(canvasesDrawn, [true, true, true, true, true, true], 'every canvas has pixels');

    // The timeline chart against `netmon query` of the SQL the page prints.
    const sql = await evaluate<string>(`document.querySelector('#timeline pre').textContent`);
    const sqlFile = path.join(dir, 'timeline.sql');
    writeFileSync(sqlFile, sql);
    const queried = netmon(['query', '--json', '--source', archive, '--file', sqlFile])
      .stdout.trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { bucket: string; type: string; events: number });
    assert.ok(queried.length > 0);
    const timeline = charts['chart-timeline']!;
    const series = (type: string) => timeline.datasets.find((d) => d.label.startsWith(type.replace(/^Tcp(Connection)?/, '')))!.data;
    const fromChart = new Map<string, number>();
    timeline.labels.forEach((label, i) => {
      for (const type of ['TcpConnectionEstablish', 'TcpConnectionAccept', 'TcpConnectionClose', 'TcpListen']) {
        const v = series(type)[i]!;
        if (v !== 0) fromChart.set(`${Date.parse(label)} ${type}`, v);
      }
    });
    const fromQuery = new Map(queried.map((r) => [`${Date.parse(r.bucket)} ${r.type}`, r.events]));
    assert.deepEqual(fromChart, fromQuery, 'timeline chart vs netmon query');
    // ... and against the events written, counted here.
    const expected = new Map<string, number>();
    for (const e of KNOWN.filter(inWindow)) {
      const k = `${Math.floor(Date.parse(e.t) / 3_600_000) * 3_600_000} ${e.type}`;
      expected.set(k, (expected.get(k) ?? 0) + 1);
    }
    assert.deepEqual(fromChart, expected, 'timeline chart vs the archive written');

    // The hostile strings: text in cells, data in the chart, no markup anywhere.
    const dom = await evaluate<{ scripts: number; imgs: number; cells: string[] }>(`({
      scripts: document.scripts.length,
      imgs: document.images.length,
      cells: [...document.querySelectorAll('td')].map((td) => td.textContent),
    })`);
    assert.equal(dom.scripts, 3, 'the data block, Chart.js and the page script, no other');
    assert.equal(dom.imgs, 0, 'no <img> from a hostile name');
    for (const hostile of [HOSTILE_BINARY, HOSTILE_ARGS, HOSTILE_NAME]) assert.ok(dom.cells.includes(hostile), `${hostile} shown as text`);
    assert.ok(charts['chart-binaries']!.labels.includes(HOSTILE_BINARY), 'the hostile path is a chart label');
  } finally {
    await browser?.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
