// The sensor as a non-root user holding only SENSOR_CAPS (setpriv: ambient
// capabilities, empty bounding set otherwise, no_new_privs), on the real
// kernel and broker: its /proc status shows exactly that, and it publishes
// real events. Without CAP_BPF it exits at once, naming the capability.
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { randomUUID } from 'node:crypto';
import { type NetworkEvent, type RawRecord, type SocketEvent, rawRecordCodec, unwrapPayload } from '@netmon/common';
import {
  NETMON_BIN,
  SENSOR_CAPS,
  archived,
  createTopic,
  deleteArchive,
  deleteTopics,
  ensureBpffs,
  readTopic,
  startChild,
  startNetmon,
  testConfig,
  testKafka,
  waitUntil,
} from '../src';

const NOBODY = 65534;
const CAP_BITS: Record<(typeof SENSOR_CAPS)[number], number> = { BPF: 39, PERFMON: 38, NET_ADMIN: 12, SYS_PTRACE: 19 };
const kafka = testKafka();
const topics: string[] = [];
after(() => deleteTopics(kafka, topics));

/** A config and spool the unprivileged user can read and write; `lines`: more of it. */
function configFor(rawTopic: string, sensorExtra = '', lines: string[] = []): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'netmon-lp-'));
  mkdirSync(path.join(dir, 'spool'));
  chownSync(path.join(dir, 'spool'), NOBODY, NOBODY);
  chmodSync(dir, 0o755);
  const file = path.join(dir, 'netmon.yaml');
  const sensor = `sensor: { spool_dir: ${dir}/spool, metrics_port: 0, status_interval_s: 1${sensorExtra} }`;
  const topicsLine = lines.some((l) => l.startsWith('topics:')) ? [] : [`topics: { raw: ${rawTopic} }`];
  writeFileSync(file, [...topicsLine, sensor, 'log: { level: info }', ...lines, ''].join('\n'), { mode: 0o644 });
  return file;
}

/** `netmon sensor` as uid/gid 65534 with exactly `caps` (setpriv execs node in place: same pid). */
function unprivilegedSensor(config: string, caps: readonly string[]) {
  return unprivileged('sensor', config, caps);
}

/** `netmon <service>` as uid/gid 65534 with exactly `caps`, none inheritable beyond them, no_new_privs. */
function unprivileged(service: string, config: string, caps: readonly string[]) {
  const list = caps.map((c) => `+${c.toLowerCase()}`).join(',');
  const capArgs =
    caps.length > 0 ? [`--inh-caps=-all,${list}`, `--ambient-caps=-all,${list}`, `--bounding-set=-all,${list}`] : ['--inh-caps=-all', '--bounding-set=-all'];
  return startChild('setpriv', [
    `--reuid=${NOBODY}`,
    `--regid=${NOBODY}`,
    '--clear-groups',
    ...capArgs,
    '--no-new-privs',
    process.execPath,
    NETMON_BIN,
    service,
    '--config',
    config,
  ]);
}

