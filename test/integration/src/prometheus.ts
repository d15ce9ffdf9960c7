// A real Prometheus for a test (Debian's `prometheus` package): its own config,
// data directory and free port on loopback, its HTTP API, and where the
// services' metrics servers listen. Also what metric names a rule file or a
// Grafana dashboard uses.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type Child, REPO_ROOT, startChild } from './processes';
import { waitUntil } from './wait';

export const PROMETHEUS_DIR = path.join(REPO_ROOT, 'infra/prometheus');
export const RULES_FILE = path.join(PROMETHEUS_DIR, 'netmon.rules.yml');
export const DASHBOARD_FILE = path.join(REPO_ROOT, 'infra/grafana/netmon.json');

/** `command -v`, or a message naming the Debian package that brings it. */
export function needBinary(name: 'prometheus' | 'promtool'): string {
  const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).stdout.trim();
  if (!found) throw new Error(`${name} not found: install Debian's prometheus package (apt-get install prometheus; .ci/apt-packages.txt lists it)`);
  return found;
}

/** A TCP port free on 127.0.0.1 now (the kernel's choice). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** TCP ports a process listens on, from /proc (its socket inodes in /proc/net/tcp{,6}). */
export function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  const ports = new Set<number>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
      const f = line.trim().split(/\s+/);
      if (f.length >= 10 && f[3] === '0A' && inodes.has(f[9]!)) ports.add(Number.parseInt(f[1]!.split(':')[1]!, 16));
    }
  }
  return [...ports];
}

/**
 * The port of a `netmon` service's metrics server (started with metrics_port: 0):
 * from its start-up log where it says (the sensor's `metrics_port`, the
 * archiver's `metricsPort`), else the one TCP port the process listens on.
 */
export async function metricsPortOf(child: Child, what: string): Promise<number> {
  return waitUntil(
    `the ${what}'s metrics port`,
    () => {
      if (child.proc.exitCode !== null) throw new Error(`the ${what} exited: ${child.stderr().slice(-2000)}`);
      const logged = /"metrics_?[pP]ort":(\d+)/.exec(child.stderr())?.[1];
      if (logged) return Number(logged);
      const ports = listeningPorts(child.proc.pid!);
      return ports.length === 1 ? ports[0] : undefined;
    },
    60_000,
  );
}

export interface PromAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: 'pending' | 'firing' | 'inactive';
  value: string;
}

export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

export interface Prometheus {
  url: string;
  /** GET /api/v1/<pathname>; its `data`, or throws with Prometheus's error. */
  api<T>(pathname: string, params?: Record<string, string>): Promise<T>;
  /** An instant query's vector. */
  query(expr: string): Promise<PromSample[]>;
  /** Every metric name with a series (GET /api/v1/label/__name__/values). */
  names(): Promise<Set<string>>;
  alerts(): Promise<PromAlert[]>;
  stop(): Promise<void>;
}

export interface PrometheusOptions {
  /** job name → host:port targets */
  jobs: Record<string, string[]>;
  ruleFiles?: string[];
  /** Scrape and rule evaluation interval (default 1s). */
  interval?: string;
}

