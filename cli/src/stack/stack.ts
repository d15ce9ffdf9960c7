// `stack up|down|status` and the per-service start/stop helpers, as functions.
import { CLUSTER_SIZE, startCluster, startNode, stopCluster } from './cluster';
import { ensureJars } from './fetch';
import { StackError } from './errors';
import { ensureTopics, formatStorage, launchKafka, waitKafkaReady, warmUpCoordinators } from './kafka';
import { type ServiceName, type StackLayout, stackLayout } from './layout';
import { portOpen, runningPid, stopService, withLock } from './process';
import { ensureBucket, launchS3, waitS3Ready } from './s3';
import { startSecureS3, stopSecureS3 } from './s3-secure';
import { startSecure, stopSecure } from './secure';
import { type StackStatus, collectStatus, markersOf, serviceStatus, type ServiceStatus } from './status';
import { findJava } from './tools';

export interface StackOptions {
  /** State directory; default $NETMON_STACK_DIR, else <repo root>/.stack. */
  dir?: string;
  /** Progress lines; default: stderr. */
  log?: (msg: string) => void;
  /**
   * The secure servers alone, the broker (secure.ts) and the HTTPS S3
   * (s3-secure.ts): `up` starts them, `down` stops them (plain `down` stops
   * them too), `status` reports them even when they do not run.
   */
  secure?: boolean;
  /**
   * 3: the replicated cluster (cluster.ts) alone: `up` starts it, `down` stops
   * it (plain `down` stops it too), `status` reports it even when it does not
   * run. 1 (or absent): the plain stack.
   */
  nodes?: 1 | typeof CLUSTER_SIZE;
}

/** SIGTERM grace before SIGKILL: Kafka shuts down in a few seconds, S3Proxy at once. */
const GRACE_MS: Record<ServiceName | 'kafka-secure' | 's3-secure' | 'kafka-cluster', number> = {
  kafka: 30_000,
  s3: 10_000,
  'kafka-secure': 30_000,
  's3-secure': 10_000,
  'kafka-cluster': 30_000,
};
const LOCK_WAIT_MS = 300_000;

const stderrLog = (msg: string) => process.stderr.write(`netmon stack: ${msg}\n`);

function context(opts: StackOptions = {}): { layout: StackLayout; log: (msg: string) => void } {
  return { layout: stackLayout(opts.dir), log: opts.log ?? stderrLog };
}

const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(1)} s`;

async function startIn(layout: StackLayout, name: ServiceName, log: (msg: string) => void): Promise<void> {
  const svc = layout[name];
  const markers = markersOf(layout, name);
  const running = runningPid(svc.pidFile, markers);
  if (running !== undefined) {
    await (name === 'kafka' ? waitKafkaReady(layout, running) : waitS3Ready(layout, running));
    return;
  }
  const ports = name === 'kafka' ? [layout.kafka.port, layout.kafka.controllerPort] : [svc.port];
  for (const port of ports) {
    if (await portOpen(svc.host, port)) {
      throw new StackError(`start ${name}`, `${svc.host}:${port} is taken by a process this stack did not start (see: ss -ltnp 'sport = :${port}')`);
    }
  }
  await ensureJars(svc, log);
  if (name === 'kafka') await formatStorage(layout, log);
  const started = Date.now();
  log(`${name}: starting (log ${svc.log})`);
  const pid = name === 'kafka' ? await launchKafka(layout) : await launchS3(layout);
  await (name === 'kafka' ? waitKafkaReady(layout, pid) : waitS3Ready(layout, pid));
  log(`${name}: ready on ${svc.address}, pid ${pid} (${seconds(started)})`);
}

async function stopIn(layout: StackLayout, name: ServiceName, log: (msg: string) => void): Promise<void> {
  if ((await stopService(name, layout[name].pidFile, markersOf(layout, name), GRACE_MS[name], log)) === 0) log(`${name}: not running`);
}

/** Runs every task, then throws the first failure (so none is left half-awaited). */
async function all(tasks: Promise<unknown>[]): Promise<void> {
  const results = await Promise.allSettled(tasks);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

async function provision(layout: StackLayout, log: (msg: string) => void): Promise<void> {
  await all([ensureTopics(layout, log).then(() => warmUpCoordinators(layout)), ensureBucket(layout, log)]);
}

/**
 * Starts Kafka and S3Proxy (fetching jars and formatting storage the first time),
 * creates the Netmon topics and the bucket, and resolves once both answer.
 * A no-op, apart from saying so, when the stack already runs.
 */
export async function stackUp(opts: StackOptions = {}): Promise<StackStatus> {
  const { layout, log } = context(opts);
  const started = Date.now();
  if (opts.secure) return secureUp(layout, log);
  if (opts.nodes === CLUSTER_SIZE) return clusterUp(layout, log);
  return withLock(layout.lockFile, LOCK_WAIT_MS, async () => {
    const before = await collectStatus(layout);
    if (before.up) {
      await provision(layout, log);
      log(`already running (kafka pid ${before.kafka.pid} on ${before.kafka.address}, s3 pid ${before.s3.pid} on ${before.s3.address}); nothing to do`);
      return before;
    }
    findJava();
    // One Maven at a time: both share ~/.m2. Then both servers start at once.
    await ensureJars(layout.kafka, log);
    await ensureJars(layout.s3, log);
    try {
      await all([startIn(layout, 'kafka', log), startIn(layout, 's3', log)]);
      await provision(layout, log);
    } catch (err) {
      log('start-up failed; `netmon stack down` stops whatever did start');
      throw err;
    }
    const status = await collectStatus(layout);
    log(`stack ready in ${seconds(started)}: kafka ${status.kafka.address}, s3 ${status.s3.address} (state in ${layout.dir})`);
    return status;
  });
}

/**
 * `stack up --secure`: the secure broker (TLS, SCRAM users, ACLs) next to
 * whatever else runs; a no-op, apart from topics and ACLs, when it runs.
 */
async function secureUp(layout: StackLayout, log: (msg: string) => void): Promise<StackStatus> {
  return withLock(layout.lockFile, LOCK_WAIT_MS, async () => {
    findJava();
    await ensureJars(layout.kafka, log);
    await ensureJars(layout.s3, log);
    try {
      await all([startSecure(layout, log), startSecureS3(layout, log)]);
    } catch (err) {
      log('start-up failed; `netmon stack down --secure` stops whatever did start');
      throw err;
    }
    return collectStatus(layout, true);
  });
}

/**
 * `stack up --nodes 3`: the replicated cluster next to whatever else runs; a
 * no-op, apart from topics, when it runs.
 */
async function clusterUp(layout: StackLayout, log: (msg: string) => void): Promise<StackStatus> {
  return withLock(layout.lockFile, LOCK_WAIT_MS, async () => {
    findJava();
    await ensureJars(layout.kafka, log);
    try {
      await startCluster(layout, log);
    } catch (err) {
      log(`start-up failed; \`netmon stack down --nodes ${CLUSTER_SIZE}\` stops whatever did start`);
      throw err;
    }
    return collectStatus(layout, false, true);
  });
}

