// `netmon stack up --secure`: a second local broker, next to the plain one, that
// demands what a production cluster does: TLS and SASL/SCRAM-SHA-512 on
// SECURE_PORT, KRaft's StandardAuthorizer with an ACL set per service principal
// (acl.ts), and no door left open:
//   SASL_SSL://127.0.0.1:9192   clients and the broker itself (inter-broker, as admin)
//   CONTROLLER (SSL) :9193      mutual TLS: only the broker's own certificate gets in
// Everything lives in <stack dir>/kafka-secure/: a CA and the broker's certificate
// made with openssl (tls/), random passwords of the SCRAM users (users.json, 0600),
// created in the metadata log at format time from their salted form (given to
// the JVM in an argument file, never on a command line), the rendered server.properties
// (0600: it holds the admin password for inter-broker SASL), the data, and one
// client config per user (clients/<user>.yaml) that `--config` can take as it is.
import { spawn, spawnSync } from 'node:child_process';
import { pbkdf2Sync, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DEFAULT_TOPICS, type KafkaSettings, createKafka } from '@netmon/common';
import { DEFAULT_SERVICE_USERS, ENRICHER_STATE_READER_GROUP_PREFIX, type PipelineNames, aclEntries, serviceAcls } from './acl';
import { StackError, tailOf } from './errors';
import { classPath } from './fetch';
import { brokerAnswers, brokerJvmArgs, createTopics, newClusterId, quiet, warmUp } from './kafka';
import type { StackLayout } from './layout';
import { findByMarkers, isAlive, portOpen, runningPid, sleep, spawnDetached, stopService } from './process';
import type { ServiceStatus } from './status';
import { findJava } from './tools';

export const SECURE_HOST = '127.0.0.1';
/** The SASL_SSL listener: away from the plain broker's 9092/9093. */
export const SECURE_PORT = 9192;
export const SECURE_CONTROLLER_PORT = 9193;
/** The super user: the stack's own admin client and the broker's inter-broker connections. */
export const ADMIN_USER = 'admin';
/** The broker certificate's subject, its principal on the mutual-TLS controller listener. */
export const BROKER_CN = 'netmon-broker';
/** PBKDF2 rounds of the stored SCRAM credentials (Kafka's minimum for SHA-512 is 4096). */
const SCRAM_ITERATIONS = 8192;
const CERT_DAYS = 825;

/** The SCRAM users of the secure broker: the admin and one per service. */
export const SECURE_USERS = [ADMIN_USER, DEFAULT_SERVICE_USERS.sensor, DEFAULT_SERVICE_USERS.enricher, DEFAULT_SERVICE_USERS.archiver] as const;

/** The default names, the ACLs applied at `stack up --secure`. */
export const DEFAULT_PIPELINE_NAMES: PipelineNames = {
  raw: DEFAULT_TOPICS.raw,
  events: DEFAULT_TOPICS.events,
  dlq: DEFAULT_TOPICS.dlq,
  status: DEFAULT_TOPICS.status,
  enricherGroup: 'netmon-enricher',
  archiverGroup: 'netmon-archiver',
};

export interface SecureLayout {
  dir: string;
  host: string;
  port: number;
  controllerPort: number;
  /** host:port of the SASL_SSL listener */
  address: string;
  config: string;
  data: string;
  log: string;
  pidFile: string;
  /** users.json: { user: password } (0600) */
  usersFile: string;
  /** clients/<user>.yaml */
  clientsDir: string;
  tls: { dir: string; caCert: string; caKey: string; brokerCert: string; brokerKey: string; brokerPem: string };
  markers: string[];
}

export function secureLayout(layout: StackLayout): SecureLayout {
  const dir = path.join(layout.dir, 'kafka-secure');
  const tls = path.join(dir, 'tls');
  return {
    dir,
    host: SECURE_HOST,
    port: SECURE_PORT,
    controllerPort: SECURE_CONTROLLER_PORT,
    address: `${SECURE_HOST}:${SECURE_PORT}`,
    config: path.join(dir, 'server.properties'),
    data: path.join(dir, 'data'),
    log: path.join(layout.logs, 'kafka-secure.log'),
    pidFile: path.join(layout.run, 'kafka-secure.pid'),
    usersFile: path.join(dir, 'users.json'),
    clientsDir: path.join(dir, 'clients'),
    tls: {
      dir: tls,
      caCert: path.join(tls, 'ca.crt'),
      caKey: path.join(tls, 'ca.key'),
      brokerCert: path.join(tls, 'broker.crt'),
      brokerKey: path.join(tls, 'broker.key'),
      brokerPem: path.join(tls, 'broker.pem'),
    },
    markers: ['-Dnetmon.stack.service=kafka-secure', `-Dnetmon.stack.dir=${layout.dir}`],
  };
}