/** Starts Debian's prometheus; resolves once /-/ready answers 200. */
export async function startPrometheus(opts: PrometheusOptions): Promise<Prometheus> {
  const bin = needBinary('prometheus');
  const dir = mkdtempSync(path.join(tmpdir(), 'netmon-prometheus-'));
  const interval = opts.interval ?? '1s';
  const config = path.join(dir, 'prometheus.yml');
  writeFileSync(
    config,
    JSON.stringify({
      global: { scrape_interval: interval, scrape_timeout: interval, evaluation_interval: interval },
      rule_files: opts.ruleFiles ?? [],
      scrape_configs: Object.entries(opts.jobs).map(([job, targets]) => ({ job_name: job, static_configs: [{ targets }] })),
    }),
  );
  // A port taken between freePort() and prometheus's bind fails the start: try again.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const child = startChild(bin, [
      `--config.file=${config}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ]);
    try {
      await waitUntil(
        'prometheus to be ready',
        async () => {
          if (child.proc.exitCode !== null) throw new Error(`prometheus exited ${child.proc.exitCode}: ${child.stderr().slice(-2000)}`);
          return (await fetch(`${url}/-/ready`).catch(() => undefined))?.status === 200;
        },
        30_000,
      );
    } catch (err) {
      await child.stop('SIGKILL');
      if (attempt < 3 && /address already in use/.test(child.stderr())) continue;
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    const api = async <T>(pathname: string, params: Record<string, string> = {}): Promise<T> => {
      const res = await fetch(`${url}/api/v1/${pathname}?${new URLSearchParams(params)}`);
      const body = (await res.json()) as { status: string; data: T; error?: string };
      if (body.status !== 'success') throw new Error(`prometheus ${pathname} ${JSON.stringify(params)}: ${body.error}`);
      return body.data;
    };
    return {
      url,
      api,
      query: async (expr) => (await api<{ result: PromSample[] }>('query', { query: expr })).result,
      names: async () => new Set(await api<string[]>('label/__name__/values')),
      alerts: async () => (await api<{ alerts: PromAlert[] }>('alerts')).alerts,
      stop: async () => {
        await child.stop('SIGTERM');
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
}

/** Metric names in PromQL text: Netmon's own (`netmon_…`) and Prometheus's `up`. */
export function metricNames(promql: string): string[] {
  const names = new Set(promql.match(/\bnetmon_[a-z0-9_]+/g) ?? []);
  if (/\bup\s*\{/.test(promql)) names.add('up');
  return [...names];
}

/** The expressions of a rule file (alerts and recording rules). */
export function ruleExpressions(file = RULES_FILE): string[] {
  // Each `expr:` is one line or a `|` block (the test compares the count with promtool's).
  const lines = readFileSync(file, 'utf8').split('\n');
  const exprs: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^(\s*)expr:\s*(.*)$/.exec(lines[i]!);
    if (!m) continue;
    if (m[2] !== '|') {
      exprs.push(m[2]!);
      continue;
    }
    const block: string[] = [];
    while (i + 1 < lines.length && (lines[i + 1]!.trim() === '' || lines[i + 1]!.search(/\S/) > m[1]!.length)) block.push(lines[++i]!);
    exprs.push(block.join('\n'));
  }
  return exprs;
}

export interface DashboardQuery {
  where: string;
  expr: string;
}

/** Every PromQL expression of a Grafana dashboard: panel targets (rows' too), annotations, the series of query variables. */
export function dashboardQueries(dashboard: unknown): DashboardQuery[] {
  const d = dashboard as {
    panels?: Array<{ title?: string; targets?: Array<{ expr?: string }>; panels?: unknown[] }>;
    annotations?: { list?: Array<{ name?: string; expr?: string }> };
    templating?: { list?: Array<{ name?: string; type?: string; query?: string | { query?: string } }> };
  };
  const out: DashboardQuery[] = [];
  const walk = (panels: typeof d.panels = []) => {
    for (const p of panels) {
      for (const t of p.targets ?? []) if (t.expr) out.push({ where: `panel "${p.title}"`, expr: t.expr });
      walk(p.panels as typeof d.panels);
    }
  };
  walk(d.panels);
  for (const a of d.annotations?.list ?? []) if (a.expr) out.push({ where: `annotation "${a.name}"`, expr: a.expr });
  for (const v of d.templating?.list ?? []) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : v.query?.query;
    // label_values(metric, label): Grafana asks for the metric's series.
    const series = q && /^label_values\((.+),\s*\w+\)$/.exec(q)?.[1];
    if (series) out.push({ where: `variable $${v.name}`, expr: series });
  }
  return out;
}

/** A dashboard expression as Prometheus would get it from Grafana: variables replaced. */
export function grafanaToPromQL(expr: string): string {
  return expr
    .replaceAll('$__rate_interval', '1m')
    .replaceAll('$__interval', '15s')
    .replace(/\$\{?(\w+)\}?/g, '.*');
}
