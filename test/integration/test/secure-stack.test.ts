// The pipeline against a broker that demands what production does
// (`netmon stack up --secure`: SASL_SSL with SCRAM-SHA-512, a local CA,
// StandardAuthorizer with an ACL set per service principal), with fresh topics
// and groups and the services' ACLs for them:
// - a producer with the sensor's credentials writes raw records; the real
//   `netmon enricher` and `netmon archiver` (each with its own user and the CA
//   file) carry them to the archive in S3;
// - the sensor's credentials can neither write nor read the events topic;
// - wrong password, unknown CA, plaintext client on the TLS port: one line
//   naming the broker and the cause, a nonzero exit, and a bounded number of
//   attempts seen by the broker (no retry storm);
// - no password or private key in any output, log line or error (the test's
//   own clients' logs, the services' stdout and stderr, the broker's log);
// - docs/security.md holds the kafka-acls.sh command of every ACL.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { DeleteObjectsCommand, GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { ADMIN_USER, DEFAULT_PIPELINE_NAMES, DEFAULT_SERVICE_USERS, type PipelineNames, aclCommand, aclEntries, makeCa, serviceAcls } from '@netmon/cli';
import {
  type KafkaSettings,
  NO_SOCKET_FACTS,
  NativeConsumer,
  NativeProducer,
  type NetworkEvent,
  type RawRecord,
  type TaskFacts,
  createLogger,
  createS3Client,
  rawRecordCodec,
} from '@netmon/common';
import { type Child, REPO_ROOT, startNetmon, testConfig, waitUntil } from '../src';
import {
  SECURE_CHILD_ENV,
  type SecureBroker,
  brokerLogMark,
  brokerLogSince,
  cleanPipeline,
  failedAuthentications,
  freshNames,
  provisionPipeline,
  secrets,
  secureAdmin,
  secureBroker,
  settingsOf,
  writeConfig,
} from '../src/secure';

const { sensor: SENSOR, enricher: ENRICHER, archiver: ARCHIVER } = DEFAULT_SERVICE_USERS;
const WRONG_PASSWORD = 'Wrong-Passw0rd-for-the-test';

const dir = mkdtempSync(path.join(tmpdir(), 'netmon-secure-'));
const s3Settings = testConfig().s3;
const s3 = createS3Client(s3Settings);

/** Everything the test's own clients log, asserted free of secrets at the end. */
let clientLog = '';
const logger = createLogger('secure-it', 'info', {
  write: (line: string) => {
    clientLog += line;
  },
});

let broker: SecureBroker;
let names: PipelineNames;
let brokerMark = 0;
/** Every child started: its output is asserted free of secrets at the end. */
const children: Array<{ what: string; child: Child }> = [];
const started = (what: string, child: Child) => {
  children.push({ what, child });
  return child;
};

before(async () => {
  broker = await secureBroker();
  brokerMark = brokerLogMark(broker);
  names = freshNames();
  await provisionPipeline(broker, names);
});

after(async () => {
  for (const { child } of children) await child.stop('SIGKILL');
  if (names) await cleanPipeline(broker, names);
  if (broker) await broker.stop();
  rmSync(dir, { recursive: true, force: true });
  s3.destroy();
});

// One host's process and its connections, as the sensor sends them.
const HOST = { host_id: '5ec0de5ec0de5ec0de5ec0de5ec0de01', hostname: 'secure-host' };
const T0 = 1_790_000_000_000_000;
function task(pid: number): TaskFacts {
  return {
    pid,
    tid: pid,
    ppid: 1,
    uid: 1000,
    euid: 1000,
    auid: 1000,
    cap_inheritable: 0,
    cap_permitted: 0,
    cap_effective: 0,
    comm: 'curl',
    cgroup_id: 1,
    cgroup_path: '/user.slice',
    start_time_us: 70_000_000,
    ktime_us: 5_000_000_000,
  };
}
function rawRecords(run: string, connections: number): RawRecord[] {
  const t = task(4242);
  const at = (seq: number) => ({ ...HOST, run_id: run, seq, time_us: T0 + seq * 1000 });
  const out: RawRecord[] = [
    {
      ...at(0),
      payload: {
        'netmon.raw.ProcessExec': {
          task: t,
          snapshot: false,
          binary_path: '/usr/bin/curl',
          args: ['https://example.org'],
          args_truncated: false,
          secureexec: [],
        },
      },
    },
  ];
  for (let i = 1; i <= connections; i++) {
    out.push({
      ...at(i),
      payload: {
        'netmon.raw.SocketEvent': {
          kind: 'ESTABLISH',
          task: t,
          family: 'INET',
          saddr: Buffer.from([10, 0, 0, 1]),
          daddr: Buffer.from([93, 184, 216, 34]),
          sport: 40000 + i,
          dport: 443,
          cookie: 9000 + i,
          ...NO_SOCKET_FACTS,
        },
      },
    });
  }
  return out;
}

