import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { ConfigError, DEFAULT_BROKERS, DEFAULT_S3, loadConfig, parseConfig } from '../src';

const noEnv = {};

function expectError(yaml: string, key: string, expected: RegExp, env: NodeJS.ProcessEnv = noEnv) {
  assert.throws(
    () => parseConfig(yaml, '/etc/netmon/netmon.yaml', env),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err));
      assert.equal(err.key, key);
      assert.match(err.message, /^\/etc\/netmon\/netmon\.yaml: /);
      assert.match(err.message, expected);
      return true;
    },
  );
}

describe('config defaults', () => {
  test('no file: the local stack defaults', () => {
    const cfg = loadConfig(undefined, noEnv);
    assert.equal(cfg.source, '(defaults)');
    assert.deepEqual(cfg.kafka.brokers, DEFAULT_BROKERS);
    assert.equal(cfg.s3.endpoint, DEFAULT_S3.endpoint);
    assert.equal(cfg.s3.credentials?.accessKeyId, DEFAULT_S3.accessKeyId);
    assert.equal(cfg.topics.raw, 'netmon.raw.v1');
    assert.equal(cfg.topics.status, 'netmon.status.v1', "the sensors' heartbeats");
    assert.equal(cfg.sensor.attachMode, 'auto');
    assert.equal(cfg.enricher.exactlyOnce, true);
    assert.equal(cfg.archiver.format, 'json', "the spec's format unless told otherwise");
    assert.equal(cfg.processFilter, null);
  });

  test('topics.status: a Kafka topic name', () => {
    assert.equal(parseConfig('topics: { status: a.status }\n', 'f.yaml', noEnv).topics.status, 'a.status');
    assert.throws(() => parseConfig('topics: { status: "bad topic" }\n', 'f.yaml', noEnv), /topics\.status/);
    assert.throws(() => parseConfig('topics: { events: a.events, status: a.events }\n', 'f.yaml', noEnv), /topics\.status.*a topic of its own/);
  });

  test('archiver.format: json or parquet', () => {
    assert.equal(parseConfig('archiver: { format: parquet }\n', 'f.yaml', noEnv).archiver.format, 'parquet');
    assert.equal(parseConfig('archiver: { format: json }\n', 'f.yaml', noEnv).archiver.format, 'json');
  });

  test('a full file is read, process_filter as in the spec', () => {
    const cfg = parseConfig(
      `
kafka: { brokers: [k1:9092, k2:9093], sasl: { mechanism: scram-sha-512, username: u, password: p }, ssl: { ca_file: /ca.pem } }
topics: { raw: a.raw, events: a.events, dlq: a.dlq }
s3: { endpoint: "", bucket: my-archive, region: eu-west-1, sse: aws:kms, kms_key_id: k-1 }
sensor: { attach_mode: tracepoint, ring_buffer_bytes: 16777216 }
process_filter:
  deny_list: true
  uid: [0]
  euid: [0]
  auid: [1000]
  binary: { name: [curl, tail], path: [/usr/bin/uname], prefix: [/usr/local/bin/] }
`,
      'f.yaml',
      noEnv,
    );
    assert.deepEqual(cfg.kafka.brokers, ['k1:9092', 'k2:9093']);
    assert.deepEqual(cfg.kafka.sasl, { mechanism: 'scram-sha-512', username: 'u', password: 'p' });
    assert.equal(cfg.kafka.ssl ? cfg.kafka.ssl.caFile : undefined, '/ca.pem');
    assert.equal(cfg.s3.endpoint, '');
    assert.equal(cfg.s3.credentials, undefined, 'AWS: the default credential chain');
    assert.equal(cfg.s3.sse, 'aws:kms');
    assert.equal(cfg.sensor.ringBufferBytes, 16 << 20);
    assert.deepEqual(cfg.processFilter, {
      denyList: true,
      uid: [0],
      euid: [0],
      auid: [1000],
      binary: { name: ['curl', 'tail'], path: ['/usr/bin/uname'], prefix: ['/usr/local/bin/'] },
    });
  });

  test('an empty process_filter section filters on nothing (but exists)', () => {
    const cfg = parseConfig('process_filter: {}\n', 'f.yaml', noEnv);
    assert.deepEqual(cfg.processFilter?.binary.name, []);
    assert.equal(cfg.processFilter?.denyList, false);
  });

  test('environment overrides connection settings', () => {
    const cfg = parseConfig('kafka: { brokers: [a:1] }\n', 'f.yaml', {
      KAFKA_BROKERS: 'b:2, c:3',
      S3_ENDPOINT: 'http://s3.internal.example:9000',
      NETMON_S3_BUCKET: 'other-bucket',
      AWS_REGION: 'eu-central-1',
      NETMON_KAFKA_SASL_USERNAME: 'svc',
      NETMON_KAFKA_SASL_PASSWORD: 'pw',
      NETMON_KAFKA_SSL: 'true',
    });
    assert.deepEqual(cfg.kafka.brokers, ['b:2', 'c:3']);
    assert.equal(cfg.s3.endpoint, 'http://s3.internal.example:9000');
    assert.equal(cfg.s3.bucket, 'other-bucket');
    assert.equal(cfg.s3.region, 'eu-central-1');
    assert.deepEqual(cfg.kafka.sasl, { mechanism: 'plain', username: 'svc', password: 'pw' });
    assert.ok(cfg.kafka.ssl);
  });
});

