// `netmon stack up --secure`, the S3 side: a second S3Proxy next to the plain one
// (which keeps http://127.0.0.1:9000), speaking HTTPS only, with its own data:
//   https://127.0.0.1:9443   S3 API (S3Proxy's secure endpoint; no plain listener)
// Everything lives in <stack dir>/s3-secure/: a CA and the server's certificate
// made with openssl (tls/: SAN IP 127.0.0.1 and localhost, server use), the
// PKCS#12 key store S3Proxy's Jetty reads with its random password (0600), the
// rendered s3proxy.properties (0600: it holds that password), the logback
// config, the data, and client.yaml: the `s3:` section of netmon.yaml
// (endpoint and s3.ca_file) that trusts this CA.
//
// What S3Proxy 2.9.0 does with server-side encryption (read in its classes):
// `x-amz-server-side-encryption` is not among the x-amz headers its handler
// knows, so it is refused (501) unless `s3proxy.ignore-unknown-headers` is on,
// as here, and then dropped: the filesystem blob store keeps no SSE metadata and
// HeadObject never returns ServerSideEncryption. What the server did receive
// shows in its request log instead: S3ProxyHandler logs each request
// ("request: Request(PUT https://…/bucket/key)") at DEBUG and each of its
// headers ("header: name: value") at TRACE, on the Jetty thread serving it.
// The logback config below sends exactly that logger to logs/s3-secure-requests.log
// (Authorization and session tokens replaced by <redacted>); requestLogEntries()
// reads it back as one entry per request.
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ListBucketsCommand, type S3Client } from '@aws-sdk/client-s3';
import { DEFAULT_S3, type S3Settings, createS3Client } from '@netmon/common';
import { StackError, tailOf } from './errors';
import { classPath } from './fetch';
import type { StackLayout } from './layout';
import { isAlive, findByMarkers, portOpen, runningPid, sleep, spawnDetached, stopService } from './process';
import { ensureBucket } from './s3';
import { SECURE_HOST, makeCa } from './secure';
import type { ServiceStatus } from './status';
import { findJava } from './tools';

/** The HTTPS port: away from the plain S3's 9000 and the secure broker's 9192/9193. */
export const SECURE_S3_PORT = 9443;
export const SECURE_S3_ENDPOINT = `https://${SECURE_HOST}:${SECURE_S3_PORT}`;
/** The server certificate's subject. */
export const S3_SERVER_CN = 'netmon-s3';
const CERT_DAYS = 825;
/** The request log rolls over at this size, keeping one older file (.1). */
const REQUEST_LOG_MAX = '32MB';

export interface SecureS3Layout {
  dir: string;
  host: string;
  port: number;
  /** https://host:port */
  address: string;
  /** s3proxy.properties (0600: the key store's password) */
  config: string;
  logback: string;
  data: string;
  /** The server's own log (stdout and stderr). */
  log: string;
  /** Every request with its headers (S3ProxyHandler at TRACE). */
  requestLog: string;
  pidFile: string;
  /** The `s3:` section of netmon.yaml for this server. */
  clientYaml: string;
  tls: { dir: string; caCert: string; caKey: string; serverCert: string; serverKey: string; keystore: string; keystorePassword: string };
  markers: string[];
}

export function secureS3Layout(layout: StackLayout): SecureS3Layout {
  const dir = path.join(layout.dir, 's3-secure');
  const tls = path.join(dir, 'tls');
  return {
    dir,
    host: SECURE_HOST,
    port: SECURE_S3_PORT,
    address: SECURE_S3_ENDPOINT,
    config: path.join(dir, 's3proxy.properties'),
    logback: path.join(dir, 'logback.xml'),
    data: path.join(dir, 'data'),
    log: path.join(layout.logs, 's3-secure.log'),
    requestLog: path.join(layout.logs, 's3-secure-requests.log'),
    pidFile: path.join(layout.run, 's3-secure.pid'),
    clientYaml: path.join(dir, 'client.yaml'),
    tls: {
      dir: tls,
      caCert: path.join(tls, 'ca.crt'),
      caKey: path.join(tls, 'ca.key'),
      serverCert: path.join(tls, 'server.crt'),
      serverKey: path.join(tls, 'server.key'),
      keystore: path.join(tls, 'server.p12'),
      keystorePassword: path.join(tls, 'server.p12.password'),
    },
    markers: ['-Dnetmon.stack.service=s3-secure', `-Dnetmon.stack.dir=${layout.dir}`],
  };
}

