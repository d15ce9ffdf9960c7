// S3 over HTTPS (`netmon stack up --secure`: S3Proxy's secure endpoint on
// 127.0.0.1:9443 with a key store signed by a local CA) and s3.ca_file:
// - the real `netmon archiver`, trusting that CA through s3.ca_file, archives
//   events over HTTPS with s3.sse: AES256, and `netmon query` reads them back;
// - the server received `x-amz-server-side-encryption: AES256` on every PUT the
//   archiver made, read FROM THE SERVER: HeadObject's ServerSideEncryption when
//   S3Proxy returns it (2.9.0 does not: it keeps no SSE metadata), else its
//   request log (S3ProxyHandler's header lines at TRACE, see
//   cli/src/stack/s3-secure.ts); a PUT without SSE shows no such header, so the
//   log tells the two apart;
// - without s3.ca_file (an unknown CA) `netmon query` exits non-zero with one
//   line naming the endpoint and the certificate, and the archiver logs that
//   line, keeps its back-off and gets no request through; plain http to the
//   https port and https to the plain port fail as clearly;
// - the request log holds no credentials.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DeleteObjectsCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import {
  type LoggedRequest,
  SECURE_S3_ENDPOINT,
  type SecureS3Layout,
  requestLogEntries,
  secureS3Layout,
  secureS3Settings,
  stackLayout,
  stackStatus,
} from '@netmon/cli';
import { DEFAULT_CONNECTION_FACTS, DEFAULT_S3, type NetworkEvent, createS3Client, networkEventCodec } from '@netmon/common';
import { type Child, createTopic, deleteTopics, startNetmon, testKafka, waitUntil } from '../src';

const id = randomUUID().slice(0, 8);
const dir = mkdtempSync(path.join(tmpdir(), 'netmon-s3-https-'));
const kafka = testKafka();
const BUCKET = DEFAULT_S3.bucket;
const EVENTS = 12;
/** The archiver's objects, and the canary PUT without SSE. */
const PREFIX = `https-it/${id}`;
/** Where the archiver without s3.ca_file would write: nothing may arrive. */
const NOCA_PREFIX = `https-it/${id}-noca`;

/** Children must take their settings from their config file alone. */
const CHILD_ENV: NodeJS.ProcessEnv = {
  S3_ENDPOINT: undefined,
  NETMON_S3_ENDPOINT: undefined,
  NETMON_S3_BUCKET: undefined,
  NETMON_CONFIG: undefined,
  NETMON_CACHE_DIR: path.join(dir, 'cache'),
};

let s: SecureS3Layout;
let s3: S3Client;
let upOutput = '';
let stopAfter: 'both' | 'none' = 'none';
let topics: { events: string; dlq: string; status: string };
const children: Child[] = [];

function writeYaml(name: string, lines: string[]): string {
  const file = path.join(dir, name);
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

function archiverYaml(name: string, s3Line: string, group: string): string {
  return writeYaml(name, [
    `topics: { events: ${topics.events}, dlq: ${topics.dlq}, status: ${topics.status} }`,
    s3Line,
    `archiver: { group_id: ${group}, metrics_port: 0, idle_flush_s: 1, flush_span_s: 5 }`,
  ]);
}

function event(i: number): NetworkEvent {
  return {
    type: 'NetworkEvent',
    process: {
      pid: 4242,
      tid: 4242,
      ppid: 1,
      uid: 1000,
      euid: 1000,
      auid: 1000,
      cap_inheritable: 0,
      cap_permitted: 0,
      cap_effective: 0,
      secureexec: '',
      filename: 'curl',
      binary_path: '/usr/bin/curl',
      args: 'https://example.org',
      container_id: '',
    },
    network_event: { type: 'TcpConnectionEstablish', saddr: '10.0.0.1', daddr: '93.184.216.34', sport: 40000 + i, dport: 443, cookie: 7000 + i },
    // two hours, two hosts (and partitions): several objects, each with its manifest
    timestamp: `2026-11-28T1${i % 2}:05:51.282Z`,
    host: { hostname: 'https-host', id: `https-${id}-${i % 2}` },
    source: { run_id: `00000000-0000-4000-8000-${id}0000`, seq: i },
    connection: { ...DEFAULT_CONNECTION_FACTS },
    process_key: '',
  };
}

async function keysUnder(prefix: string): Promise<string[]> {
  const listed = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `${prefix}/` }));
  return (listed.Contents ?? []).map((o) => o.Key!);
}

