// Helpers of the archiver's integration tests (real broker, real S3 server):
// fresh names, producing known events, reading the archive back, waiting.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdtempSync, writeFileSync } from 'node:fs';
import { type IncomingMessage, type Server, type ServerResponse, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { type NetmonConfig, type NetworkEvent, createKafka, createLogger, createS3Client, loadConfig, networkEventCodec } from '@netmon/common';
import type { Admin, Kafka } from 'kafkajs';
import { parseDataKey } from '../src/layout';
import { ArchiveStore } from '../src/store';
import { sampleEvent } from './samples';

export const repoRoot = path.resolve(__dirname, '../../../..');
export const logger = createLogger('archiver-test', process.env.NETMON_TEST_LOG_LEVEL ?? 'warn');

export async function waitUntil<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 60_000,
  everyMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export interface Fixture {
  id: string;
  topic: string;
  groupId: string;
  prefix: string;
  configFile: string;
  config: NetmonConfig;
  kafka: Kafka;
  admin: Admin;
  store: ArchiveStore;
  produced: number;
}

export interface FixtureOptions {
  partitions?: number;
  flushRecords?: number;
  idleFlushS?: number;
  flushSpanS?: number;
}

export function configYaml(f: { topic: string; groupId: string; prefix: string }, o: FixtureOptions): string {
  return [
    `topics: { events: ${f.topic}, dlq: ${f.topic}.dlq, status: ${f.topic}.status }`,
    `s3: { prefix: ${f.prefix} }`,
    `archiver: { group_id: ${f.groupId}, flush_records: ${o.flushRecords ?? 1000}, flush_bytes: ${64 << 20}, flush_span_s: ${o.flushSpanS ?? 86400}, idle_flush_s: ${o.idleFlushS ?? 1}, metrics_port: 0 }`,
    '',
  ].join('\n');
}

/** A fresh topic, group and S3 prefix, and a config file naming them. */
export async function fixture(name: string, o: FixtureOptions = {}): Promise<Fixture> {
  const id = `${name}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  const names = { topic: `test.archiver.${id}`, groupId: `test-archiver-${id}`, prefix: `test/${id}` };
  const dir = mkdtempSync(path.join(tmpdir(), 'netmon-archiver-'));
  const configFile = path.join(dir, 'netmon.yaml');
  writeFileSync(configFile, configYaml(names, o));
  const config = loadConfig(configFile);
  const kafka = createKafka(config.kafka, logger, 'archiver-test');
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({
    waitForLeaders: true,
    topics: [
      { topic: names.topic, numPartitions: o.partitions ?? 2, replicationFactor: 1 },
      { topic: `${names.topic}.dlq`, numPartitions: 1, replicationFactor: 1 },
      // the archiver's group reads the status topic too (empty here)
      { topic: `${names.topic}.status`, numPartitions: 1, replicationFactor: 1 },
    ],
  });
  const store = new ArchiveStore(createS3Client(config.s3), config.s3);
  return { id, ...names, configFile, config, kafka, admin, store, produced: 0 };
}

export async function cleanup(f: Fixture): Promise<void> {
  await f.admin.deleteTopics({ topics: [f.topic, `${f.topic}.dlq`, `${f.topic}.status`] }).catch(() => undefined);
  await f.admin.deleteGroups([f.groupId]).catch(() => undefined);
  await f.admin.disconnect();
  await f.store.deletePrefix(`${f.prefix}/`).catch(() => undefined);
  f.store.client.destroy();
}

/** Event number `seq`: its timestamp walks through `hours` consecutive hours, interleaved. */
export function eventFor(seq: number, hours = 2, baseMs = Date.parse('2025-05-31T10:00:00.000Z')): NetworkEvent {
  const hour = seq % hours;
  const t = new Date(baseMs + hour * 3_600_000 + (seq % 3_600_000)).toISOString();
  return sampleEvent({ timestamp: t, seq, cookie: seq, hostId: `host-${seq % 7}` });
}

/** Produces events with seq from..to-1, keyed by host id. */
export async function produce(f: Fixture, from: number, to: number, hours = 2): Promise<void> {
  const codec = networkEventCodec();
  const producer = f.kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  try {
    for (let i = from; i < to; i += 1000) {
      const messages = [];
      for (let s = i; s < Math.min(to, i + 1000); s++) {
        const ev = eventFor(s, hours);
        messages.push({ key: ev.host.id, value: codec.encode(ev) });
      }
      await producer.send({ topic: f.topic, acks: -1, messages });
    }
  } finally {
    await producer.disconnect();
  }
  f.produced = Math.max(f.produced, to);
}

export interface ArchiveContents {
  keys: string[];
  manifests: string[];
  /** seq → how many times it is in the archive. */
  counts: Map<number, number>;
  lines: { key: string; line: string }[];
}

export async function readArchive(f: Fixture): Promise<ArchiveContents> {
  const all = await f.store.list(`${f.prefix}/`);
  const keys = all.map((o) => o.key).filter((k) => parseDataKey(k) !== undefined);
  const manifests = all.map((o) => o.key).filter((k) => k.includes('/_flushes/'));
  const counts = new Map<number, number>();
  const lines: { key: string; line: string }[] = [];
  for (const key of keys) {
    const text = gunzipSync(await f.store.getBytes(key)).toString('utf8');
    for (const line of text.split('\n')) {
      if (line === '') continue;
      lines.push({ key, line });
      const seq = (JSON.parse(line) as NetworkEvent).source.seq;
      counts.set(seq, (counts.get(seq) ?? 0) + 1);
    }
  }
  return { keys, manifests, counts, lines };
}

/** Problems with "every seq in 0..n-1 exactly once" (empty when it holds). */
export function exactlyOnceProblems(c: ArchiveContents, n: number): string[] {
  const problems: string[] = [];
  const missing: number[] = [];
  for (let s = 0; s < n; s++) {
    const k = c.counts.get(s) ?? 0;
    if (k === 0) missing.push(s);
    else if (k > 1) problems.push(`seq ${s} archived ${k} times`);
  }
  if (missing.length) problems.push(`${missing.length} missing (first ${missing.slice(0, 5).join(', ')})`);
  for (const s of c.counts.keys()) if (s >= n) problems.push(`unexpected seq ${s}`);
  return problems.slice(0, 20);
}

export async function committed(f: Fixture): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  for (const t of await f.admin.fetchOffsets({ groupId: f.groupId, topics: [f.topic] })) {
    for (const p of t.partitions) out.set(p.partition, Number(p.offset));
  }
  return out;
}

export async function endOffsets(f: Fixture): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  for (const p of await f.admin.fetchTopicOffsets(f.topic)) out.set(p.partition, Number(p.high));
  return out;
}

export interface Child {
  proc: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  logFile: string;
}

/** Runs the archiver as its own process (what `netmon archiver` runs). */
export function spawnArchiver(f: Fixture, env: Record<string, string> = {}, tag = 'run'): Child {
  const logFile = path.join(path.dirname(f.configFile), `archiver-${tag}.log`);
  const log = createWriteStream(logFile);
  const proc = spawn(process.execPath, [path.join(repoRoot, 'services/archiver/dist/src/main.js'), '--config', f.configFile], {
    cwd: repoRoot,
    env: { ...process.env, NETMON_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout!.pipe(log);
  proc.stderr!.pipe(log);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { proc, exited, logFile };
}

/** A call the archiver made to S3, as the S3 server answered it. */
export interface S3Exchange {
  method: string;
  /** The object key (path-style URL: after the bucket). */
  key: string;
  status: number;
}

export interface S3Tap {
  /** The endpoint to give the archiver (NETMON_S3_ENDPOINT). */
  endpoint: string;
  close(): Promise<void>;
}

/**
 * A pass-through proxy in front of the S3 server. Every answer of the server
 * goes to `onAnswer` before the archiver sees it, so a test can act (kill the
 * archiver) at an exact point of the protocol: after an object is stored and
 * before the archiver learns it, hence before anything that follows (its
 * commit). SigV4 signs the Host header, which is forwarded as it came.
 */
export async function startS3Tap(target: string, onAnswer: (x: S3Exchange) => Promise<void> | void): Promise<S3Tap> {
  const up = new URL(target);
  const sockets = new Set<import('node:net').Socket>();
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const headers = { ...req.headers };
    delete headers.expect; // node answered 100-continue already
    const fwd = request({ host: up.hostname, port: up.port, method: req.method, path: req.url, headers }, (answer) => {
      const chunks: Buffer[] = [];
      answer.on('data', (c: Buffer) => chunks.push(c));
      answer.on('end', () => {
        const key = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname.split('/').slice(2).join('/'));
        Promise.resolve(onAnswer({ method: req.method ?? '', key, status: answer.statusCode ?? 0 }))
          .catch(() => undefined)
          .then(() => {
            if (res.destroyed) return;
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            res.end(Buffer.concat(chunks));
          });
      });
    });
    fwd.on('error', () => res.destroy());
    req.pipe(fwd);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