/** The services' S3 settings for this server: what client.yaml says, parsed. */
export function secureS3Settings(s: SecureS3Layout, prefix = 'netmon/events'): S3Settings {
  return {
    endpoint: s.address,
    region: DEFAULT_S3.region,
    bucket: DEFAULT_S3.bucket,
    prefix,
    forcePathStyle: true,
    credentials: { accessKeyId: DEFAULT_S3.accessKeyId, secretAccessKey: DEFAULT_S3.secretAccessKey },
    caFile: s.tls.caCert,
  };
}

/** An `s3:` section of netmon.yaml for this server (what client.yaml holds). */
export function secureS3Yaml(s: SecureS3Layout): string {
  return [
    '# The HTTPS S3 of the local stack (netmon stack up --secure): its endpoint and the CA that signed its certificate.',
    's3:',
    `  endpoint: ${s.address}`,
    `  ca_file: ${JSON.stringify(s.tls.caCert)}`,
    '',
  ].join('\n');
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
    throw new StackError(
      'make s3 certificates',
      `openssl ${args[0]} (${what}) failed: ${r.error?.message ?? r.stderr.trim().split('\n').slice(-3).join(' | ')}`,
    );
  }
}

/** The CA, the server's key and certificate (SAN IP 127.0.0.1 and localhost) and the PKCS#12 key store, once. */
export function ensureS3Certificates(s: SecureS3Layout, log: (msg: string) => void): void {
  const t = s.tls;
  if ([t.caCert, t.serverCert, t.keystore, t.keystorePassword].every((f) => fs.existsSync(f))) return;
  fs.rmSync(t.dir, { recursive: true, force: true });
  makeCa(t.caCert, t.caKey, 'Netmon local stack S3 CA');
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', t.serverKey], 'server key');
  fs.chmodSync(t.serverKey, 0o600);
  const csr = path.join(t.dir, 'server.csr');
  const ext = path.join(t.dir, 'server.ext');
  openssl(['req', '-new', '-key', t.serverKey, '-subj', `/CN=${S3_SERVER_CN}`, '-out', csr], 'server request');
  fs.writeFileSync(
    ext,
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature',
      'extendedKeyUsage=serverAuth',
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
      t.serverCert,
    ],
    'server certificate',
  );
  fs.rmSync(csr);
  fs.rmSync(ext);
  // Jetty's key store (PKCS#12, the JDK's default type): the key and the chain.
  // The password reaches openssl through a 0600 file, never its command line.
  writePrivate(t.keystorePassword, randomBytes(24).toString('base64url'));
  openssl(
    [
      'pkcs12',
      '-export',
      '-inkey',
      t.serverKey,
      '-in',
      t.serverCert,
      '-certfile',
      t.caCert,
      '-name',
      S3_SERVER_CN,
      '-passout',
      `file:${t.keystorePassword}`,
      '-out',
      t.keystore,
    ],
    'key store',
  );
  fs.chmodSync(t.keystore, 0o600);
  log(`s3-secure: made a CA (${t.caCert}) and the server certificate (CN=${S3_SERVER_CN}, IP:${SECURE_HOST}) with openssl`);
}

function renderProperties(s: SecureS3Layout): string {
  const password = fs.readFileSync(s.tls.keystorePassword, 'utf8').trim();
  return `# The HTTPS S3Proxy of \`netmon stack up --secure\` (written by cli/src/stack/s3-secure.ts;
# owner-only: it holds the key store's password). No s3proxy.endpoint: no plain listener.
s3proxy.secure-endpoint=${s.address}
s3proxy.keystore-path=${s.tls.keystore}
s3proxy.keystore-password=${password}
s3proxy.authorization=aws-v2-or-v4
s3proxy.identity=${DEFAULT_S3.accessKeyId}
s3proxy.credential=${DEFAULT_S3.secretAccessKey}
# The SDK's checksum headers, and x-amz-server-side-encryption: S3Proxy knows
# neither and would answer 501; with this it drops them (the request log keeps them).
s3proxy.ignore-unknown-headers=true
jclouds.provider=filesystem-nio2
jclouds.filesystem.basedir=${s.data}
`;
}

