// `netmon stack up --nodes 3`: a replicated Kafka cluster, next to the plain
// broker, for what one broker cannot show: a broker lost under load.
//   node i (1..3)  PLAINTEXT://127.0.0.1:929(1+i)   controller 127.0.0.1:929(4+i)
// Three combined nodes (process.roles=broker,controller) with a static quorum of
// the three controllers, rather than three brokers and a separate quorum: on a
// 2-core machine three JVMs are what we can afford, and a combined node is the
// harder case to survive (killing the leader of a partition may kill the active
// controller and a group or transaction coordinator at the same time); the quorum
// of three still outlives one node. A static voter set (controller.quorum.voters)
// needs no directory ids at format time, and the set never changes here.
// Every topic gets 3 replicas and min.insync.replicas=2: with one node down,
// acks=all writes go on; with two down they stop rather than lose data.
// State lives in <stack dir>/kafka-cluster/: cluster.id (the one id every node is
// formatted with), node-<i>/server.properties and node-<i>/data; logs in
// <stack dir>/logs/kafka-node-<i>.log, pid files in <stack dir>/run/.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DEFAULT_TOPICS, type KafkaSettings, createKafka, createLogger, withAdmin } from '@netmon/common';
import { StackError, tailOf } from './errors';
import { classPath } from './fetch';
import { TOPIC_PARTITIONS, brokerAnswers, brokerJvmArgs, newClusterId, warmUp } from './kafka';
import type { StackLayout } from './layout';
import { findByMarkers, isAlive, portOpen, runningPid, sleep, spawnDetached, stopService } from './process';
import type { ServiceStatus } from './status';
import { findJava } from './tools';

export const CLUSTER_HOST = '127.0.0.1';
export const CLUSTER_SIZE = 3;
/** Node i's client listener is CLUSTER_BASE_PORT + i - 1 (9292, 9293, 9294), its controller CLUSTER_BASE_PORT + CLUSTER_SIZE + i - 1 (9295…9297). */
export const CLUSTER_BASE_PORT = 9292;
export const CLUSTER_REPLICATION_FACTOR = 3;
export const CLUSTER_MIN_INSYNC_REPLICAS = 2;
/**
 * Heap of each node. The plain broker has 1 GB; three of those would not fit
 * beside everyone else's work, and a test cluster's page cache, not its heap,
 * holds the data. Kafka's own minimum for a small broker is a few hundred MB.
 */
const CLUSTER_HEAP = ['-Xms128m', '-Xmx384m'];

export interface ClusterNode {
  /** node.id, 1..CLUSTER_SIZE */
  id: number;
  /** kafka-node-<id>: its name in status, logs and pid files */
  name: `kafka-node-${number}`;
  host: string;
  port: number;
  controllerPort: number;
  /** host:port of the client listener */
  address: string;
  dir: string;
  config: string;
  data: string;
  log: string;
  pidFile: string;
  markers: string[];
}

export interface ClusterLayout {
  dir: string;
  /** The cluster id every node is formatted with, made once. */
  idFile: string;
  nodes: ClusterNode[];
  /** The client listeners, node 1 first. */
  brokers: string[];
}

export function clusterLayout(layout: StackLayout): ClusterLayout {
  const dir = path.join(layout.dir, 'kafka-cluster');
  const nodes = Array.from({ length: CLUSTER_SIZE }, (_, i): ClusterNode => {
    const id = i + 1;
    const name = `kafka-node-${id}` as const;
    const port = CLUSTER_BASE_PORT + i;
    const nodeDir = path.join(dir, `node-${id}`);
    return {
      id,
      name,
      host: CLUSTER_HOST,
      port,
      controllerPort: CLUSTER_BASE_PORT + CLUSTER_SIZE + i,
      address: `${CLUSTER_HOST}:${port}`,
      dir: nodeDir,
      config: path.join(nodeDir, 'server.properties'),
      data: path.join(nodeDir, 'data'),
      log: path.join(layout.logs, `${name}.log`),
      pidFile: path.join(layout.run, `${name}.pid`),
      markers: [`-Dnetmon.stack.service=${name}`, `-Dnetmon.stack.dir=${layout.dir}`],
    };
  });
  return { dir, idFile: path.join(dir, 'cluster.id'), nodes, brokers: nodes.map((n) => n.address) };
}

/** The cluster as the services' Kafka settings (plain text, every node a bootstrap server). */
export function clusterSettings(layout: StackLayout, clientId = 'netmon-stack'): KafkaSettings {
  return { brokers: clusterLayout(layout).brokers, clientId, compression: 'none', ssl: false };
}

