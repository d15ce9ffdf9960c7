// netmon.yaml: parsed and validated once at start-up. Every error names the
// file, the key, what was expected and what was found (ConfigError); unknown
// keys are errors too, so a typo never silently falls back to a default.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { DEFAULT_BROKERS, DEFAULT_MAX_ARGS_BYTES, DEFAULT_REDACT_ARGS, DEFAULT_S3, DEFAULT_TOPICS } from './defaults';
import { ConfigError } from './errors';
import { validateTopicName } from './topics';

export type AttachMode = 'auto' | 'fentry' | 'kprobe' | 'tracepoint';
export type SaslMechanism = 'plain' | 'scram-sha-256' | 'scram-sha-512';
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

export type Compression = 'gzip' | 'lz4' | 'none';

/** How the archiver writes its objects: gzip NDJSON (the spec's format) or Parquet (columnar, for Athena's bill). */
export type ArchiveFormat = 'json' | 'parquet';
export const ARCHIVE_FORMATS: readonly ArchiveFormat[] = ['json', 'parquet'];

export interface KafkaSettings {
  brokers: string[];
  clientId: string;
  /** Codec of what the services produce. */
  compression: Compression;
  /** false, or TLS options (file paths are read at connect time). */
  ssl: false | { caFile?: string; certFile?: string; keyFile?: string; rejectUnauthorized: boolean };
  sasl?: { mechanism: SaslMechanism; username: string; password: string };
}

/**
 * One redaction rule of sensor.redact_args (regular expressions, matched
 * case-insensitively): `arg` replaces its named group `secret` (or its whole
 * match) in any argument; `flag` replaces the argument after one it matches
 * whole; `binary` limits the rule to programs whose file name it matches.
 */
export interface RedactRule {
  arg?: string;
  flag?: string;
  binary?: string;
}

export interface S3Settings {
  /** Empty for AWS itself. */
  endpoint: string;
  region: string;
  bucket: string;
  prefix: string;
  forcePathStyle: boolean;
  /** Static credentials for the local stack; otherwise the AWS default chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  sse?: 'AES256' | 'aws:kms';
  kmsKeyId?: string;
  storageClass?: string;
  /**
   * s3.ca_file: a PEM bundle of the CAs that sign the server's certificate (a
   * private CA); the client trusts these instead of Node's built-in roots.
   */
  caFile?: string;
}

export interface ProcessFilter {
  denyList: boolean;
  uid: number[];
  euid: number[];
  auid: number[];
  binary: { name: string[]; path: string[]; prefix: string[] };
}

export interface NetmonConfig {
  /** Where the settings came from, for messages. */
  source: string;
  host: { id: string; hostname: string };
  log: { level: LogLevel };
  kafka: KafkaSettings;
  /** status: the sensors' heartbeats, written by the enricher, archived under s3.prefix + "-status". */
  topics: { raw: string; events: string; dlq: string; status: string; partitions: number };
  s3: S3Settings;
  sensor: {
    attachMode: AttachMode;
    ringBufferBytes: number;
    /** args kept per process, UTF-8 bytes, "…" included when cut */
    maxArgsBytes: number;
    /** secrets replaced in args before anything leaves the host ([] : none) */
    redactArgs: RedactRule[];
    spoolDir: string;
    spoolMaxBytes: number;
    statusIntervalS: number;
    metricsPort: number;
    /** /readyz fails once records have gone to the spool (Kafka slow or away) for this long */
    notReadyAfterSpoolingS: number;
    /** bpffs directory where the probes stay pinned between sensor processes ('' : not pinned) */
    pinDir: string;
  };
  enricher: { groupId: string; exactlyOnce: boolean; processWaitMs: number; metricsPort: number };
  archiver: {
    groupId: string;
    /** json (default): gzip NDJSON under s3.prefix; parquet: Parquet under s3.prefix + "-parquet". */
    format: ArchiveFormat;
    flushRecords: number;
    flushBytes: number;
    flushSpanS: number;
    idleFlushS: number;
    metricsPort: number;
  };
  /** null: no process_filter section, every event passes. */
  processFilter: ProcessFilter | null;
}

type Obj = Record<string, unknown>;

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return `a list (${JSON.stringify(value).slice(0, 60)})`;
  if (typeof value === 'object') return 'a mapping';
  return `${typeof value} ${JSON.stringify(value)}`;
}