/** Writes a file readable by its owner only. */
function writePrivate(file: string, content: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, content, { mode: 0o600 });
  fs.chmodSync(file, 0o600);
}

function openssl(args: string[], what: string): void {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new StackError('make certificates', `openssl ${args[0]} (${what}) failed: ${r.error?.message ?? r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  }
}

/**
 * A certificate authority: an EC P-256 key and a self-signed CA certificate.
 * Also what the tests use to make a CA the broker does not know.
 */
export function makeCa(certFile: string, keyFile: string, commonName: string): void {
  fs.mkdirSync(path.dirname(certFile), { recursive: true });
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', keyFile], 'CA key');
  fs.chmodSync(keyFile, 0o600);
  openssl(
    [
      'req',
      '-x509',
      '-new',
      '-key',
      keyFile,
      '-sha256',
      '-days',
      String(CERT_DAYS),
      '-subj',
      `/CN=${commonName}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
      '-out',
      certFile,
    ],
    'CA certificate',
  );
}

/** The CA and the broker's key and certificate (SAN IP 127.0.0.1 and localhost; server and client use), once. */
export function ensureCertificates(s: SecureLayout, log: (msg: string) => void): void {
  const t = s.tls;
  if ([t.caCert, t.brokerCert, t.brokerPem].every((f) => fs.existsSync(f))) return;
  fs.rmSync(t.dir, { recursive: true, force: true });
  makeCa(t.caCert, t.caKey, 'Netmon local stack CA');
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', t.brokerKey], 'broker key');
  fs.chmodSync(t.brokerKey, 0o600);
  const csr = path.join(t.dir, 'broker.csr');
  const ext = path.join(t.dir, 'broker.ext');
  openssl(['req', '-new', '-key', t.brokerKey, '-subj', `/CN=${BROKER_CN}`, '-out', csr], 'broker request');
  fs.writeFileSync(
    ext,
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyAgreement',
      // server: the listeners; client: the broker's own connections to the controller listener
      'extendedKeyUsage=serverAuth,clientAuth',
      `subjectAltName=IP:${SECURE_HOST},DNS:localhost`,
      '',
    ].join('\n'),
  );
  openssl(
    [
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      t.caCert,
      '-CAkey',
      t.caKey,
      '-set_serial',
      `0x${randomBytes(16).toString('hex')}`,
      '-days',
      String(CERT_DAYS),
      '-sha256',
      '-extfile',
      ext,
      '-out',
      t.brokerCert,
    ],
    'broker certificate',
  );
  fs.rmSync(csr);
  fs.rmSync(ext);
  // Kafka's PEM key store: the (PKCS#8) key, then the chain.
  writePrivate(t.brokerPem, `${[t.brokerKey, t.brokerCert, t.caCert].map((f) => fs.readFileSync(f, 'utf8').trimEnd()).join('\n')}\n`);
  log(`kafka-secure: made a CA (${t.caCert}) and the broker certificate (CN=${BROKER_CN}, IP:${SECURE_HOST}) with openssl`);
}

/** The SCRAM users' passwords (users.json); throws when the secure broker was never set up. */
export function secureUsers(s: SecureLayout): Record<string, string> {
  let users: Record<string, string>;
  try {
    users = JSON.parse(fs.readFileSync(s.usersFile, 'utf8')) as Record<string, string>;
  } catch (err) {
    throw new StackError('kafka-secure', `cannot read the users' passwords (${(err as Error).message}); run: netmon stack up --secure`, undefined, {
      cause: err,
    });
  }
  return users;
}

/**
 * The passwords, made once (random) before the storage is formatted with them.
 * Lost after the format, they cannot be made again: the data goes too.
 */