function node(c: ClusterLayout, id: number): ClusterNode {
  const n = c.nodes.find((x) => x.id === id);
  if (!n) throw new StackError('kafka cluster', `no node ${id} (nodes ${c.nodes.map((x) => x.id).join(', ')})`);
  return n;
}

function renderConfig(c: ClusterLayout, n: ClusterNode): string {
  const voters = c.nodes.map((x) => `${x.id}@${x.host}:${x.controllerPort}`).join(',');
  return `# Node ${n.id} of the replicated local cluster of \`netmon stack up --nodes ${CLUSTER_SIZE}\`
# (written by cli/src/stack/cluster.ts). Broker and controller in one JVM; a static
# quorum of the ${CLUSTER_SIZE} controllers.
process.roles=broker,controller
node.id=${n.id}
controller.quorum.voters=${voters}
listeners=PLAINTEXT://${n.host}:${n.port},CONTROLLER://${n.host}:${n.controllerPort}
advertised.listeners=PLAINTEXT://${n.host}:${n.port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=${n.data}
metadata.log.dir=${n.data}

# Replicated: every topic on all ${CLUSTER_SIZE} nodes, an acks=all write needs ${CLUSTER_MIN_INSYNC_REPLICAS} of them
default.replication.factor=${CLUSTER_REPLICATION_FACTOR}
min.insync.replicas=${CLUSTER_MIN_INSYNC_REPLICAS}
offsets.topic.replication.factor=${CLUSTER_REPLICATION_FACTOR}
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=${CLUSTER_REPLICATION_FACTOR}
transaction.state.log.min.isr=${CLUSTER_MIN_INSYNC_REPLICAS}
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=${CLUSTER_REPLICATION_FACTOR}
share.coordinator.state.topic.min.isr=${CLUSTER_MIN_INSYNC_REPLICAS}
share.coordinator.state.topic.num.partitions=1
# A replica that is not in sync never becomes leader: no acknowledged write is lost
unclean.leader.election.enable=false
# Leadership goes back to the preferred replicas within 10 s (default 300 s) of a
# node's return: after a restart the load is spread as on a long-running cluster
auto.leader.rebalance.enable=true
leader.imbalance.check.interval.seconds=10

# ${CLUSTER_SIZE} JVMs on a 2-core test machine: few threads each
num.network.threads=2
num.io.threads=2
num.replica.fetchers=1
background.threads=2
num.partitions=${TOPIC_PARTITIONS}
num.recovery.threads.per.data.dir=1
auto.create.topics.enable=true
delete.topic.enable=true
group.initial.rebalance.delay.ms=0

# test data: keep it small and short-lived
log.retention.hours=24
log.segment.bytes=67108864
log.retention.check.interval.ms=60000
`;
}

/** The cluster id: made once, then every node is formatted with it. */
function ensureClusterId(c: ClusterLayout): string {
  try {
    return fs.readFileSync(c.idFile, 'utf8').trim();
  } catch {
    // absent: make one, unless a node was formatted with the lost one
  }
  const formatted = c.nodes.filter((n) => fs.existsSync(path.join(n.data, 'meta.properties')));
  if (formatted.length > 0) {
    throw new StackError(
      'kafka cluster',
      `${c.idFile} is gone but ${formatted.map((n) => n.data).join(', ')} hold a cluster: run \`netmon stack down --nodes ${CLUSTER_SIZE}\` and remove ${c.dir} to start afresh`,
    );
  }
  const id = newClusterId();
  fs.mkdirSync(c.dir, { recursive: true });
  fs.writeFileSync(c.idFile, `${id}\n`);
  return id;
}

/** server.properties of a node, and `kafka-storage format` of its data dir once. */
async function prepareNode(layout: StackLayout, c: ClusterLayout, n: ClusterNode, log: (msg: string) => void): Promise<void> {
  fs.mkdirSync(n.dir, { recursive: true });
  fs.writeFileSync(n.config, renderConfig(c, n));
  if (fs.existsSync(path.join(n.data, 'meta.properties'))) return;
  const id = ensureClusterId(c);
  fs.mkdirSync(n.data, { recursive: true });
  fs.mkdirSync(path.dirname(n.log), { recursive: true });
  log(`${n.name}: formatting storage in ${n.data} (cluster id ${id})`);
  // controller.quorum.voters names the quorum: no --standalone / --initial-controllers
  const args = [`-Dlog4j2.configurationFile=${layout.kafka.log4jTools}`, '-cp', classPath(layout.kafka), 'kafka.tools.StorageTool'];
  args.push('format', '--cluster-id', id, '--config', n.config);
  fs.appendFileSync(n.log, `\n=== ${new Date().toISOString()} kafka-storage format --cluster-id ${id}\n`);
  const fd = fs.openSync(n.log, 'a');
  try {
    const code = await new Promise<number | string>((resolve) => {
      const child = spawn(findJava(), args, { stdio: ['ignore', fd, fd] });
      child.once('error', (err) => resolve(err.message));
      child.once('close', (code) => resolve(code ?? 'killed'));
    });
    if (code !== 0) throw new StackError(`format ${n.name} storage`, `StorageTool exited with ${code}${tailOf(n.log)}`, n.log);
  } finally {
    fs.closeSync(fd);
  }
}