function renderLogback(s: SecureS3Layout): string {
  const xml = (v: string) => v.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
  return `<?xml version="1.0" encoding="UTF-8"?>
<!-- Logging of the HTTPS S3Proxy (written by cli/src/stack/s3-secure.ts). stdout goes
     to ${xml(s.log)}; S3ProxyHandler's request and header lines (DEBUG, TRACE)
     to the request log, one thread per request, credentials replaced. -->
<configuration>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder>
      <pattern>[%d{ISO8601}] %level %msg \\(%logger{36}\\)%n</pattern>
    </encoder>
  </appender>
  <appender name="REQUESTS" class="ch.qos.logback.core.rolling.RollingFileAppender">
    <file>${xml(s.requestLog)}</file>
    <rollingPolicy class="ch.qos.logback.core.rolling.FixedWindowRollingPolicy">
      <fileNamePattern>${xml(s.requestLog)}.%i</fileNamePattern>
      <minIndex>1</minIndex>
      <maxIndex>1</maxIndex>
    </rollingPolicy>
    <triggeringPolicy class="ch.qos.logback.core.rolling.SizeBasedTriggeringPolicy">
      <maxFileSize>${REQUEST_LOG_MAX}</maxFileSize>
    </triggeringPolicy>
    <encoder>
      <pattern>[%d{ISO8601}] [%thread] %replace(%msg){'^(header: (?i:authorization|x-amz-security-token|cookie)): .*$', '$1: &lt;redacted&gt;'}%n</pattern>
    </encoder>
  </appender>
  <logger name="org.gaul.s3proxy" level="INFO"/>
  <logger name="org.gaul.s3proxy.S3ProxyHandler" level="TRACE" additivity="false">
    <appender-ref ref="REQUESTS"/>
  </logger>
  <logger name="org.gaul.shaded.org.eclipse.jetty" level="WARN"/>
  <logger name="org.eclipse.jetty" level="WARN"/>
  <logger name="org.jclouds" level="WARN"/>
  <logger name="jclouds" level="WARN"/>
  <root level="WARN">
    <appender-ref ref="STDOUT"/>
  </root>
</configuration>
`;
}

/** One request as the server's request log tells it. */
export interface LoggedRequest {
  /** ISO-8601-ish time of its first line. */
  at: string;
  thread: string;
  method: string;
  /** The path after host:port, query string included, e.g. /netmon-archive/k?x-id=PutObject */
  path: string;
  /** Header names lowercased; a repeated header keeps its values in order. */
  headers: Record<string, string[]>;
}

/**
 * The requests in the request log (the rolled-over file first), each with the
 * headers S3Proxy received. Lines of one request share its Jetty thread.
 */
export function requestLogEntries(s: SecureS3Layout): LoggedRequest[] {
  const out: LoggedRequest[] = [];
  const open = new Map<string, LoggedRequest>();
  for (const file of [`${s.requestLog}.1`, s.requestLog]) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      const m = /^\[([^\]]+)\] \[([^\]]+)\] (.*)$/.exec(line);
      if (!m) continue;
      const [, at, thread, msg] = m as unknown as [string, string, string, string];
      const req = /^request: Request[([](\S+) [a-z]+:\/\/[^/\s]+(\S*)[\])]@/.exec(msg);
      if (req) {
        const entry: LoggedRequest = { at, thread, method: req[1]!, path: req[2]!, headers: {} };
        open.set(thread, entry);
        out.push(entry);
        continue;
      }
      const header = /^header: ([^:]+): (.*)$/.exec(msg);
      const entry = open.get(thread);
      if (!header || !entry) continue;
      const name = header[1]!.toLowerCase();
      entry.headers[name] = [...(entry.headers[name] ?? []), header[2]!];
    }
  }
  return out;
}

async function launch(layout: StackLayout, s: SecureS3Layout): Promise<number> {
  return spawnDetached({
    command: findJava(),
    args: [
      '-Xms64m',
      '-Xmx256m',
      '-XX:+UseSerialGC',
      '-XX:+ExitOnOutOfMemoryError',
      '-Djava.awt.headless=true',
      `-Dlogback.configurationFile=${s.logback}`,
      ...s.markers,
      '-cp',
      classPath(layout.s3),
      'org.gaul.s3proxy.Main',
      '--properties',
      s.config,
    ],
    cwd: s.dir,
    logFile: s.log,
    pidFile: s.pidFile,
  });
}