function ensureUsers(s: SecureLayout): Record<string, string> {
  if (fs.existsSync(s.usersFile)) {
    const users = secureUsers(s);
    const missing = SECURE_USERS.filter((u) => typeof users[u] !== 'string');
    if (missing.length === 0) return users;
    throw new StackError('kafka-secure', `${s.usersFile} lacks ${missing.join(', ')}: stop the broker and remove ${s.dir} to start afresh`);
  }
  if (fs.existsSync(path.join(s.data, 'meta.properties'))) {
    throw new StackError('kafka-secure', `${s.usersFile} is gone but ${s.data} holds its users: stop the broker and remove ${s.dir} to start afresh`);
  }
  const users = Object.fromEntries(SECURE_USERS.map((u) => [u, randomBytes(24).toString('base64url')]));
  writePrivate(s.usersFile, `${JSON.stringify(users, null, 2)}\n`);
  return users;
}

/** The client settings of one user of the secure broker. */
export function secureSettings(s: SecureLayout, user: string, clientId = 'netmon-stack'): KafkaSettings {
  const password = secureUsers(s)[user];
  if (password === undefined) throw new StackError('kafka-secure', `no SCRAM user ${user} (users: ${SECURE_USERS.join(', ')})`);
  return {
    brokers: [s.address],
    clientId,
    compression: 'none',
    ssl: { caFile: s.tls.caCert, rejectUnauthorized: true },
    sasl: { mechanism: 'scram-sha-512', username: user, password },
  };
}

/** A `kafka:` section of netmon.yaml for one user (what clients/<user>.yaml holds). */
export function clientYaml(s: SecureLayout, user: string): string {
  const password = secureUsers(s)[user]!;
  return [
    `# The secure local broker (netmon stack up --secure) as SCRAM user ${user}.`,
    'kafka:',
    `  brokers: [${s.address}]`,
    `  ssl: { ca_file: ${JSON.stringify(s.tls.caCert)} }`,
    `  sasl: { mechanism: scram-sha-512, username: ${user}, password: ${JSON.stringify(password)} }`,
    '',
  ].join('\n');
}

/** `--add-scram` of a user: salted (PBKDF2-HMAC-SHA-512), the form the broker stores. */
function scramArgument(user: string, password: string): string {
  const salt = randomBytes(32);
  const salted = pbkdf2Sync(Buffer.from(password, 'utf8'), salt, SCRAM_ITERATIONS, 64, 'sha512');
  return `SCRAM-SHA-512=[name=${user},iterations=${SCRAM_ITERATIONS},salt="${salt.toString('base64')}",saltedpassword="${salted.toString('base64')}"]`;
}

function renderConfig(s: SecureLayout, adminPassword: string): string {
  const jaas = `org.apache.kafka.common.security.scram.ScramLoginModule required username="${ADMIN_USER}" password="${adminPassword}";`;
  return `# The secure local broker of \`netmon stack up --secure\` (written by cli/src/stack/secure.ts;
# owner-only: it holds the admin password of the inter-broker connections).
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=${s.host}:${s.controllerPort}
listeners=SASL_SSL://${s.host}:${s.port},CONTROLLER://${s.host}:${s.controllerPort}
advertised.listeners=SASL_SSL://${s.host}:${s.port},CONTROLLER://${s.host}:${s.controllerPort}
controller.listener.names=CONTROLLER
inter.broker.listener.name=SASL_SSL
listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SSL
log.dirs=${s.data}
metadata.log.dir=${s.data}

# SASL: SCRAM-SHA-512 only; the users are in the metadata log (kafka-storage format --add-scram)
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=${jaas}

# TLS: one key and certificate (PEM, made with openssl), the local CA as the only trust
ssl.keystore.type=PEM
ssl.keystore.location=${s.tls.brokerPem}
ssl.truststore.type=PEM
ssl.truststore.location=${s.tls.caCert}
ssl.enabled.protocols=TLSv1.3,TLSv1.2
ssl.endpoint.identification.algorithm=https
# The controller listener: mutual TLS, the broker's certificate is its principal
listener.name.controller.ssl.client.auth=required

# Authorization: KRaft's StandardAuthorizer, deny unless an ACL allows
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:${ADMIN_USER};User:CN=${BROKER_CN}
allow.everyone.if.no.acl.found=false
# Clients do not make topics by asking for them
auto.create.topics.enable=false

num.network.threads=2
num.io.threads=4
num.partitions=4
num.recovery.threads.per.data.dir=1
default.replication.factor=1
min.insync.replicas=1
delete.topic.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=1
group.initial.rebalance.delay.ms=0
log.retention.hours=24
log.segment.bytes=67108864
log.retention.check.interval.ms=60000
`;
}