/** Reads one mapping of the YAML document, remembering where it is. */
class Section {
  private readonly seen = new Set<string>();
  constructor(
    private readonly file: string,
    private readonly path: string,
    private readonly obj: Obj,
  ) {}

  private key(name: string): string {
    return this.path ? `${this.path}.${name}` : name;
  }

  fail(name: string, expected: string, found: unknown): never {
    throw new ConfigError(this.file, this.key(name), expected, describe(found));
  }

  /** As fail, for a value of the right type that is wrong for a reason of its own (a file that cannot be read). */
  failBecause(name: string, expected: string, found: unknown, why: string): never {
    throw new ConfigError(this.file, this.key(name), expected, `${describe(found)} (${why})`);
  }

  private get(name: string): unknown {
    this.seen.add(name);
    return this.obj[name];
  }

  has(name: string): boolean {
    return this.obj[name] !== undefined && this.obj[name] !== null;
  }

  section(name: string): Section {
    const value = this.get(name);
    if (value === undefined || value === null) return new Section(this.file, this.key(name), {});
    if (typeof value !== 'object' || Array.isArray(value)) this.fail(name, 'a mapping', value);
    return new Section(this.file, this.key(name), value as Obj);
  }

  string(name: string, fallback: string, pattern?: { re: RegExp; what: string }): string {
    const value = this.get(name);
    if (value === undefined || value === null) return fallback;
    if (typeof value !== 'string') this.fail(name, pattern?.what ?? 'a string', value);
    if (pattern && !pattern.re.test(value)) this.fail(name, pattern.what, value);
    return value;
  }

  oneOf<T extends string>(name: string, choices: readonly T[], fallback: T): T {
    const value = this.get(name);
    if (value === undefined || value === null) return fallback;
    if (typeof value !== 'string' || !choices.includes(value as T)) this.fail(name, `one of ${choices.join(', ')}`, value);
    return value as T;
  }

  int(name: string, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
    const value = this.get(name);
    if (value === undefined || value === null) return fallback;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      this.fail(name, `an integer from ${min} to ${max}`, value);
    }
    return value;
  }

  bool(name: string, fallback: boolean): boolean {
    const value = this.get(name);
    if (value === undefined || value === null) return fallback;
    if (typeof value !== 'boolean') this.fail(name, 'true or false', value);
    return value;
  }

  list<T>(name: string, item: (v: unknown) => v is T, what: string): T[] {
    const value = this.get(name);
    if (value === undefined || value === null) return [];
    if (!Array.isArray(value)) this.fail(name, `a list of ${what}`, value);
    value.forEach((v, i) => {
      if (!item(v)) this.fail(`${name}[${i}]`, what, v);
    });
    return value as T[];
  }

  /** Call last: any key not read is unknown. */
  done(): void {
    for (const name of Object.keys(this.obj)) {
      if (!this.seen.has(name)) throw new ConfigError(this.file, this.key(name), 'no such key (a typo?)', describe(this.obj[name]));
    }
  }
}

const isString = (v: unknown): v is string => typeof v === 'string' && v.length > 0;
const isRegex = (v: unknown): v is string => {
  if (typeof v !== 'string' || v.length === 0) return false;
  try {
    new RegExp(v, 'dgi');
    return true;
  } catch {
    return false;
  }
};
const isRedactRule = (v: unknown): v is RedactRule => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const r = v as Record<string, unknown>;
  const keys = Object.keys(r);
  if (!keys.every((k) => k === 'arg' || k === 'flag' || k === 'binary')) return false;
  if ((r.arg === undefined) === (r.flag === undefined)) return false; // exactly one of them
  return [r.arg, r.flag, r.binary].every((x) => x === undefined || isRegex(x));
};
const isId = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
const HOST_PORT = { re: /^[^\s:]+:\d{1,5}$/, what: 'host:port' };
const LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