/** The requests the server logged for keys under `prefix`. */
function loggedUnder(prefix: string): LoggedRequest[] {
  const start = `/${BUCKET}/${prefix}/`;
  return requestLogEntries(s).filter((r) => decodeURIComponent(r.path.split('?')[0]!).startsWith(start));
}

/** `netmon query` as a child: its exit code and output. */
async function query(config: string, sql = 'SELECT count(*) AS n FROM network_events'): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = startNetmon(['query', '--json', sql, '--config', config], CHILD_ENV);
  children.push(child);
  const code = await child.exited;
  return { code, stdout: child.stdout(), stderr: child.stderr() };
}

before(async () => {
  const before = await stackStatus({ secure: true });
  const up = startNetmon(['stack', 'up', '--secure']);
  const code = await up.exited;
  upOutput = `${up.stdout()}${up.stderr()}`;
  if (code !== 0) throw new Error(`netmon stack up --secure exited with ${code}:\n${upOutput}`);
  // Stop again only what this test started (`stack down --secure` stops both).
  if (!before.secure?.running && !before.secureS3?.running) stopAfter = 'both';
  s = secureS3Layout(stackLayout());
  s3 = createS3Client(secureS3Settings(s));
  topics = {
    events: await createTopic(kafka, `netmon.https.events.${id}`),
    dlq: await createTopic(kafka, `netmon.https.dlq.${id}`, 1),
    status: await createTopic(kafka, `netmon.https.status.${id}`, 1),
  };
  const producer = kafka.producer({ idempotent: true });
  await producer.connect();
  const codec = networkEventCodec();
  await producer.send({
    topic: topics.events,
    acks: -1,
    messages: Array.from({ length: EVENTS }, (_, i) => ({ key: `https-${id}-${i % 2}`, partition: i % 2, value: codec.encode(event(i)) })),
  });
  await producer.disconnect();
});

after(async () => {
  for (const c of children) await c.stop('SIGKILL');
  if (topics) await deleteTopics(kafka, Object.values(topics));
  if (s3) {
    for (const prefix of [PREFIX, NOCA_PREFIX]) {
      const keys = await keysUnder(prefix).catch(() => []);
      if (keys.length > 0) await s3.send(new DeleteObjectsCommand({ Bucket: BUCKET, Delete: { Objects: keys.map((Key) => ({ Key })) } }));
    }
    s3.destroy();
  }
  if (stopAfter === 'both') {
    const down = startNetmon(['stack', 'down', '--secure']);
    const c = await down.exited;
    if (c !== 0) throw new Error(`netmon stack down --secure exited with ${c}: ${down.stdout()}${down.stderr()}`);
  }
  rmSync(dir, { recursive: true, force: true });
});