/** Certificates, users, server.properties and the client configs; `kafka-storage format` with the SCRAM users, once. */
async function prepare(layout: StackLayout, s: SecureLayout, log: (msg: string) => void): Promise<void> {
  ensureCertificates(s, log);
  const users = ensureUsers(s);
  writePrivate(s.config, renderConfig(s, users[ADMIN_USER]!));
  fs.mkdirSync(s.clientsDir, { recursive: true, mode: 0o700 });
  for (const user of SECURE_USERS) writePrivate(path.join(s.clientsDir, `${user}.yaml`), clientYaml(s, user));
  if (fs.existsSync(path.join(s.data, 'meta.properties'))) return;
  fs.mkdirSync(s.data, { recursive: true });
  fs.mkdirSync(path.dirname(s.log), { recursive: true });
  const id = newClusterId();
  log(`kafka-secure: formatting storage in ${s.data} (cluster id ${id}, SCRAM-SHA-512 users ${SECURE_USERS.join(', ')})`);
  // The salted passwords are as good as the passwords to a SCRAM client: they go to
  // the JVM in an argument file (0600, removed after), never on its command line.
  const tool = ['kafka.tools.StorageTool', 'format', '--standalone', '--cluster-id', id, '--config', s.config];
  for (const user of SECURE_USERS) tool.push('--add-scram', scramArgument(user, users[user]!));
  const argFile = path.join(s.dir, 'format.args');
  writePrivate(argFile, `${tool.map((a) => `'${a}'`).join('\n')}\n`);
  const args = [`-Dlog4j2.configurationFile=${layout.kafka.log4jTools}`, '-cp', classPath(layout.kafka), `@${argFile}`];
  fs.appendFileSync(s.log, `\n=== ${new Date().toISOString()} kafka-storage format --standalone --cluster-id ${id} (SCRAM users ${SECURE_USERS.join(', ')})\n`);
  const fd = fs.openSync(s.log, 'a');
  try {
    const code = await new Promise<number | string>((resolve) => {
      const child = spawn(findJava(), args, { stdio: ['ignore', fd, fd] });
      child.once('error', (err) => resolve(err.message));
      child.once('close', (c) => resolve(c ?? 'killed'));
    });
    if (code !== 0) throw new StackError('format kafka-secure storage', `StorageTool exited with ${code}${tailOf(s.log)}`, s.log);
  } finally {
    fs.closeSync(fd);
    fs.rmSync(argFile, { force: true });
  }
}

/** Whether the secure broker answers its admin (SASL_SSL, SCRAM, the local CA). */
export function secureAnswers(layout: StackLayout, timeoutMs = 4000): Promise<{ ok: boolean; detail: string }> {
  const s = secureLayout(layout);
  if (!fs.existsSync(s.usersFile)) return Promise.resolve({ ok: false, detail: 'not set up (netmon stack up --secure)' });
  return brokerAnswers(secureSettings(s, ADMIN_USER), timeoutMs);
}

async function waitReady(layout: StackLayout, s: SecureLayout, pid: number, timeoutMs = 120_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < until) {
    if (!isAlive(pid)) throw new StackError('start kafka-secure', `the broker (pid ${pid}) exited during start-up${tailOf(s.log)}`, s.log);
    const answer = await secureAnswers(layout, 3000);
    if (answer.ok) return;
    last = answer.detail;
    await sleep(500);
  }
  throw new StackError('start kafka-secure', `no answer on ${s.address} within ${timeoutMs / 1000} s (last: ${last})${tailOf(s.log)}`, s.log);
}

/**
 * Applies the ACLs of the services for `names` (Admin API, as the admin): the
 * stack does it for the default names, the tests for their fresh ones.
 */