async function archivedEvents(prefix: string): Promise<NetworkEvent[]> {
  const listed = await s3.send(new ListObjectsV2Command({ Bucket: s3Settings.bucket, Prefix: `${prefix}/dt=` }));
  const events: NetworkEvent[] = [];
  for (const o of listed.Contents ?? []) {
    if (!o.Key?.endsWith('.json.gz')) continue;
    const got = await s3.send(new GetObjectCommand({ Bucket: s3Settings.bucket, Key: o.Key }));
    const text = gunzipSync(Buffer.from(await got.Body!.transformToByteArray())).toString();
    for (const line of text.split('\n').filter(Boolean)) events.push(JSON.parse(line) as NetworkEvent);
  }
  return events;
}

describe('secure stack: TLS, SCRAM-SHA-512 and ACLs', () => {
  test('stack up --secure: the TLS listener, the users, the CA, the ACLs of the default names', async () => {
    assert.match(broker.upOutput, /127\.0\.0\.1:9192/);
    assert.match(broker.upOutput, /answering/);
    const pem = readFileSync(broker.s.tls.caCert, 'utf8');
    assert.match(pem, /^-----BEGIN CERTIFICATE-----/);
    const config = readFileSync(broker.s.config, 'utf8');
    assert.match(config, /^listeners=SASL_SSL:\/\/127\.0\.0\.1:9192,CONTROLLER:\/\/127\.0\.0\.1:9193$/m);
    assert.match(config, /^authorizer\.class\.name=org\.apache\.kafka\.metadata\.authorizer\.StandardAuthorizer$/m);
    assert.match(config, /^allow\.everyone\.if\.no\.acl\.found=false$/m);
    const admin = secureAdmin(broker);
    await admin.connect();
    try {
      const any = { resourceType: 1, resourcePatternType: 1, operation: 1, permissionType: 1 }; // kafkajs's ANY
      const described = await admin.describeAcls(any as Parameters<typeof admin.describeAcls>[0]);
      const key = (e: { principal: string; operation: number; resourceType: number; resourceName: string; resourcePatternType: number }) =>
        `${e.principal} ${e.operation} ${e.resourceType} ${e.resourceName} ${e.resourcePatternType}`;
      const have = new Set(described.resources.flatMap((r) => r.acls.map((a) => key({ ...r, ...a }))));
      for (const e of aclEntries(serviceAcls(DEFAULT_PIPELINE_NAMES))) assert.ok(have.has(key(e)), `missing ACL: ${key(e)}`);
    } finally {
      await admin.disconnect();
    }
  });

  test('the pipeline through SASL_SSL: sensor credentials write raw, the enricher and the archiver carry it to S3', async () => {
    const prefix = `secure/${names.raw}`;
    const connections = 20;
    const sensor = settingsOf(broker, SENSOR);
    // The logger redacts the password (asserted at the end). A copy: pino's redaction leaves
    // "[redacted]" in the logged object's sasl.password when two of its paths overlap.
    logger.info({ kafka: structuredClone(sensor) }, 'the sensor client');
    const producer = await NativeProducer.connect(sensor, logger, { clientSuffix: 'sensor', idempotent: true });
    const codec = rawRecordCodec();
    try {
      await producer.send(
        names.raw,
        rawRecords('5ec0de00-0000-4000-8000-000000000001', connections).map((r) => ({ key: r.host_id, value: codec.encode(r) })),
      );
    } finally {
      await producer.disconnect();
    }

    const enricherConfig = path.join(dir, 'enricher.yaml');
    writeConfig(enricherConfig, broker, ENRICHER, [
      `topics: { raw: ${names.raw}, events: ${names.events}, dlq: ${names.dlq}, status: ${names.status} }`,
      `enricher: { group_id: ${names.enricherGroup}, metrics_port: 0, process_wait_ms: 500 }`,
    ]);
    // The archiver's password comes from the environment, as a Kubernetes Secret gives it.
    const archiverConfig = path.join(dir, 'archiver.yaml');
    writeConfig(
      archiverConfig,
      broker,
      ARCHIVER,
      [
        `topics: { raw: ${names.raw}, events: ${names.events}, dlq: ${names.dlq}, status: ${names.status} }`,
        `s3: { bucket: ${s3Settings.bucket}, prefix: ${prefix} }`,
        `archiver: { group_id: ${names.archiverGroup}, metrics_port: 0, idle_flush_s: 1, flush_span_s: 5 }`,
      ],
      (section) => section.replace(/, password: "[^"]*"/, ''),
    );
    const archiverPassword = settingsOf(broker, ARCHIVER).sasl!.password;
    const enricher = started('enricher', startNetmon(['enricher', '--config', enricherConfig], SECURE_CHILD_ENV));
    const archiver = started(
      'archiver',
      startNetmon(['archiver', '--config', archiverConfig], {
        ...SECURE_CHILD_ENV,
        NETMON_KAFKA_SASL_USERNAME: ARCHIVER,
        NETMON_KAFKA_SASL_PASSWORD: archiverPassword,
      }),
    );
    try {
      const events = await waitUntil(
        `${connections} events archived under ${prefix}`,
        async () => {
          for (const c of [enricher, archiver]) if (c.proc.exitCode !== null) throw new Error(`exited ${c.proc.exitCode}: ${c.stderr().slice(-2000)}`);
          const got = await archivedEvents(prefix);
          return got.length >= connections ? got : undefined;
        },
        60_000,
        500,
      );
      assert.equal(events.length, connections);
      assert.ok(events.every((e) => e.host.id === HOST.host_id && e.process.binary_path === '/usr/bin/curl' && e.network_event.dport === 443));
      assert.deepEqual(
        events.map((e) => e.network_event.cookie).sort(),
        Array.from({ length: connections }, (_, i) => 9001 + i),
      );
    } finally {
      assert.equal(await enricher.stop('SIGTERM'), 0, enricher.stderr().slice(-2000));
      assert.equal(await archiver.stop('SIGTERM'), 0, archiver.stderr().slice(-2000));
      const listed = await s3.send(new ListObjectsV2Command({ Bucket: s3Settings.bucket, Prefix: `${prefix}/` }));
      const keys = (listed.Contents ?? []).map((o) => ({ Key: o.Key! }));
      if (keys.length > 0) await s3.send(new DeleteObjectsCommand({ Bucket: s3Settings.bucket, Delete: { Objects: keys } }));
    }
    // The enricher made its changelog itself (Create on that one topic, nothing more).
    const admin = secureAdmin(broker);
    await admin.connect();
    try {
      assert.ok((await admin.listTopics()).includes(`${names.enricherGroup}.state`));
    } finally {
      await admin.disconnect();
    }
  });

  test("ACLs: the sensor's credentials can neither write nor read the events topic", async () => {
    const sensor = settingsOf(broker, SENSOR);
    const producer = await NativeProducer.connect(sensor, logger, { clientSuffix: 'sensor-acl', idempotent: true, deliveryTimeoutMs: 10_000 });
    try {
      await assert.rejects(producer.send(names.events, [{ value: Buffer.from('forged event') }]), /delivering: Broker: Topic authorization failed/);
      await producer.send(names.raw, [{ value: Buffer.from('raw is fine') }]); // what it may do, it can
    } finally {
      await producer.disconnect();
    }

    // Reading needs a group: the sensor has none...
    const consumeError = async (settings: KafkaSettings, groupId: string): Promise<Error> => {
      const consumer = await NativeConsumer.connect(settings, logger, { clientSuffix: 'sensor-acl', groupId });
      try {
        consumer.subscribe([names.events]);
        return await waitUntil(
          'an authorization error',
          async () => {
            try {
              const got = await consumer.consume(100);
              assert.equal(got.length, 0, 'the sensor read an event');
              return undefined;
            } catch (err) {
              return err as Error;
            }
          },
          20_000,
          0,
        );
      } finally {
        await consumer.disconnect();
      }
    };
    assert.match((await consumeError(sensor, `${names.archiverGroup}`)).message, /consuming: .*Group authorization failed/);
    // ...and given one for this test, the topic itself is refused.
    const probeGroup = `netmon-sec-sensor-probe-${names.raw.split('.').pop()}`;
    const admin = secureAdmin(broker);
    await admin.connect();
    const acl = { resourceType: 3, resourceName: probeGroup, resourcePatternType: 3, principal: `User:${SENSOR}`, host: '*', operation: 3, permissionType: 3 };
    try {
      await admin.createAcls({ acl: [acl] });
      assert.match((await consumeError(sensor, probeGroup)).message, /consuming: .*Topic authorization failed/);
    } finally {
      await admin.deleteAcls({ filters: [acl] });
      await admin.deleteGroups([probeGroup]).catch(() => {});
      await admin.disconnect();
    }
  });

  test('wrong password, unknown CA, plaintext on the TLS port: one line naming the broker and the cause, exit 1, no retry storm', async (t) => {
    // A CA the broker's certificate does not come from.
    const otherCa = path.join(dir, 'other-ca.crt');
    makeCa(otherCa, path.join(dir, 'other-ca.key'), 'Some other CA');
    // Each case: the broker as the services name it, and the cause.
    const cases: Array<{ name: string; edit: (section: string) => string; broker: string; cause: RegExp }> = [
      {
        name: 'wrong password',
        edit: (section) => section.replace(/password: "[^"]*"/, `password: "${WRONG_PASSWORD}"`),
        broker: 'sasl_ssl://127.0.0.1:9192',
        cause:
          /SASL authentication error: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 \(check kafka\.sasl/,
      },
      {
        name: 'unknown CA',
        edit: (section) => section.replace(/ca_file: "[^"]*"/, `ca_file: ${JSON.stringify(otherCa)}`),
        broker: 'sasl_ssl://127.0.0.1:9192',
        cause: /SSL handshake failed: certificate verify failed: .*CA.* \(check kafka\.ssl\.ca_file/,
      },
      {
        name: 'plaintext client',
        edit: (section) => section.replace(/ {2}ssl: .*\n/, '').replace(/ {2}sasl: .*\n/, ''),
        broker: '127.0.0.1:9192',
        cause: /the broker closed the connection at the Kafka handshake: a TLS listener\?/,
      },
    ];
    const mark = brokerLogMark(broker);
    const runs = cases.map((c, i) => {
      const config = path.join(dir, `bad-${i}.yaml`);
      writeConfig(
        config,
        broker,
        ENRICHER,
        [
          `topics: { raw: ${names.raw}, events: ${names.events}, dlq: ${names.dlq}, status: ${names.status} }`,
          `enricher: { group_id: ${names.enricherGroup}, metrics_port: 0 }`,
        ],
        c.edit,
      );
      const at = Date.now();
      // A one-shot client (tail) and a service (the enricher), at once.
      const tail = started(`tail (${c.name})`, startNetmon(['tail', '--topic', 'events', '--config', config], SECURE_CHILD_ENV));
      const enricher = started(`enricher (${c.name})`, startNetmon(['enricher', '--config', config], SECURE_CHILD_ENV));
      return {
        c,
        tail,
        enricher,
        tailDone: tail.exited.then((code) => ({ code, ms: Date.now() - at })),
        enricherDone: enricher.exited.then((code) => ({ code, ms: Date.now() - at })),
      };
    });
    for (const r of runs) {
      const t1 = await r.tailDone;
      assert.equal(t1.code, 1, `tail, ${r.c.name}: ${r.tail.stderr()}`);
      const lines = r.tail.stderr().trim().split('\n');
      assert.equal(lines.length, 1, `tail, ${r.c.name}: one line, got:\n${r.tail.stderr()}`);
      // a broker that answered and refused (credentials, certificates) is not asked whether it runs
      assert.match(
        lines[0]!,
        /^netmon tail: (cannot reach Kafka at 127\.0\.0\.1:9192: .*; is the broker running\?|Kafka at 127\.0\.0\.1:9192 refused the connection: .*)$/,
      );
      assert.match(lines[0]!, r.c.cause, `tail, ${r.c.name}`);
      assert.equal(r.tail.stdout(), '');

      const e = await r.enricherDone;
      assert.notEqual(e.code, 0, `enricher, ${r.c.name}`);
      assert.ok(e.ms < 30_000, `enricher, ${r.c.name}: exited after ${e.ms} ms`);
      // Its error: the first line that is not a JSON log line.
      const errorLines = r.enricher
        .stderr()
        .split('\n')
        .filter((l) => l.trim() && !l.startsWith('{'));
      assert.ok((errorLines[0] ?? '').includes(`netmon-enricher-state: connecting to ${r.c.broker}: `), `enricher, ${r.c.name}:\n${r.enricher.stderr()}`);
      assert.match(errorLines[0]!, r.c.cause, `enricher, ${r.c.name}`);
      t.diagnostic(`${r.c.name}: tail exit ${t1.code} after ${t1.ms} ms: ${lines[0]}`);
      t.diagnostic(`${r.c.name}: enricher exit ${e.code} after ${e.ms} ms: ${errorLines[0]}`);
    }
    // What the broker saw meanwhile: a handful of attempts per client, not ~20 a second.
    const failed = failedAuthentications(brokerLogSince(broker, mark));
    const sasl = [...failed].filter(([why]) => /invalid credentials/.test(why)).reduce((n, [, k]) => n + k, 0);
    const handshake = failed.get('SSL handshake failed') ?? 0;
    t.diagnostic(`the broker saw ${sasl} failed SCRAM logins and ${handshake} failed TLS handshakes`);
    assert.ok(sasl >= 1 && sasl <= 12, `failed SCRAM logins seen by the broker: ${sasl} (${JSON.stringify([...failed])})`);
    assert.ok(handshake <= 12, `failed TLS handshakes seen by the broker: ${handshake} (${JSON.stringify([...failed])})`);
  });

  test('the services end with one error line, no stack trace', () => {
    const stacks = children
      .filter(({ what }) => what.startsWith('enricher ('))
      .map(({ what, child }) => ({ what, frames: child.stderr().match(/^\s+at .*$/gm) ?? [] }));
    assert.deepEqual(
      stacks.filter((s) => s.frames.length > 0).map((s) => s.what),
      [],
    );
  });

  test('no password or private key in any output, log line or error', () => {
    const all = secrets(broker).concat(WRONG_PASSWORD);
    const outputs: Array<[string, string]> = [
      ['the test clients’ log', clientLog],
      ...children.flatMap(
        ({ what, child }): Array<[string, string]> => [
          [`${what} stdout`, child.stdout()],
          [`${what} stderr`, child.stderr()],
        ],
      ),
      ['stack up --secure', broker.upOutput],
      ['the broker log', brokerLogSince(broker, brokerMark)],
    ];
    assert.ok(children.length >= 8, 'there is output to look at');
    assert.match(clientLog, /"sasl":"\[redacted\]"/, 'the logged client settings');
    for (const [what, text] of outputs) {
      for (const secret of all) assert.ok(!text.includes(secret), `${what} holds a secret (${secret.slice(0, 3)}…)`);
    }
  });

  test('docs/security.md gives the kafka-acls.sh command of every ACL of the services', () => {
    const doc = readFileSync(path.join(REPO_ROOT, 'docs/security.md'), 'utf8').replace(/\\\n\s*/g, '');
    for (const rule of serviceAcls(DEFAULT_PIPELINE_NAMES)) assert.ok(doc.includes(aclCommand(rule)), `missing: ${aclCommand(rule)}`);
    assert.ok(doc.includes(`User:${ADMIN_USER}`) || doc.includes('super.users'));
  });
});