describe('S3 over HTTPS: the secure endpoint, s3.ca_file, SSE seen by the server', () => {
  test('stack up --secure: HTTPS only on 9443, a server certificate for 127.0.0.1 signed by the local CA, secrets 0600', () => {
    assert.match(upOutput, /s3-secure S3Proxy .* over HTTPS: running, pid \d+, answering/);
    assert.match(upOutput, /address https:\/\/127\.0\.0\.1:9443/);
    assert.equal(s.address, SECURE_S3_ENDPOINT);
    const props = readFileSync(s.config, 'utf8');
    assert.match(props, /^s3proxy\.secure-endpoint=https:\/\/127\.0\.0\.1:9443$/m);
    assert.doesNotMatch(props, /^s3proxy\.endpoint=/m, 'no plain listener');
    const ca = new X509Certificate(readFileSync(s.tls.caCert));
    const cert = new X509Certificate(readFileSync(s.tls.serverCert));
    assert.ok(ca.ca, 'a CA certificate');
    assert.ok(cert.checkIssued(ca) && cert.verify(ca.publicKey), 'the server certificate is signed by the local CA');
    assert.match(cert.subjectAltName ?? '', /IP Address:127\.0\.0\.1/);
    for (const f of [s.config, s.tls.keystore, s.tls.keystorePassword, s.tls.caKey, s.tls.serverKey]) {
      assert.equal(statSync(f).mode & 0o777, 0o600, `${f} is owner-only`);
    }
  });

  test('the archiver writes over HTTPS with s3.sse AES256: every PUT reached the server with x-amz-server-side-encryption', async (t) => {
    const config = archiverYaml(
      'archiver.yaml',
      `s3: { endpoint: "${s.address}", ca_file: "${s.tls.caCert}", bucket: ${BUCKET}, prefix: ${PREFIX}, sse: AES256 }`,
      `netmon-https-archiver-${id}`,
    );
    const archiver = startNetmon(['archiver', '--config', config], CHILD_ENV);
    children.push(archiver);
    const dataKeys = await waitUntil(
      `${EVENTS} events archived under ${PREFIX}`,
      async () => {
        if (archiver.proc.exitCode !== null) throw new Error(`the archiver exited ${archiver.proc.exitCode}: ${archiver.stderr().slice(-2000)}`);
        if (!(await keysUnder(PREFIX)).some((k) => k.endsWith('.json.gz'))) return undefined;
        const out = await query(config);
        if (out.code !== 0 || out.stdout.trim() !== JSON.stringify({ n: EVENTS })) return undefined;
        // Listed again: an object that landed between the first listing and the query counts.
        return (await keysUnder(PREFIX)).filter((k) => k.endsWith('.json.gz'));
      },
      40_000,
      500,
    );
    await archiver.stop('SIGTERM');
    assert.doesNotMatch(archiver.stderr(), /"level":(40|50|60)/, 'no warning or error from the archiver');

    // A PUT without SSE, the control: the server's log must tell it apart.
    const canary = `${PREFIX}/canary-without-sse`;
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: canary, Body: 'no sse' }));

    const all = await keysUnder(PREFIX);
    // The requests that create an object and carry its SSE: a PUT, or a multipart
    // upload's start (POST ?uploads; its parts and its completion carry none, as on AWS).
    const creates = (r: LoggedRequest) => (r.method === 'PUT' && !/[?&]partNumber=/.test(r.path)) || (r.method === 'POST' && /[?&]uploads(=|&|$)/.test(r.path));
    const puts = await waitUntil('the PUTs in the request log', () => {
      const p = loggedUnder(PREFIX).filter(creates);
      return p.some((r) => r.path.startsWith(`/${BUCKET}/${canary}`)) ? p : undefined;
    });
    const putKey = (r: LoggedRequest) => decodeURIComponent(r.path.split('?')[0]!).slice(BUCKET.length + 2);
    const archiverPuts = puts.filter((r) => putKey(r) !== canary);
    // Every object the archiver left (data and manifests) came in a logged PUT, and every one of its PUTs carried the header.
    for (const key of all.filter((k) => k !== canary))
      assert.ok(
        archiverPuts.some((r) => putKey(r) === key),
        `no PUT of ${key} in the server's request log`,
      );
    assert.ok(dataKeys.length >= 2, `objects per partition and hour (${dataKeys.length})`);
    assert.ok(archiverPuts.length >= dataKeys.length * 2, `PUTs of the data objects and their manifests (${archiverPuts.length})`);
    for (const r of archiverPuts) assert.deepEqual(r.headers['x-amz-server-side-encryption'], ['AES256'], `${r.method} ${r.path}`);
    const canaryPut = puts.find((r) => putKey(r) === canary)!;
    assert.equal(canaryPut.headers['x-amz-server-side-encryption'], undefined, 'the control PUT carried no SSE header');
    assert.ok(canaryPut.headers['content-length'] || canaryPut.headers['x-amz-decoded-content-length'], 'the log has the PUT headers');

    // HeadObject: the server's own word, when it keeps SSE (S3Proxy 2.9.0's filesystem store does not).
    const heads = await Promise.all(dataKeys.map((Key) => s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key }))));
    const reported = heads.map((h) => h.ServerSideEncryption).filter((v) => v !== undefined);
    if (reported.length > 0)
      assert.deepEqual(
        reported,
        heads.map(() => 'AES256'),
      );
    t.diagnostic(
      `${archiverPuts.length} PUTs by the archiver, each logged by the server with x-amz-server-side-encryption: AES256; HeadObject reports SSE for ${reported.length} of ${heads.length} objects`,
    );
  });

  test('without s3.ca_file (an unknown CA): netmon query fails in one line naming the endpoint and the certificate; the archiver exits in one line too and gets nothing through', async (t) => {
    const config = archiverYaml(
      'no-ca.yaml',
      `s3: { endpoint: "${s.address}", bucket: ${BUCKET}, prefix: ${NOCA_PREFIX}, sse: AES256 }`,
      `netmon-https-noca-${id}`,
    );
    const out = await query(config);
    assert.notEqual(out.code, 0);
    const lines = out.stderr.trim().split('\n');
    assert.equal(lines.length, 1, out.stderr);
    t.diagnostic(lines[0]!);
    assert.match(
      lines[0]!,
      /^netmon query: .*S3 at https:\/\/127\.0\.0\.1:9443: TLS: the server's certificate does not verify against Node's built-in CAs \(SELF_SIGNED_CERT_IN_CHAIN\); for a private CA, set s3\.ca_file/,
    );

    // The archiver checks S3 takes its writes before it joins its group: it exits with one line.
    const archiver = startNetmon(['archiver', '--config', config], CHILD_ENV);
    children.push(archiver);
    assert.equal(await archiver.exited, 1, archiver.stderr().slice(-2000));
    const said = archiver
      .stderr()
      .trim()
      .split('\n')
      .filter((l) => !l.startsWith('{'));
    assert.equal(said.length, 1, archiver.stderr().slice(-2000));
    t.diagnostic(said[0]!);
    assert.match(
      said[0]!,
      /^netmon archiver: S3 at https:\/\/127\.0\.0\.1:9443: TLS: the server's certificate does not verify .*\(SELF_SIGNED_CERT_IN_CHAIN\); for a private CA, set s3\.ca_file/,
    );
    assert.deepEqual(loggedUnder(NOCA_PREFIX), [], 'no request got through the failed handshakes');
    assert.deepEqual(await keysUnder(NOCA_PREFIX), []);
  });

  test('plain http to the https port, https to the plain port: one line each, with the cause', async (t) => {
    const plain = await query(writeYaml('plain-to-tls.yaml', [`s3: { endpoint: "http://127.0.0.1:${s.port}", bucket: ${BUCKET}, prefix: ${PREFIX} }`]));
    assert.notEqual(plain.code, 0);
    assert.equal(plain.stderr.trim().split('\n').length, 1, plain.stderr);
    t.diagnostic(plain.stderr.trim());
    assert.match(plain.stderr, /S3 at http:\/\/127\.0\.0\.1:9443: the answer is not HTTP \(HPE_[A-Z_]+\): a TLS port\?/);

    const tlsToPlain = await query(
      writeYaml('tls-to-plain.yaml', [
        `s3: { endpoint: "https://127.0.0.1:${new URL(DEFAULT_S3.endpoint).port}", ca_file: "${s.tls.caCert}", bucket: ${BUCKET}, prefix: ${PREFIX} }`,
      ]),
    );
    assert.notEqual(tlsToPlain.code, 0);
    assert.equal(tlsToPlain.stderr.trim().split('\n').length, 1, tlsToPlain.stderr);
    t.diagnostic(tlsToPlain.stderr.trim());
    assert.match(tlsToPlain.stderr, /S3 at https:\/\/127\.0\.0\.1:9000: TLS handshake failed \([A-Z_]+\): the server does not speak TLS on this port/);
  });

  test('the request log and the server log hold no credentials', () => {
    const logs = [readFileSync(s.requestLog, 'utf8'), readFileSync(s.log, 'utf8')].join('\n');
    const password = readFileSync(s.tls.keystorePassword, 'utf8').trim();
    for (const secret of [password, DEFAULT_S3.secretAccessKey]) assert.ok(!logs.includes(secret), 'a secret in the logs');
    const auth = loggedUnder(PREFIX).flatMap((r) => r.headers.authorization ?? []);
    assert.ok(auth.length > 0);
    assert.ok(
      auth.every((v) => v === '<redacted>'),
      'Authorization headers are redacted',
    );
  });
});