export async function applyServiceAcls(layout: StackLayout, names: PipelineNames): Promise<void> {
  const s = secureLayout(layout);
  const admin = createKafka(secureSettings(s, ADMIN_USER, 'netmon-stack'), quiet, 'acls').admin();
  await admin.connect();
  try {
    await admin.createAcls({ acl: aclEntries(serviceAcls(names)) });
  } catch (err) {
    throw new StackError('kafka-secure ACLs', (err as Error).message, s.log, { cause: err });
  } finally {
    await admin.disconnect();
  }
}

/**
 * Removes the ACLs applyServiceAcls made for `names`, but the changelog
 * reader's group prefix: it is the same for every pipeline.
 */
export async function removeServiceAcls(layout: StackLayout, names: PipelineNames): Promise<void> {
  const s = secureLayout(layout);
  const admin = createKafka(secureSettings(s, ADMIN_USER, 'netmon-stack'), quiet, 'acls').admin();
  await admin.connect();
  try {
    const own = serviceAcls(names).filter((r) => r.name !== ENRICHER_STATE_READER_GROUP_PREFIX);
    await admin.deleteAcls({ filters: aclEntries(own) });
  } finally {
    await admin.disconnect();
  }
}

/** Starts the secure broker (formatting it the first time), creates the default topics and applies the ACLs. */
export async function startSecure(layout: StackLayout, log: (msg: string) => void): Promise<void> {
  const s = secureLayout(layout);
  const running = runningPid(s.pidFile, s.markers);
  if (running === undefined) {
    for (const port of [s.port, s.controllerPort]) {
      if (await portOpen(s.host, port)) {
        throw new StackError('start kafka-secure', `${s.host}:${port} is taken by a process this stack did not start (see: ss -ltnp 'sport = :${port}')`);
      }
    }
    await prepare(layout, s, log);
    const started = Date.now();
    log(`kafka-secure: starting (log ${s.log})`);
    const pid = await spawnDetached({
      command: findJava(),
      args: brokerJvmArgs(layout, s.markers, s.config),
      cwd: s.dir,
      logFile: s.log,
      pidFile: s.pidFile,
    });
    await waitReady(layout, s, pid);
    log(`kafka-secure: ready on ${s.address} (SASL_SSL, SCRAM-SHA-512), pid ${pid} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  } else {
    await waitReady(layout, s, running);
  }
  const admin = secureSettings(s, ADMIN_USER);
  await createTopics(admin, Object.values(DEFAULT_TOPICS), (m) => log(m.replace(/^kafka:/, 'kafka-secure:')), s.log);
  await applyServiceAcls(layout, DEFAULT_PIPELINE_NAMES);
  await warmUp(admin, s.log);
}

/** Pids of the secure broker of this state dir. */
export function securePids(layout: StackLayout): number[] {
  return findByMarkers(secureLayout(layout).markers);
}

/** Stops the secure broker (SIGTERM, SIGKILL after the grace period); a no-op when it does not run. */
export async function stopSecure(layout: StackLayout, log: (msg: string) => void, graceMs: number): Promise<void> {
  const s = secureLayout(layout);
  await stopService('kafka-secure', s.pidFile, s.markers, graceMs, log);
}

/** The secure broker's status, as the plain services'. */
export async function secureStatus(layout: StackLayout, server: string): Promise<ServiceStatus> {
  const s = secureLayout(layout);
  const pid = runningPid(s.pidFile, s.markers) ?? null;
  let answering = false;
  let detail: string;
  if (pid !== null) {
    const answer = await secureAnswers(layout);
    answering = answer.ok;
    detail = answer.ok ? `${answer.detail}; CA ${s.tls.caCert}; client configs ${s.clientsDir}/<user>.yaml` : answer.detail;
  } else if (await portOpen(s.host, s.port)) {
    detail = `not started by this stack, but something else listens on ${s.address}`;
  } else {
    detail = 'not running';
  }
  return {
    name: 'kafka-secure',
    server: `${server} with SASL_SSL (SCRAM-SHA-512) and ACLs`,
    running: pid !== null,
    pid,
    address: s.address,
    otherAddresses: [`${s.host}:${s.controllerPort} (controller, mutual TLS)`],
    answering,
    detail,
    logFile: s.log,
    dataDir: s.data,
    configFile: s.config,
  };
}