/** Parses the config document (already read from `source`) and the environment. */
export function parseConfig(text: string, source: string, env: NodeJS.ProcessEnv = process.env): NetmonConfig {
  let doc: unknown;
  try {
    doc = text.trim() === '' ? {} : parseYaml(text);
  } catch (err) {
    throw new ConfigError(source, '(document)', 'valid YAML', (err as Error).message.split('\n')[0] ?? 'unreadable text');
  }
  if (doc === null || doc === undefined) doc = {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError(source, '(document)', 'a mapping at the top level', describe(doc));
  const root = new Section(source, '', doc as Obj);

  const host = root.section('host');
  const hostCfg = { id: host.string('id', ''), hostname: host.string('hostname', '') };
  host.done();

  const log = root.section('log');
  const logCfg = { level: log.oneOf('level', LEVELS, 'info') };
  log.done();

  const kafka = readKafka(root.section('kafka'), env);
  const topics = root.section('topics');
  const topicCfg = {
    raw: topicName(topics, 'raw', DEFAULT_TOPICS.raw),
    events: topicName(topics, 'events', DEFAULT_TOPICS.events),
    dlq: topicName(topics, 'dlq', DEFAULT_TOPICS.dlq),
    status: topicName(topics, 'status', DEFAULT_TOPICS.status),
    partitions: topics.int('partitions', 4, 1, 10000),
  };
  // The archiver tells its topics apart by name: the status records need one of their own.
  if ([topicCfg.raw, topicCfg.events, topicCfg.dlq].includes(topicCfg.status)) {
    topics.fail('status', 'a topic of its own (not topics.raw, events or dlq)', topicCfg.status);
  }
  topics.done();

  const s3 = readS3(root.section('s3'), env);

  const sensor = root.section('sensor');
  const sensorCfg = {
    attachMode: sensor.oneOf<AttachMode>('attach_mode', ['auto', 'fentry', 'kprobe', 'tracepoint'], 'auto'),
    ringBufferBytes: sensor.int('ring_buffer_bytes', 8 << 20, 4096, 1 << 30),
    maxArgsBytes: sensor.int('max_args_bytes', DEFAULT_MAX_ARGS_BYTES, 256, 65536),
    redactArgs: sensor.has('redact_args')
      ? sensor.list('redact_args', isRedactRule, '{ arg: REGEX } or { flag: REGEX }, with an optional binary: REGEX (valid regular expressions)')
      : DEFAULT_REDACT_ARGS,
    spoolDir: sensor.string('spool_dir', '/var/lib/netmon/spool'),
    spoolMaxBytes: sensor.int('spool_max_bytes', 1 << 30, 0),
    statusIntervalS: sensor.int('status_interval_s', 10, 1, 3600),
    metricsPort: sensor.int('metrics_port', 9464, 0, 65535),
    notReadyAfterSpoolingS: sensor.int('not_ready_after_spooling_s', 120, 1, 86_400),
    pinDir: sensor.string('pin_dir', ''),
  };
  if ((sensorCfg.ringBufferBytes & (sensorCfg.ringBufferBytes - 1)) !== 0) {
    sensor.fail('ring_buffer_bytes', 'a power of two (the kernel requires it)', sensorCfg.ringBufferBytes);
  }
  sensor.done();

  const enricher = root.section('enricher');
  const enricherCfg = {
    groupId: enricher.string('group_id', 'netmon-enricher'),
    exactlyOnce: enricher.bool('exactly_once', true),
    processWaitMs: enricher.int('process_wait_ms', 2000, 0, 600_000),
    metricsPort: enricher.int('metrics_port', 9465, 0, 65535),
  };
  enricher.done();

  const archiver = root.section('archiver');
  const archiverCfg = {
    groupId: archiver.string('group_id', 'netmon-archiver'),
    format: archiver.oneOf<ArchiveFormat>('format', ARCHIVE_FORMATS, 'json'),
    flushRecords: archiver.int('flush_records', 500_000, 1),
    flushBytes: archiver.int('flush_bytes', 128 << 20, 1024),
    flushSpanS: archiver.int('flush_span_s', 300, 1),
    idleFlushS: archiver.int('idle_flush_s', 30, 1),
    metricsPort: archiver.int('metrics_port', 9466, 0, 65535),
  };
  archiver.done();

  // An absent section means no filtering; an empty one filters on nothing.
  const filterSection = root.section('process_filter');
  const processFilter = root.has('process_filter') ? readProcessFilter(filterSection) : null;
  root.done();

  return {
    source,
    host: hostCfg,
    log: logCfg,
    kafka,
    topics: topicCfg,
    s3,
    sensor: sensorCfg,
    enricher: enricherCfg,
    archiver: archiverCfg,
    processFilter,
  };
}

function topicName(section: Section, name: string, fallback: string): string {
  const value = section.string(name, fallback);
  const problem = validateTopicName(value);
  if (problem) section.fail(name, `a Kafka topic name (${problem})`, value);
  return value;
}

function readKafka(section: Section, env: NodeJS.ProcessEnv): KafkaSettings {
  let brokers = section.list('brokers', (v): v is string => typeof v === 'string' && HOST_PORT.re.test(v), 'host:port strings');
  const clientId = section.string('client_id', 'netmon');
  const compression = section.oneOf<Compression>('compression', ['lz4', 'gzip', 'none'], 'lz4');
  let ssl: KafkaSettings['ssl'] = false;
  const tls = section.section('ssl');
  const tlsOptions = {
    caFile: tls.string('ca_file', '') || undefined,
    certFile: tls.string('cert_file', '') || undefined,
    keyFile: tls.string('key_file', '') || undefined,
    rejectUnauthorized: tls.bool('reject_unauthorized', true),
  };
  if (section.has('ssl') && tls.bool('enabled', true)) ssl = tlsOptions;
  tls.done();
  let sasl: KafkaSettings['sasl'];
  const saslSection = section.section('sasl');
  if (section.has('sasl')) {
    sasl = {
      mechanism: saslSection.oneOf<SaslMechanism>('mechanism', ['plain', 'scram-sha-256', 'scram-sha-512'], 'plain'),
      username: saslSection.string('username', ''),
      password: saslSection.string('password', ''),
    };
    if (!sasl.username) saslSection.fail('username', 'a user name when sasl is set', sasl.username);
  }
  saslSection.done();
  section.done();

  // Connection settings may come from the environment (deployments inject them).
  const envBrokers = env.NETMON_KAFKA_BROKERS ?? env.KAFKA_BROKERS;
  if (envBrokers !== undefined) {
    const key = env.NETMON_KAFKA_BROKERS !== undefined ? 'NETMON_KAFKA_BROKERS' : 'KAFKA_BROKERS';
    brokers = envBrokers
      .split(',')
      .map((b) => b.trim())
      .filter(Boolean);
    const bad = brokers.find((b) => !HOST_PORT.re.test(b));
    if (brokers.length === 0 || bad !== undefined) throw new ConfigError('environment', key, 'a comma-separated list of host:port', JSON.stringify(envBrokers));
  }
  if (env.NETMON_KAFKA_SSL !== undefined) {
    if (!['true', 'false'].includes(env.NETMON_KAFKA_SSL))
      throw new ConfigError('environment', 'NETMON_KAFKA_SSL', 'true or false', JSON.stringify(env.NETMON_KAFKA_SSL));
    ssl = env.NETMON_KAFKA_SSL === 'true' ? ssl || { rejectUnauthorized: true } : false;
  }
  if (env.NETMON_KAFKA_SASL_USERNAME !== undefined) {
    const mechanism = (env.NETMON_KAFKA_SASL_MECHANISM ?? sasl?.mechanism ?? 'plain') as SaslMechanism;
    if (!['plain', 'scram-sha-256', 'scram-sha-512'].includes(mechanism)) {
      throw new ConfigError('environment', 'NETMON_KAFKA_SASL_MECHANISM', 'one of plain, scram-sha-256, scram-sha-512', JSON.stringify(mechanism));
    }
    sasl = { mechanism, username: env.NETMON_KAFKA_SASL_USERNAME, password: env.NETMON_KAFKA_SASL_PASSWORD ?? sasl?.password ?? '' };
  }
  return { brokers: brokers.length > 0 ? brokers : [...DEFAULT_BROKERS], clientId, compression, ssl, sasl };
}

function readS3(section: Section, env: NodeJS.ProcessEnv): S3Settings {
  const configured = section.has('endpoint') || section.has('bucket');
  const s3: S3Settings = {
    endpoint: section.string('endpoint', DEFAULT_S3.endpoint, { re: /^$|^https?:\/\/\S+$/, what: 'an http(s) URL, or "" for AWS' }),
    region: section.string('region', DEFAULT_S3.region),
    bucket: section.string('bucket', DEFAULT_S3.bucket, { re: /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, what: 'an S3 bucket name' }),
    prefix: section.string('prefix', 'netmon/events', { re: /^[^/](.*[^/])?$/, what: 'a key prefix without leading or trailing "/"' }),
    forcePathStyle: section.bool('force_path_style', !configured || section.has('endpoint')),
  };
  const sse = section.oneOf('sse', ['', 'AES256', 'aws:kms'] as const, '');
  if (sse) s3.sse = sse;
  const kmsKeyId = section.string('kms_key_id', '');
  if (kmsKeyId) {
    if (sse !== 'aws:kms') section.fail('kms_key_id', 'to be set only with sse: aws:kms', kmsKeyId);
    s3.kmsKeyId = kmsKeyId;
  }
  const storageClass = section.string('storage_class', '');
  if (storageClass) s3.storageClass = storageClass;
  const caFile = section.string('ca_file', '');
  section.done();

  const envEndpoint = env.NETMON_S3_ENDPOINT ?? env.S3_ENDPOINT;
  if (envEndpoint !== undefined) {
    if (!/^https?:\/\/\S+$/.test(envEndpoint))
      throw new ConfigError(
        'environment',
        env.NETMON_S3_ENDPOINT !== undefined ? 'NETMON_S3_ENDPOINT' : 'S3_ENDPOINT',
        'an http(s) URL',
        JSON.stringify(envEndpoint),
      );
    s3.endpoint = envEndpoint;
    s3.forcePathStyle = true;
  }
  if (env.NETMON_S3_BUCKET) s3.bucket = env.NETMON_S3_BUCKET;
  const region = env.NETMON_S3_REGION ?? env.AWS_REGION;
  if (region) s3.region = region;
  // A server on loopback is a local stack: its own keys, unless the
  // environment names others. Everywhere else, the AWS default chain.
  if (/^https?:\/\/(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?(\/|$)/.test(s3.endpoint) && !env.AWS_ACCESS_KEY_ID) {
    s3.credentials = { accessKeyId: DEFAULT_S3.accessKeyId, secretAccessKey: DEFAULT_S3.secretAccessKey };
  }
  if (caFile) {
    // Checked against the endpoint in force (the environment may have set it).
    if (s3.endpoint.startsWith('http:')) section.fail('ca_file', `to be set only with an https:// endpoint (s3.endpoint is ${s3.endpoint})`, caFile);
    const problem = caBundleProblem(caFile);
    if (problem) section.failBecause('ca_file', 'a readable PEM file of CA certificates', caFile, problem);
    s3.caFile = caFile;
  }
  return s3;
}

/** Why `file` is no usable CA bundle (unreadable, no PEM certificate, one that does not parse), or undefined. */
function caBundleProblem(file: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  }
  const pems = text.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];
  if (pems.length === 0) return 'no PEM certificate (-----BEGIN CERTIFICATE-----) in it';
  for (const [i, pem] of pems.entries()) {
    try {
      new X509Certificate(pem);
    } catch (err) {
      return `certificate ${i + 1} does not parse: ${(err as Error).message}`;
    }
  }
  return undefined;
}