describe('s3.ca_file: a PEM bundle of CAs for an https endpoint', () => {
  // A CA certificate (public; its key was thrown away): only its parsing matters here.
  const CA_PEM = `-----BEGIN CERTIFICATE-----
MIIBiTCCAS+gAwIBAgIULHuoZzvtC98qsAKQtMh8akthAbMwCgYIKoZIzj0EAwIw
EjEQMA4GA1UEAwwHdGVzdCBDQTAeFw0yNjExMjkyMzQwNDFaFw0yNjEyMjkyMzQw
NDFaMBIxEDAOBgNVBAMMB3Rlc3QgQ0EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNC
AARaVx0gqhU3iVvIy+2cAGm+8dMHcChVT/BwTtHBovik9G3JySBk9E2kBTqOt44l
ZYLw27tn2vG2IS072oqqGx+uo2MwYTAdBgNVHQ4EFgQU9bT468I/FsPmaIxsyxG7
E8grxHMwHwYDVR0jBBgwFoAU9bT468I/FsPmaIxsyxG7E8grxHMwDwYDVR0TAQH/
BAUwAwEB/zAOBgNVHQ8BAf8EBAMCAQYwCgYIKoZIzj0EAwIDSAAwRQIgSwde9RNE
rsuzObZI6XOegv7/X9NXBvw5AkGIkJEhJNMCIQD4xlNvzgcxTXGqFB8X4H4aU+bB
1DG9or33wnOFQNrlVA==
-----END CERTIFICATE-----
`;
  const dir = mkdtempSync(path.join(tmpdir(), 'netmon-ca-'));
  const file = (name: string, text: string) => {
    const f = path.join(dir, name);
    writeFileSync(f, text);
    return f;
  };
  const https = 's3: { endpoint: "https://127.0.0.1:9443", ca_file: ';

  test("not set: no caFile (Node's built-in CAs)", () => {
    assert.equal(loadConfig(undefined, noEnv).s3.caFile, undefined);
  });

  test('a readable bundle of certificates is kept as its path', () => {
    const ca = file('ca.pem', `# the local CA\n${CA_PEM}${CA_PEM}`);
    const cfg = parseConfig(`${https}${ca} }\n`, 'f.yaml', noEnv);
    assert.equal(cfg.s3.caFile, ca);
    assert.equal(cfg.s3.endpoint, 'https://127.0.0.1:9443');
    assert.equal(cfg.s3.credentials?.accessKeyId, DEFAULT_S3.accessKeyId, 'loopback over https: the local stack too');
    // the endpoint from the environment counts
    const viaEnv = parseConfig(`s3: { ca_file: ${ca} }\n`, 'f.yaml', { NETMON_S3_ENDPOINT: 'https://s3.internal.example' });
    assert.equal(viaEnv.s3.caFile, ca);
  });

  test('a missing file, a file without a certificate, a broken certificate, a plain-http endpoint: named errors', () => {
    expectError(
      `${https}/nonexistent/ca.pem }`,
      's3.ca_file',
      /expected a readable PEM file of CA certificates, found string "\/nonexistent\/ca\.pem" \(ENOENT\)/,
    );
    const text = file('not-a-cert.pem', 'hello\n');
    expectError(`${https}${text} }`, 's3.ca_file', /found string ".*not-a-cert\.pem" \(no PEM certificate/);
    const broken = file('broken.pem', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    expectError(`${https}${broken} }`, 's3.ca_file', /\(certificate 1 does not parse: /);
    const ca = file('ca2.pem', CA_PEM);
    expectError(
      `s3: { endpoint: "http://127.0.0.1:9000", ca_file: ${ca} }`,
      's3.ca_file',
      /only with an https:\/\/ endpoint \(s3\.endpoint is http:\/\/127\.0\.0\.1:9000\)/,
    );
    expectError(`s3: { ca_file: ${ca} }`, 's3.ca_file', /only with an https:\/\/ endpoint/);
    expectError('s3: { ca_file: [a, b] }', 's3.ca_file', /expected a string, found a list/);
  });
});

describe('config errors name the file, the key, what was expected and found', () => {
  const cases: [string, string, RegExp][] = [
    ['kafka: { brokers: [nohostport] }', 'kafka.brokers[0]', /expected host:port strings, found string "nohostport"/],
    ['kafka: { compression: snappy }', 'kafka.compression', /one of lz4, gzip, none, found string "snappy"/],
    ['kafka: { brokers: 9092 }', 'kafka.brokers', /expected a list of host:port strings, found number 9092/],
    ['kafka: { sasl: { mechanism: gssapi, username: u } }', 'kafka.sasl.mechanism', /one of plain, scram-sha-256, scram-sha-512/],
    ['kafka: { sasl: { mechanism: plain } }', 'kafka.sasl.username', /a user name/],
    ['kafak: {}', 'kafak', /no such key/],
    ['kafka: { brokerz: [a:1] }', 'kafka.brokerz', /no such key/],
    ['topics: { raw: "bad topic" }', 'topics.raw', /Kafka topic name/],
    ['s3: { bucket: Bad_Bucket }', 's3.bucket', /an S3 bucket name, found string "Bad_Bucket"/],
    ['s3: { endpoint: ftp://x }', 's3.endpoint', /http\(s\) URL/],
    ['s3: { kms_key_id: k }', 's3.kms_key_id', /only with sse: aws:kms/],
    ['s3: { sse: rot13 }', 's3.sse', /one of , AES256, aws:kms/],
    ['sensor: { attach_mode: uprobe }', 'sensor.attach_mode', /one of auto, fentry, kprobe, tracepoint, found string "uprobe"/],
    ['sensor: { ring_buffer_bytes: 1000000 }', 'sensor.ring_buffer_bytes', /power of two/],
    ['sensor: { ring_buffer_bytes: 12.5 }', 'sensor.ring_buffer_bytes', /an integer from 4096/],
    ['sensor: { max_args_bytes: 100 }', 'sensor.max_args_bytes', /an integer from 256 to 65536/],
    ['sensor: { max_args_bytes: 100000 }', 'sensor.max_args_bytes', /an integer from 256 to 65536/],
    ['enricher: { exactly_once: yes-please }', 'enricher.exactly_once', /true or false/],
    ['archiver: { flush_records: 0 }', 'archiver.flush_records', /an integer from 1/],
    ['archiver: { format: orc }', 'archiver.format', /expected one of json, parquet, found string "orc"/],
    ['archiver: { format: true }', 'archiver.format', /expected one of json, parquet, found boolean true/],
    ['log: { level: loud }', 'log.level', /one of trace, debug/],
    ['process_filter: { uid: [-1] }', 'process_filter.uid[0]', /uids/],
    ['process_filter: { binary: { path: [relative/path] } }', 'process_filter.binary.path[0]', /absolute paths/],
    ['process_filter: { binary: { name: curl } }', 'process_filter.binary.name', /a list of file names, found string "curl"/],
    ['process_filter: { deny_list: 1 }', 'process_filter.deny_list', /true or false/],
    ['process_filter: [curl]', 'process_filter', /a mapping/],
    ['- a\n- b', '(document)', /a mapping at the top level/],
    ['kafka: {', '(document)', /valid YAML/],
  ];
  for (const [yaml, key, expected] of cases) test(`${key}: ${yaml.replace(/\n/g, ' ')}`, () => expectError(yaml, key, expected));

  test('a bad environment value names the variable', () => {
    assert.throws(() => parseConfig('', 'f.yaml', { KAFKA_BROKERS: 'nope' }), /^ConfigError|environment: KAFKA_BROKERS: expected a comma-separated list/);
    assert.throws(() => parseConfig('', 'f.yaml', { S3_ENDPOINT: 'x' }), /environment: S3_ENDPOINT: expected an http\(s\) URL/);
  });

  test('a missing file is named', () => {
    assert.throws(() => loadConfig('/nonexistent/netmon.yaml', noEnv), /\/nonexistent\/netmon\.yaml: \(file\): expected a readable YAML file, found ENOENT/);
  });

  test('NETMON_CONFIG points at the file', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'netmon-config-'));
    const file = path.join(dir, 'netmon.yaml');
    writeFileSync(file, 'host: { id: abc, hostname: h1 }\n');
    assert.deepEqual(loadConfig(undefined, { NETMON_CONFIG: file }).host, { id: 'abc', hostname: 'h1' });
  });
});

test('docs/netmon.example.yaml parses and states the defaults, but pins the probes', () => {
  const example = path.resolve(__dirname, '../../../../docs/netmon.example.yaml');
  const { source: _a, ...fromExample } = loadConfig(example, noEnv);
  const { source: _b, ...defaults } = loadConfig(undefined, noEnv);
  // Deployed sensors pin (no blind spot across restarts); ad-hoc runs
  // (netmon run, tests) do not, or their probes would outlive them.
  assert.equal(fromExample.sensor.pinDir, '/sys/fs/bpf/netmon');
  assert.equal(defaults.sensor.pinDir, '');
  assert.deepEqual({ ...fromExample, sensor: { ...fromExample.sensor, pinDir: '' } }, defaults);
});
