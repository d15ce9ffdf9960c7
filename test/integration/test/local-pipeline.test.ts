// The main job as a new user runs it (`netmon run --pipeline` on the local
// stack), and what `netmon query` says while events still wait for the
// archiver.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { type Server, createServer } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { DEFAULT_BROKERS, DEFAULT_S3, DEFAULT_CONNECTION_FACTS, type NetworkEvent, networkEventCodec } from '@netmon/common';
import { type Child, NETMON_BIN, type Pipeline, pipelineTopics, startChild, startNetmon, startPipeline, stopPipelines, testKafka, waitUntil } from '../src';

const isRoot = process.getuid?.() === 0;
const localStack =
  (process.env.KAFKA_BROKERS ?? DEFAULT_BROKERS.join(',')) === DEFAULT_BROKERS.join(',') &&
  (process.env.S3_ENDPOINT ?? DEFAULT_S3.endpoint) === DEFAULT_S3.endpoint;

/** `netmon query` as a user runs it; rows as JSON. */
function query(sql: string, config?: string): { rows: Array<Record<string, unknown>>; stderr: string; status: number | null } {
  const r = spawnSync(process.execPath, [NETMON_BIN, 'query', '--json', ...(config ? ['--config', config] : []), sql], { encoding: 'utf8', timeout: 60_000 });
  const rows = r.stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { rows, stderr: r.stderr, status: r.status };
}

describe('the main job (netmon run --pipeline on the local stack)', {
  skip: !isRoot ? 'the kernel probes need root' : !localStack ? 'the infrastructure is not the local stack the main job uses' : false,
}, () => {
  let run: Child;
  let server: Server;
  let port: number;

  before(async () => {
    const env: NodeJS.ProcessEnv = { NETMON_CONFIG: '' };
    run = startNetmon(['run', '--pipeline'], env);
    await waitUntil('the live view to start', () => run.stderr().includes('live view of the events topic') || run.proc.exitCode !== null, 120_000);
    assert.match(run.stderr(), /sensor ready: every TCP connection on this host is recorded from now on/);
    assert.equal(run.proc.exitCode, null, run.stderr());
    server = createServer((_, res) => res.end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
  });
  after(async () => {
    await run?.stop('SIGINT');
    server?.close();
  });

  test('it states its flush policy, and a curl is in the archive (netmon query) within 15 s', async () => {
    assert.match(run.stderr(), /the archiver writes within 2 s of the last event, 10 s at most \(the local flush policy/);
    // not spawnSync: the server answering curl runs in this process's event loop
    const curl = startChild('curl', ['-s', '-o', '/dev/null', `http://127.0.0.1:${port}/`]);
    assert.equal(await curl.exited, 0, curl.stderr());
    const curledAt = Date.now();
    const found = await waitUntil(
      "curl's events in the archive",
      () => {
        const r = query(`SELECT network_event.type AS type FROM network_events WHERE process.pid = ${curl.proc.pid} AND network_event.dport = ${port}`);
        return r.rows.length >= 2 ? r.rows : undefined;
      },
      20_000,
      500,
    );
    const seconds = (Date.now() - curledAt) / 1000;
    assert.ok(seconds <= 15, `curl's events took ${seconds} s to be queryable`);
    assert.deepEqual(found.map((r) => r.type).sort(), ['TcpConnectionClose', 'TcpConnectionEstablish']);
  });

  test('the live view ends each screen with a status line: events/s, archiver lag, DLQ, kernel losses, sensor drops', async () => {
    // stdout is not a terminal here: the status lines go to stderr
    const line = await waitUntil(
      'a status line',
      () => /── [\d.]+ events\/s · archiver: \d+ waiting · DLQ \d+ · kernel lost \d+ · sensor dropped \d+/.exec(run.stderr())?.[0],
      15_000,
    );
    assert.ok(line);
  });
});

describe('netmon query while events wait for the archiver', { skip: isRoot ? false : 'the pipeline needs root' }, () => {
  let p: Pipeline;
  before(async () => {
    p = await startPipeline();
  });
  after(() => stopPipelines());

  test('with the archiver stopped, it says how many events wait and when they will be written', async () => {
    await p.children.get('archiver')!.stop('SIGTERM');
    const codec = networkEventCodec();
    const producer = testKafka().producer();
    await producer.connect();
    const event = (seq: number): NetworkEvent => ({
      type: 'NetworkEvent',
      process: {
        pid: 7,
        tid: 7,
        ppid: 1,
        uid: 0,
        euid: 0,
        auid: 0,
        cap_inheritable: 0,
        cap_permitted: 0,
        cap_effective: 0,
        secureexec: '',
        filename: 'x',
        binary_path: '/x',
        args: '',
        container_id: '',
      },
      network_event: { type: 'TcpConnectionEstablish', saddr: '127.0.0.1', daddr: '127.0.0.1', sport: 1, dport: 2, cookie: seq },
      timestamp: new Date().toISOString(),
      host: { hostname: 'h', id: 'h' },
      source: { run_id: 'query-lag', seq },
      connection: { ...DEFAULT_CONNECTION_FACTS },
      process_key: '',
    });
    await producer.send({ topic: pipelineTopics(p).events, messages: [1, 2, 3, 4, 5].map((n) => ({ key: 'h', value: codec.encode(event(n)) })) });
    await producer.disconnect();
    const r = query('SELECT count(*) AS n FROM network_events', p.config);
    assert.equal(r.status, 0, r.stderr);
    const waiting = /about (\d+) events are still waiting for the archiver \(group [^)]+\); it writes them within 1 s of the last event, 5 s at most/.exec(
      r.stderr,
    );
    assert.ok(waiting, r.stderr);
    assert.ok(Number(waiting[1]) >= 5, `at least the 5 events written: ${waiting[1]}`);
  });
});