function readProcessFilter(section: Section): ProcessFilter {
  const binary = section.section('binary');
  const filter: ProcessFilter = {
    denyList: section.bool('deny_list', false),
    uid: section.list('uid', isId, 'uids (integers 0..4294967295)'),
    euid: section.list('euid', isId, 'uids (integers 0..4294967295)'),
    auid: section.list('auid', isId, 'uids (integers 0..4294967295)'),
    binary: {
      name: binary.list('name', isString, 'file names'),
      path: binary.list('path', (v): v is string => isString(v) && v.startsWith('/'), 'absolute paths'),
      prefix: binary.list('prefix', (v): v is string => isString(v) && v.startsWith('/'), 'absolute path prefixes'),
    },
  };
  binary.done();
  section.done();
  return filter;
}

/**
 * Loads the config: the file given, else $NETMON_CONFIG, else the local
 * stack's defaults. Throws ConfigError; callers print it and exit non-zero.
 */
export function loadConfig(file?: string, env: NodeJS.ProcessEnv = process.env): NetmonConfig {
  const path = file ?? env.NETMON_CONFIG;
  if (!path) return parseConfig('', '(defaults)', env);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(path, '(file)', 'a readable YAML file', (err as NodeJS.ErrnoException).code ?? String(err));
  }
  return parseConfig(text, path, env);
}