/** The java command line of a node: the plain broker's, with a smaller heap. */
function nodeJvmArgs(layout: StackLayout, n: ClusterNode): string[] {
  const args = brokerJvmArgs(layout, n.markers, n.config).filter((a) => !a.startsWith('-Xms') && !a.startsWith('-Xmx'));
  return [...CLUSTER_HEAP, ...args];
}

/** The pid of a node when it runs (pid file, else its markers). */
export function nodePid(layout: StackLayout, id: number): number | undefined {
  const n = node(clusterLayout(layout), id);
  return runningPid(n.pidFile, n.markers);
}

/** Whether a node answers on its own listener (librdkafka bootstrapped with it alone). */
export function nodeAnswers(n: ClusterNode, timeoutMs = 4000): Promise<{ ok: boolean; detail: string }> {
  return brokerAnswers({ brokers: [n.address], clientId: 'netmon-stack', compression: 'none', ssl: false }, timeoutMs);
}

async function waitNodeReady(n: ClusterNode, pid: number, timeoutMs = 120_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < until) {
    if (!isAlive(pid)) throw new StackError(`start ${n.name}`, `the node (pid ${pid}) exited during start-up${tailOf(n.log)}`, n.log);
    const answer = await nodeAnswers(n, 3000);
    if (answer.ok) return;
    last = answer.detail;
    await sleep(500);
  }
  throw new StackError(`start ${n.name}`, `no answer on ${n.address} within ${timeoutMs / 1000} s (last: ${last})${tailOf(n.log)}`, n.log);
}

/** Launches a node that does not run (formatting it the first time); does not wait for it. */
async function launchNode(layout: StackLayout, c: ClusterLayout, n: ClusterNode, log: (msg: string) => void): Promise<{ pid: number; started: boolean }> {
  const running = runningPid(n.pidFile, n.markers);
  if (running !== undefined) return { pid: running, started: false };
  for (const port of [n.port, n.controllerPort]) {
    if (await portOpen(n.host, port)) {
      throw new StackError(`start ${n.name}`, `${n.host}:${port} is taken by a process this stack did not start (see: ss -ltnp 'sport = :${port}')`);
    }
  }
  await prepareNode(layout, c, n, log);
  log(`${n.name}: starting (log ${n.log})`);
  const pid = await spawnDetached({ command: findJava(), args: nodeJvmArgs(layout, n), cwd: n.dir, logFile: n.log, pidFile: n.pidFile });
  return { pid, started: true };
}

/**
 * Starts one node (the others keep running) and resolves once it answers: what
 * the failover drill does after a kill -9. A node alone answers only once a
 * majority of the quorum runs.
 */
export async function startNode(layout: StackLayout, id: number, log: (msg: string) => void): Promise<number> {
  const c = clusterLayout(layout);
  const n = node(c, id);
  const since = Date.now();
  const { pid, started } = await launchNode(layout, c, n, log);
  await waitNodeReady(n, pid);
  if (started) log(`${n.name}: ready on ${n.address}, pid ${pid} (${((Date.now() - since) / 1000).toFixed(1)} s)`);
  return pid;
}

/** Creates the Netmon topics that are missing, TOPIC_PARTITIONS partitions and CLUSTER_REPLICATION_FACTOR replicas each. */
async function ensureClusterTopics(layout: StackLayout, log: (msg: string) => void): Promise<void> {
  const c = clusterLayout(layout);
  try {
    const created = await withAdmin(clusterSettings(layout), async (admin) => {
      const made: string[] = [];
      for (const topic of Object.values(DEFAULT_TOPICS)) {
        if (await admin.createTopic(topic, TOPIC_PARTITIONS, CLUSTER_REPLICATION_FACTOR, {}, 30_000)) made.push(topic);
      }
      return made;
    });
    if (created.length > 0) {
      log(`kafka cluster: created topics ${created.join(', ')} (${TOPIC_PARTITIONS} partitions, ${CLUSTER_REPLICATION_FACTOR} replicas each)`);
    }
  } catch (err) {
    throw new StackError('create kafka cluster topics', (err as Error).message, c.nodes[0]!.log, { cause: err });
  }
}

