// What runs where: pid, address, log file, data dir, and whether it answers.
import * as fs from 'node:fs';
import { kafkaAnswers, kafkaMarkers } from './kafka';
import type { ServiceName, StackLayout } from './layout';
import { portOpen, runningPid } from './process';
import { clusterPids, clusterStatus } from './cluster';
import { s3Answers, s3Markers } from './s3';
import { secureS3Pids, secureS3Status } from './s3-secure';
import { securePids, secureStatus } from './secure';

export interface ServiceStatus {
  name: ServiceName | 'kafka-secure' | 's3-secure' | `kafka-node-${number}`;
  /** What the server is, e.g. "Apache Kafka 4.1.1 (KRaft, broker+controller)". */
  server: string;
  running: boolean;
  pid: number | null;
  /** host:port for Kafka, URL for S3. */
  address: string;
  /** Other listeners (the KRaft controller). */
  otherAddresses: string[];
  answering: boolean;
  /** What it answered, or why it did not. */
  detail: string;
  logFile: string;
  dataDir: string;
  configFile: string;
}

export interface StackStatus {
  dir: string;
  /** Both services run and answer. */
  up: boolean;
  kafka: ServiceStatus;
  s3: ServiceStatus;
  /** The secure broker (`stack up --secure`): present when it runs, or when asked for. */
  secure?: ServiceStatus;
  /** The HTTPS S3 (`stack up --secure`, s3-secure.ts): present when it runs, or when asked for (with `secure`). */
  secureS3?: ServiceStatus;
  /** The replicated cluster's nodes (`stack up --nodes 3`): present when one runs, or when asked for. */
  cluster?: ServiceStatus[];
}

function pomProperty(pom: string, name: string): string {
  const m = new RegExp(`<${name.replace(/\./g, '\\.')}>([^<]+)</`).exec(fs.readFileSync(pom, 'utf8'));
  return m ? m[1]!.trim() : '?';
}

export function serverName(layout: StackLayout, name: ServiceName): string {
  return name === 'kafka'
    ? `Apache Kafka ${pomProperty(layout.kafka.pom, 'kafka.version')} (KRaft, broker+controller)`
    : `S3Proxy ${pomProperty(layout.s3.pom, 's3proxy.version')} (filesystem backend)`;
}

export function markersOf(layout: StackLayout, name: ServiceName): string[] {
  return name === 'kafka' ? kafkaMarkers(layout) : s3Markers(layout);
}

export async function serviceStatus(layout: StackLayout, name: ServiceName): Promise<ServiceStatus> {
  const svc = layout[name];
  const pid = runningPid(svc.pidFile, markersOf(layout, name)) ?? null;
  let answering = false;
  let detail: string;
  if (pid !== null) {
    const answer = name === 'kafka' ? await kafkaAnswers(layout) : await s3Answers(layout);
    answering = answer.ok;
    detail = answer.detail;
  } else if (await portOpen(svc.host, svc.port)) {
    detail = `not started by this stack, but something else listens on ${svc.host}:${svc.port}`;
  } else {
    detail = 'not running';
  }
  return {
    name,
    server: serverName(layout, name),
    running: pid !== null,
    pid,
    address: svc.address,
    otherAddresses: name === 'kafka' ? [`${layout.kafka.host}:${layout.kafka.controllerPort} (controller)`] : [],
    answering,
    detail,
    logFile: svc.log,
    dataDir: svc.data,
    configFile: svc.config,
  };
}

/**
 * The stack's status; `secure`: with the secure broker's even when it does not
 * run; `cluster`: with the replicated cluster's nodes even when none runs.
 */
export async function collectStatus(layout: StackLayout, secure = false, cluster = false): Promise<StackStatus> {
  const httpsS3 = secure || secureS3Pids(layout).length > 0 ? secureS3Status(layout, serverName(layout, 's3')) : undefined;
  const [kafka, s3, tls, nodes] = await Promise.all([
    serviceStatus(layout, 'kafka'),
    serviceStatus(layout, 's3'),
    secure || securePids(layout).length > 0 ? secureStatus(layout, serverName(layout, 'kafka')) : undefined,
    cluster || clusterPids(layout).length > 0 ? clusterStatus(layout, serverName(layout, 'kafka')) : undefined,
  ]);
  return {
    dir: layout.dir,
    up: kafka.answering && s3.answering,
    kafka,
    s3,
    ...(tls ? { secure: tls } : {}),
    ...(nodes ? { cluster: nodes } : {}),
    ...(httpsS3 ? { secureS3: await httpsS3 } : {}),
  };
}
