// The operators' view (infra/prometheus/, infra/grafana/): promtool checks and
// unit-tests the alert rules; then a real Prometheus (Debian's package, its own
// config, data dir and port, scraping every second) scrapes a running pipeline
// and evaluates the shipped rule file, unchanged. Every metric the rules and the
// dashboard name must exist in that scrape, every dashboard query must evaluate,
// and a real undecodable record on the raw topic must make the dead-letter alert
// fire (none of the dead-letter rules has a `for:`, so no test-only copy is needed).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { startPipeline, startTraffic, stopPipelines, testKafka, waitUntil } from '../src';
import type { Child, Pipeline } from '../src';
import {
  DASHBOARD_FILE,
  PROMETHEUS_DIR,
  type Prometheus,
  RULES_FILE,
  dashboardQueries,
  grafanaToPromQL,
  metricNames,
  metricsPortOf,
  needBinary,
  ruleExpressions,
  startPrometheus,
} from '../src/prometheus';

function promtool(...args: string[]): string {
  const r = spawnSync(needBinary('promtool'), args, { cwd: PROMETHEUS_DIR, encoding: 'utf8', timeout: 60_000 });
  const out = `${r.stdout}${r.stderr}`;
  assert.equal(r.status, 0, `promtool ${args.join(' ')} failed:\n${out}`);
  return out;
}

// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a template
const DATASOURCE_VARIABLE = '${datasource}';

const dashboard = () => JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as Record<string, unknown>;

describe('alert rules and dashboard files', () => {
  test('promtool: the rules and the example config check, and the rules pass their unit tests', () => {
    const checked = promtool('check', 'rules', 'netmon.rules.yml');
    const count = Number(/SUCCESS: (\d+) rules found/.exec(checked)?.[1]);
    // metricNames() below reads the rule file line by line: it must see every rule.
    assert.equal(ruleExpressions().length, count, `expressions read from ${RULES_FILE} vs promtool's count`);
    promtool('check', 'config', 'prometheus.yml');
    assert.match(promtool('test', 'rules', 'netmon.rules.test.yml'), /SUCCESS/);
  });

  test('the Grafana dashboard: valid JSON, the data source a variable every query uses, unique panel ids', () => {
    const d = dashboard() as {
      uid: string;
      panels: Array<{ id: number; type: string; datasource?: { uid: string }; targets?: Array<{ datasource?: { uid: string } }> }>;
      templating: { list: Array<{ name: string; type: string; query: unknown }> };
    };
    assert.ok(d.uid);
    assert.ok(
      d.templating.list.some((v) => v.name === 'datasource' && v.type === 'datasource' && v.query === 'prometheus'),
      'a datasource variable of type prometheus',
    );
    const ids = d.panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
    for (const p of d.panels.filter((p) => p.type !== 'row')) {
      assert.equal(p.datasource?.uid, DATASOURCE_VARIABLE, `panel ${p.id} uses the datasource variable`);
      assert.ok((p.targets ?? []).length > 0, `panel ${p.id} has queries`);
      for (const t of p.targets ?? []) assert.equal(t.datasource?.uid, DATASOURCE_VARIABLE, `panel ${p.id}'s queries use the datasource variable`);
    }
  });
});