/**
 * Starts every node that does not run (all at once: a node waits for a majority
 * of the quorum), waits until each answers, creates the default topics and
 * warms the coordinators up.
 */
export async function startCluster(layout: StackLayout, log: (msg: string) => void): Promise<void> {
  const c = clusterLayout(layout);
  const since = Date.now();
  const launched = [];
  for (const n of c.nodes) launched.push({ n, ...(await launchNode(layout, c, n, log)) });
  const results = await Promise.allSettled(launched.map(({ n, pid }) => waitNodeReady(n, pid)));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  if (launched.some((l) => l.started)) {
    log(
      `kafka cluster: ${c.nodes.length} nodes ready on ${c.brokers.join(', ')}, pids ${launched.map((l) => l.pid).join(', ')} (${((Date.now() - since) / 1000).toFixed(1)} s)`,
    );
  }
  await ensureClusterTopics(layout, log);
  await warmUp(clusterSettings(layout), c.nodes[0]!.log);
}

/** Stops every node (SIGTERM, SIGKILL after the grace period); a no-op when none runs. */
export async function stopCluster(layout: StackLayout, log: (msg: string) => void, graceMs: number): Promise<void> {
  const c = clusterLayout(layout);
  await Promise.all(c.nodes.map((n) => stopService(n.name, n.pidFile, n.markers, graceMs, log)));
}

/** Pids of the cluster's nodes that run. */
export function clusterPids(layout: StackLayout): number[] {
  return clusterLayout(layout).nodes.flatMap((n) => findByMarkers(n.markers));
}

/** One partition as the cluster's metadata gives it. */
export interface PartitionState {
  topic: string;
  partition: number;
  leader: number;
  replicas: number[];
  isr: number[];
}

/** Leader, replicas and in-sync replicas of every partition of `topics` (all topics when omitted), from the metadata. */
export async function partitionStates(settings: KafkaSettings, topics?: string[]): Promise<PartitionState[]> {
  const admin = createKafka(settings, createLogger('stack', 'fatal'), 'cluster').admin();
  await admin.connect();
  try {
    const md = await admin.fetchTopicMetadata(topics ? { topics } : undefined);
    return md.topics.flatMap((t) => t.partitions.map((p) => ({ topic: t.name, partition: p.partitionId, leader: p.leader, replicas: p.replicas, isr: p.isr })));
  } finally {
    await admin.disconnect();
  }
}

/** The cluster's nodes' statuses, each with the partitions it leads and the cluster's under-replicated count. */
export async function clusterStatus(layout: StackLayout, server: string): Promise<ServiceStatus[]> {
  const c = clusterLayout(layout);
  const answers = await Promise.all(
    c.nodes.map(async (n) => {
      const pid = runningPid(n.pidFile, n.markers) ?? null;
      const answer = pid !== null ? await nodeAnswers(n) : { ok: false, detail: (await portOpen(n.host, n.port)) ? '' : 'not running' };
      if (pid === null && answer.detail === '') answer.detail = `not started by this stack, but something else listens on ${n.address}`;
      return { n, pid, answer };
    }),
  );
  let states: PartitionState[] | undefined;
  if (answers.some((a) => a.answer.ok)) {
    const live = answers.filter((a) => a.answer.ok).map((a) => a.n.address);
    states = await partitionStates({ brokers: live, clientId: 'netmon-stack', compression: 'none', ssl: false }).catch(() => undefined);
  }
  const underReplicated = states?.filter((p) => p.isr.length < p.replicas.length).length;
  return answers.map(({ n, pid, answer }) => ({
    name: n.name,
    server: server.replace('broker+controller', `broker+controller, node ${n.id} of ${CLUSTER_SIZE}`),
    running: pid !== null,
    pid,
    address: n.address,
    otherAddresses: [`${n.host}:${n.controllerPort} (controller)`],
    answering: answer.ok,
    detail:
      answer.ok && states
        ? `${answer.detail}; leads ${states.filter((p) => p.leader === n.id).length} of ${states.length} partitions; cluster: ${underReplicated} under-replicated (replication ${CLUSTER_REPLICATION_FACTOR}, min.insync ${CLUSTER_MIN_INSYNC_REPLICAS})`
        : answer.detail,
    logFile: n.log,
    dataDir: n.data,
    configFile: n.config,
  }));
}