/** Whether the server answers a signed ListBuckets over HTTPS, trusting only its CA. */
export async function secureS3Answers(layout: StackLayout, timeoutMs = 3000): Promise<{ ok: boolean; detail: string }> {
  const s = secureS3Layout(layout);
  if (!fs.existsSync(s.tls.caCert)) return { ok: false, detail: 'not set up (netmon stack up --secure)' };
  let client: S3Client | undefined;
  try {
    client = createS3Client(secureS3Settings(s), { maxAttempts: 1, connectionTimeoutMs: 1000, requestTimeoutMs: timeoutMs });
    const out = await client.send(new ListBucketsCommand({}));
    const names = (out.Buckets ?? []).map((b) => b.Name).join(', ');
    return { ok: true, detail: `buckets: ${names || '(none)'}` };
  } catch (err) {
    const e = err as Error & { $metadata?: { httpStatusCode?: number } };
    return { ok: false, detail: `${e.name}: ${e.message}${e.$metadata?.httpStatusCode ? ` (HTTP ${e.$metadata.httpStatusCode})` : ''}` };
  } finally {
    client?.destroy();
  }
}

async function waitReady(layout: StackLayout, s: SecureS3Layout, pid: number, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < until) {
    if (!isAlive(pid)) throw new StackError('start s3-secure', `S3Proxy (pid ${pid}) exited during start-up${tailOf(s.log)}`, s.log);
    const answer = await secureS3Answers(layout, 2000);
    if (answer.ok) return;
    last = answer.detail;
    await sleep(300);
  }
  throw new StackError('start s3-secure', `no answer on ${s.address} within ${timeoutMs / 1000} s (last: ${last})${tailOf(s.log)}`, s.log);
}

/** Starts the HTTPS S3Proxy (certificates the first time) and creates the archive bucket; resolves once it answers. */
export async function startSecureS3(layout: StackLayout, log: (msg: string) => void): Promise<void> {
  const s = secureS3Layout(layout);
  const running = runningPid(s.pidFile, s.markers);
  if (running === undefined) {
    if (await portOpen(s.host, s.port)) {
      throw new StackError('start s3-secure', `${s.host}:${s.port} is taken by a process this stack did not start (see: ss -ltnp 'sport = :${s.port}')`);
    }
    ensureS3Certificates(s, log);
    fs.mkdirSync(s.data, { recursive: true });
    writePrivate(s.config, renderProperties(s));
    fs.writeFileSync(s.logback, renderLogback(s));
    fs.writeFileSync(s.clientYaml, secureS3Yaml(s));
    const started = Date.now();
    log(`s3-secure: starting (log ${s.log}, requests ${s.requestLog})`);
    const pid = await launch(layout, s);
    await waitReady(layout, s, pid);
    log(`s3-secure: ready on ${s.address}, pid ${pid} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  } else {
    await waitReady(layout, s, running);
  }
  const client = createS3Client(secureS3Settings(s), { maxAttempts: 1, connectionTimeoutMs: 1000, requestTimeoutMs: 10_000 });
  await ensureBucket(layout, (m) => log(m.replace(/^s3:/, 's3-secure:')), DEFAULT_S3.bucket, { client, logFile: s.log });
}

/** Pids of the HTTPS S3Proxy of this state dir. */
export function secureS3Pids(layout: StackLayout): number[] {
  return findByMarkers(secureS3Layout(layout).markers);
}

/** Stops the HTTPS S3Proxy (SIGTERM, SIGKILL after the grace period); a no-op when it does not run. */
export async function stopSecureS3(layout: StackLayout, log: (msg: string) => void, graceMs: number): Promise<void> {
  const s = secureS3Layout(layout);
  await stopService('s3-secure', s.pidFile, s.markers, graceMs, log);
}

/** The HTTPS S3Proxy's status, as the plain services'. */
export async function secureS3Status(layout: StackLayout, server: string): Promise<ServiceStatus> {
  const s = secureS3Layout(layout);
  const pid = runningPid(s.pidFile, s.markers) ?? null;
  let answering = false;
  let detail: string;
  if (pid !== null) {
    const answer = await secureS3Answers(layout);
    answering = answer.ok;
    detail = answer.ok ? `${answer.detail}; CA ${s.tls.caCert}; s3 settings ${s.clientYaml}; request log ${s.requestLog}` : answer.detail;
  } else if (await portOpen(s.host, s.port)) {
    detail = `not started by this stack, but something else listens on ${s.host}:${s.port}`;
  } else {
    detail = 'not running';
  }
  return {
    name: 's3-secure',
    server: `${server} over HTTPS`,
    running: pid !== null,
    pid,
    address: s.address,
    otherAddresses: [],
    answering,
    detail,
    logFile: s.log,
    dataDir: s.data,
    configFile: s.config,
  };
}