describe('a real Prometheus scraping a running pipeline', () => {
  let pipeline: Pipeline;
  let prometheus: Prometheus;
  let traffic: Child;
  const topics: Record<string, string> = {};

  before(async () => {
    needBinary('prometheus');
    pipeline = await startPipeline();
    for (const [, name, topic] of readFileSync(pipeline.config, 'utf8').matchAll(/\b(raw|events|dlq): ([\w.-]+)/g)) topics[name!] = topic!;
    const jobs: Record<string, string[]> = {};
    for (const service of ['sensor', 'enricher', 'archiver'] as const) {
      jobs[`netmon-${service}`] = [`127.0.0.1:${await metricsPortOf(pipeline.children.get(service)!, service)}`];
    }
    prometheus = await startPrometheus({ jobs, ruleFiles: [RULES_FILE] });
    // Connections for the sensor to see: events all the way to S3 (flush metrics).
    traffic = startTraffic(100, 50);
  });

  after(async () => {
    await traffic?.stop();
    await prometheus?.stop();
    await stopPipelines();
  });

  test('the three services are scraped and no alert fires on a healthy pipeline', async () => {
    await waitUntil(
      'up == 1 for the three jobs',
      async () => {
        const up = await prometheus.query('up == 1');
        return up.length === 3;
      },
      30_000,
    );
    const jobs = (await prometheus.query('up')).map((s) => s.metric.job).sort();
    assert.deepEqual(jobs, ['netmon-archiver', 'netmon-enricher', 'netmon-sensor']);
    // The rules are loaded (a file that failed to load would list no group) and evaluate without error.
    type Rules = { groups: Array<{ name: string; rules: Array<{ name: string; health: string; lastError?: string }> }> };
    const rules = await waitUntil(
      'every rule evaluated',
      async () => {
        const r = await prometheus.api<Rules>('rules');
        return r.groups.every((g) => g.rules.every((rule) => rule.health !== 'unknown')) ? r : undefined;
      },
      15_000,
      250,
    );
    assert.deepEqual(rules.groups.map((g) => g.name).sort(), ['netmon-archiver', 'netmon-enricher', 'netmon-recording', 'netmon-sensor', 'netmon-targets']);
    for (const r of rules.groups.flatMap((g) => g.rules)) assert.equal(r.health, 'ok', `rule ${r.name}: ${r.lastError}`);
    const firing = (await prometheus.alerts()).filter((a) => a.state === 'firing');
    assert.deepEqual(
      firing.map((a) => a.labels.alertname),
      [],
      `alerts firing on a healthy pipeline: ${JSON.stringify(firing.map((a) => ({ ...a.labels, value: a.value })))}`,
    );
  });

  test('an undecodable record on the raw topic fires NetmonEnricherDeadLetters; on the events topic, NetmonArchiverDeadLetters', async () => {
    assert.deepEqual(await prometheus.query('netmon_enricher_dlq_total'), [], 'no dead letter before');
    const kafka = testKafka();
    const producer = kafka.producer();
    await producer.connect();
    try {
      // Random bytes: no single-object Avro header (0xC3 0x01), so no decoder takes them.
      const garbage = () => Buffer.concat([Buffer.from([0x00]), randomBytes(63)]);
      await producer.send({ topic: topics.raw!, messages: [{ key: 'prometheus-test', value: garbage() }] });
      await producer.send({ topic: topics.events!, messages: [{ key: 'prometheus-test', value: garbage() }] });
    } finally {
      await producer.disconnect();
    }
    const firing = await waitUntil(
      'both dead-letter alerts to fire',
      async () => {
        const alerts = (await prometheus.alerts()).filter((a) => a.state === 'firing');
        const enricher = alerts.find((a) => a.labels.alertname === 'NetmonEnricherDeadLetters');
        const archiver = alerts.find((a) => a.labels.alertname === 'NetmonArchiverDeadLetters');
        return enricher && archiver ? { enricher, archiver } : undefined;
      },
      30_000,
      250,
    );
    assert.equal(firing.enricher.labels.job, 'netmon-enricher');
    assert.ok(firing.enricher.labels.reason, 'the alert names the reason');
    assert.equal(Number(firing.enricher.value), 1, 'one record dead-lettered');
    assert.match(firing.enricher.annotations.summary!, /: 1 raw records dead-lettered in 10 min \(.+\)$/);
    assert.equal(firing.archiver.labels.job, 'netmon-archiver');
    assert.equal(Number(firing.archiver.value), 1);
    const dlq = await prometheus.query('sum(netmon_enricher_dlq_total)');
    assert.equal(dlq[0]?.value[1], '1');
  });

  test('every metric named in the rules and the dashboard exists in the scrape', async () => {
    const named = new Map<string, string[]>();
    const note = (names: string[], where: string) => {
      for (const n of names) named.set(n, [...(named.get(n) ?? []), where]);
    };
    const exprs = ruleExpressions();
    for (const e of exprs) note(metricNames(e), 'rules');
    for (const q of dashboardQueries(dashboard())) note(metricNames(q.expr), `dashboard ${q.where}`);
    for (const n of ['up', 'netmon_sensor_lost_kernel', 'netmon_enricher_dlq_total', 'netmon_archiver_lag_records', 'netmon_archiver_flush_seconds_bucket']) {
      assert.ok(named.has(n), `${n} among the ${named.size} names read from the rules and the dashboard`);
    }

    let missing: string[] = [];
    // Some series come with the first batch, status record or flush: wait for them.
    await waitUntil(
      'every named metric to have a series',
      async () => {
        const names = await prometheus.names();
        missing = [...named.keys()].filter((n) => !names.has(n));
        return missing.length === 0;
      },
      30_000,
      500,
    ).catch(() => {});
    assert.deepEqual(
      missing.map((n) => `${n} (${named.get(n)!.join(', ')})`),
      [],
      'metrics named by the rules or the dashboard that the services do not expose',
    );
    // The recording rules give series too (the lag alerts use them).
    for (const r of ['netmon:enricher_lag:sum', 'netmon:archiver_lag:sum']) {
      await waitUntil(`a series of ${r}`, async () => (await prometheus.query(r)).length > 0, 15_000, 500);
    }
  });

  test('every dashboard query evaluates in Prometheus', async () => {
    const failures: string[] = [];
    for (const q of dashboardQueries(dashboard())) {
      await prometheus.query(grafanaToPromQL(q.expr)).catch((err: Error) => failures.push(`${q.where}: ${err.message}`));
    }
    assert.deepEqual(failures, []);
  });
});