/**
 * Stops both servers, the secure ones and the replicated cluster if they run
 * (SIGTERM, then SIGKILL after a grace period); leaves no process behind.
 * `secure`: the secure servers only (broker and HTTPS S3); `nodes: 3`: the cluster only.
 */
export async function stackDown(opts: StackOptions = {}): Promise<StackStatus> {
  const { layout, log } = context(opts);
  const cluster = opts.nodes === CLUSTER_SIZE;
  return withLock(layout.lockFile, LOCK_WAIT_MS, async () => {
    if (cluster) {
      await stopCluster(layout, log, GRACE_MS['kafka-cluster']);
      return collectStatus(layout, false, true);
    }
    const secure = [stopSecure(layout, log, GRACE_MS['kafka-secure']), stopSecureS3(layout, log, GRACE_MS['s3-secure'])];
    await all(opts.secure ? secure : [stopIn(layout, 'kafka', log), stopIn(layout, 's3', log), ...secure, stopCluster(layout, log, GRACE_MS['kafka-cluster'])]);
    return collectStatus(layout, opts.secure);
  });
}

export async function stackStatus(opts: StackOptions = {}): Promise<StackStatus> {
  return collectStatus(context(opts).layout, opts.secure, opts.nodes === CLUSTER_SIZE);
}

/** Starts one node of the replicated cluster (the others keep running); resolves once it answers, to its pid. */
export async function startClusterNode(id: number, opts: StackOptions = {}): Promise<number> {
  const { layout, log } = context(opts);
  return withLock(layout.lockFile, LOCK_WAIT_MS, () => startNode(layout, id, log));
}

/** Starts the broker alone (the rest keeps running); resolves once it answers. */
export async function startKafka(opts: StackOptions = {}): Promise<ServiceStatus> {
  const { layout, log } = context(opts);
  return withLock(layout.lockFile, LOCK_WAIT_MS, async () => {
    await startIn(layout, 'kafka', log);
    return serviceStatus(layout, 'kafka');
  });
}

/** Stops the broker alone (SIGTERM, then SIGKILL); S3 keeps running. */
export async function stopKafka(opts: StackOptions = {}): Promise<ServiceStatus> {
  const { layout, log } = context(opts);
  return withLock(layout.lockFile, LOCK_WAIT_MS, async () => {
    await stopIn(layout, 'kafka', log);
    return serviceStatus(layout, 'kafka');
  });
}

/** Starts S3Proxy alone; resolves once it answers. */
export async function startS3(opts: StackOptions = {}): Promise<ServiceStatus> {
  const { layout, log } = context(opts);
  return withLock(layout.lockFile, LOCK_WAIT_MS, async () => {
    await startIn(layout, 's3', log);
    return serviceStatus(layout, 's3');
  });
}

/** Stops S3Proxy alone; Kafka keeps running. */
export async function stopS3(opts: StackOptions = {}): Promise<ServiceStatus> {
  const { layout, log } = context(opts);
  return withLock(layout.lockFile, LOCK_WAIT_MS, async () => {
    await stopIn(layout, 's3', log);
    return serviceStatus(layout, 's3');
  });
}