/** One loopback connection made and closed by this process: the server's port and the client's. */
async function loopbackConnection(): Promise<{ port: number; localPort: number }> {
  const server = createServer((s) => s.end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const localPort = await new Promise<number>((resolve, reject) => {
    const c = createConnection({ host: '127.0.0.1', port }, () => {
      const lp = c.localPort!;
      c.on('close', () => resolve(lp));
      c.end();
    });
    c.on('error', reject);
    c.resume();
  });
  server.close();
  return { port, localPort };
}

function statusField(pid: number, name: string): string {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  assert.ok(line, `${name} in /proc/${pid}/status`);
  return line.slice(name.length + 1).trim();
}

describe('least privilege (real kernel, real broker)', { skip: process.getuid?.() === 0 ? false : 'setpriv to another user needs root' }, () => {
  test('the sensor runs as uid 65534 with exactly its capabilities and no_new_privs, and publishes real events', async () => {
    const topic = await createTopic(kafka, 'netmon.it.least-privilege');
    topics.push(topic);
    const sensor = unprivilegedSensor(configFor(topic), SENSOR_CAPS);
    await waitUntil('the sensor to start', () => sensor.stderr().includes('"sensor started"') || sensor.proc.exitCode !== null, 60_000);
    assert.equal(sensor.proc.exitCode, null, `sensor exited: ${sensor.stderr().slice(-2000)}`);
    const pid = sensor.proc.pid!;
    assert.deepEqual(statusField(pid, 'Uid').split(/\s+/).map(Number), [NOBODY, NOBODY, NOBODY, NOBODY], 'uid ≠ 0');
    const expected = SENSOR_CAPS.reduce((mask, c) => mask | (1n << BigInt(CAP_BITS[c])), 0n);
    assert.equal(BigInt(`0x${statusField(pid, 'CapEff')}`), expected, `CapEff exactly ${SENSOR_CAPS.join(', ')}`);
    assert.equal(statusField(pid, 'NoNewPrivs'), '1');
    // Every program loads with these capabilities, the later hooks included
    // (connection facts, listen, DNS answers): none skipped for lack of one.
    assert.doesNotMatch(sensor.stderr(), /skipped/, `no program skipped: ${sensor.stderr().slice(-1500)}`);

    // One real connection, found by its ports among the sensor's records.
    const { port, localPort } = await loopbackConnection();
    const mine = (records: RawRecord[]) =>
      records.flatMap((r) => {
        const p = unwrapPayload(r.payload);
        const s = p.kind === 'socket' ? (p.value as SocketEvent) : undefined;
        return s && s.task.pid === process.pid && (s.sport === localPort || s.dport === localPort) ? [s] : [];
      });
    const decode = (messages: { value: Buffer }[]) => mine(messages.flatMap((m) => rawRecordCodec().decodeAll(m.value)));
    const opened = (events: SocketEvent[]) => events.some((e) => e.kind === 'ESTABLISH') && events.some((e) => e.kind === 'ACCEPT');
    const seen = decode(await readTopic(kafka, topic, (messages) => opened(decode(messages)), 0, 30_000));
    const establish = seen.find((e) => e.kind === 'ESTABLISH')!;
    assert.equal(establish.dport, port);
    assert.equal(establish.sport, localPort);
    assert.equal(await sensor.stop('SIGTERM'), 0, sensor.stderr().slice(-2000));
  });

  test('the enricher and the archiver run as uid 65534 with no capability and carry a real connection to S3', async () => {
    const id = randomUUID().slice(0, 8);
    const [raw, events, dlq, status] = [
      await createTopic(kafka, 'netmon.it.lp.raw'),
      await createTopic(kafka, 'netmon.it.lp.events'),
      await createTopic(kafka, 'netmon.it.lp.dlq', 1),
      await createTopic(kafka, 'netmon.it.lp.status'),
    ];
    const prefix = `least-privilege/${id}`;
    topics.push(raw, events, dlq, status, `netmon-lp-enricher-${id}.state`);
    const config = configFor(raw, '', [
      `topics: { raw: ${raw}, events: ${events}, dlq: ${dlq}, status: ${status} }`,
      `s3: { bucket: ${testConfig().s3.bucket}, prefix: ${prefix} }`,
      `enricher: { group_id: netmon-lp-enricher-${id}, metrics_port: 0 }`,
      `archiver: { group_id: netmon-lp-archiver-${id}, metrics_port: 0, idle_flush_s: 1, flush_span_s: 5 }`,
    ]);
    const enricher = unprivileged('enricher', config, []);
    const archiver = unprivileged('archiver', config, []);
    const sensor = unprivilegedSensor(config, SENSOR_CAPS);
    try {
      await waitUntil('the sensor to start', () => sensor.stderr().includes('"sensor started"') || sensor.proc.exitCode !== null, 60_000);
      for (const child of [enricher, archiver]) {
        const pid = child.proc.pid!;
        assert.equal(child.proc.exitCode, null, child.stderr().slice(-2000));
        assert.deepEqual(statusField(pid, 'Uid').split(/\s+/).map(Number), [NOBODY, NOBODY, NOBODY, NOBODY]);
        for (const set of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) assert.equal(BigInt(`0x${statusField(pid, set)}`), 0n, `${set} empty`);
        assert.equal(statusField(pid, 'NoNewPrivs'), '1');
      }
      const { port, localPort } = await loopbackConnection();
      const mine = (e: NetworkEvent) => e.process.pid === process.pid && e.network_event.sport === localPort && e.network_event.dport === port;
      const found = await waitUntil(
        'the connection in the archive',
        async () => {
          for (const child of [enricher, archiver]) if (child.proc.exitCode !== null) throw new Error(`exited: ${child.stderr().slice(-2000)}`);
          return (await archived({ prefix })).find((e) => mine(e) && e.network_event.type === 'TcpConnectionEstablish');
        },
        90_000,
        1000,
      );
      assert.equal(found.process.pid, process.pid);
    } finally {
      for (const child of [sensor, enricher, archiver]) await child.stop('SIGTERM');
      await deleteArchive(prefix);
    }
  });

  // The manifests set sensor.pin_dir: pinning and adopting must need no capability beyond the set.
  test('with sensor.pin_dir, the unprivileged sensor pins its probes and the next one adopts them', async () => {
    ensureBpffs();
    const pinDir = `/sys/fs/bpf/netmon-lp-${process.pid}-${Date.now().toString(36)}`;
    mkdirSync(pinDir, { mode: 0o700 });
    chownSync(pinDir, NOBODY, NOBODY);
    const topic = await createTopic(kafka, 'netmon.it.least-privilege.pinned');
    topics.push(topic);
    const config = configFor(topic, `, pin_dir: ${pinDir}`);
    const started = async () => {
      const sensor = unprivilegedSensor(config, SENSOR_CAPS);
      await waitUntil('the sensor to start', () => sensor.stderr().includes('"sensor started"') || sensor.proc.exitCode !== null, 60_000);
      assert.equal(sensor.proc.exitCode, null, `sensor exited: ${sensor.stderr().slice(-2000)}`);
      return sensor;
    };
    try {
      const first = await started();
      assert.match(first.stderr(), /pinned in /, `the first sensor pins its probes: ${first.stderr().slice(-1500)}`);
      assert.equal(await first.stop('SIGKILL'), -1);
      const second = await started();
      assert.match(second.stderr(), /adopted the programs an earlier sensor left running/);
      assert.equal(await second.stop('SIGTERM'), 0, second.stderr().slice(-2000));
    } finally {
      const unpin = startNetmon(['sensor', '--config', config, '--unpin']);
      assert.equal(await unpin.exited, 0, unpin.stderr());
    }
    assert.equal(existsSync(pinDir), false, 'the pin directory is gone');
  });

  test('without CAP_BPF the sensor exits at once, naming the missing capability', async () => {
    const sensor = unprivilegedSensor(
      configFor('netmon.it.least-privilege.none'),
      SENSOR_CAPS.filter((c) => c !== 'BPF'),
    );
    const code = await sensor.exited;
    assert.equal(code, 1);
    assert.match(sensor.stderr(), /netmon sensor: .*missing CAP_BPF \(to load the programs and maps\)/);
    assert.doesNotMatch(sensor.stderr(), /missing CAP_PERFMON|missing CAP_NET_ADMIN/, 'only what is missing is named');
  });
});
