// The replicated-broker drill (`npm run bench -- replicated`): the whole pipeline
// (sensor, enricher, archiver as separate processes) against the three-node
// cluster of `netmon stack up --nodes 3` (replication 3, min.insync.replicas 2,
// idempotent acks=all producers), under a steady load of real connections whose
// generator logs each one. Mid-stream, kill -9 the node that leads the busiest
// partition of the raw and events topics; start it again 30 s later. Then every
// logged connection must be archived exactly once: four events each, matched
// by port and time (eventsOf), no (run, seq) twice. Ends with `RESULT {json}`.
// Starts the cluster when it does not run, and then stops it at the end; uses
// the plain stack's S3 server. Needs root (the sensor's probes). The services'
// logs (stderr) are kept in a fresh /tmp/netmon-replicated-* directory, named at the end.
//   NETMON_BENCH_CONNECTIONS (default 1800, one each 40 ms: ~75 s), NETMON_BENCH_DOWN_S (default 30)
//   NETMON_BENCH_VICTIM: busiest (default: the leader of the busiest partition),
//     enricher-coordinator, archiver-coordinator (the group's coordinator), controller
//     (the active KRaft controller), enricher-state (the leader of the enricher's
//     changelog partition of the busiest raw partition): to aim at one case on purpose
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  type PartitionState,
  clusterLayout,
  clusterSettings,
  nodePid,
  partitionStates,
  stackDown,
  stackLayout,
  stackStatus,
  stackUp,
  startClusterNode,
} from '@netmon/cli';
import { type NetworkEvent, createKafka, createLogger } from '@netmon/common';
import type { LoggedConnection } from '@netmon/integration-tests';
import { parse } from 'yaml';

const CONNECTIONS = Number(process.env.NETMON_BENCH_CONNECTIONS ?? 1800);
const INTERVAL_MS = 40;
const DOWN_MS = Number(process.env.NETMON_BENCH_DOWN_S ?? 30) * 1000;
const VICTIMS = ['busiest', 'enricher-coordinator', 'archiver-coordinator', 'controller', 'enricher-state'] as const;
const VICTIM = (process.env.NETMON_BENCH_VICTIM ?? 'busiest') as (typeof VICTIMS)[number];
if (!VICTIMS.includes(VICTIM)) throw new Error(`NETMON_BENCH_VICTIM: one of ${VICTIMS.join(', ')}, found "${VICTIM}"`);

const layout = stackLayout();
const cluster = clusterLayout(layout);
// The services and the test helpers take their brokers from the environment;
// pipeline.ts makes its Kafka client when loaded, so it is loaded after this.
process.env.KAFKA_BROKERS = cluster.brokers.join(',');
process.env.NETMON_KAFKA_BROKERS = process.env.KAFKA_BROKERS;
const it: typeof import('@netmon/integration-tests') = require('@netmon/integration-tests');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** What happened when: incomplete connections are attributed to the phase they fell in. */
const phases: { name: string; at: number }[] = [{ name: 'start', at: 0 }];
const log = (msg: string) => {
  phases.push({ name: msg, at: Date.now() });
  console.log(`${new Date().toISOString().slice(11, 19)} ${msg}`);
};
const seconds = (ms: number) => Math.round(ms / 100) / 10;

interface Growth {
  topic: string;
  partition: number;
  grew: number;
}

/** How much each partition of `topics` grew (its end offset) over `windowMs`, the most first. */
async function growth(topics: string[], windowMs: number): Promise<Growth[]> {
  const admin = createKafka(clusterSettings(layout, 'netmon-bench'), createLogger('bench', 'fatal'), 'replicated').admin();
  await admin.connect();
  try {
    const ends = async () => {
      const out = new Map<string, number>();
      for (const topic of topics) for (const o of await admin.fetchTopicOffsets(topic)) out.set(`${topic}\0${o.partition}`, Number(o.high));
      return out;
    };
    const before = await ends();
    await sleep(windowMs);
    const after = await ends();
    return [...after]
      .map(([key, end]) => {
        const [topic, partition] = key.split('\0') as [string, string];
        return { topic, partition: Number(partition), grew: end - (before.get(key) ?? 0) };
      })
      .sort((a, b) => b.grew - a.grew);
  } finally {
    await admin.disconnect();
  }
}

/** The metadata of the cluster (all topics), or undefined when it does not answer this time. */
async function states(): Promise<PartitionState[] | undefined> {
  try {
    return await partitionStates(clusterSettings(layout, 'netmon-bench'));
  } catch {
    return undefined;
  }
}

/** Kafka's coordinator partition of a group or transactional id: abs(Java's String.hashCode) mod the partitions. */
function coordinatorPartition(id: string, partitions: number): number {
  let h = 0;
  for (let i = 0; i < id.length; i++) h = (Math.imul(31, h) + id.charCodeAt(i)) | 0;
  return (h & 0x7fffffff) % partitions;
}

/**
 * The active controller: the node that last logged becoming the quorum's
 * leader (the client protocol does not say; KRaft reports a random broker as
 * "controller"). Undefined when no node's log says so.
 */
function activeController(): number | undefined {
  let last: { at: string; id: number } | undefined;
  for (const n of cluster.nodes) {
    let text: string;
    try {
      text = readFileSync(n.log, 'utf8');
    } catch {
      continue;
    }
    // "[2026-11-29 23:46:46,891] INFO [RaftManager id=3] Completed transition to Leader(...": the stamps sort as text
    for (const m of text.matchAll(/^\[([^\]]+)\] INFO \[RaftManager id=(\d+)\] Completed transition to Leader\(/gm)) {
      if (!last || m[1]! >= last.at) last = { at: m[1]!, id: Number(m[2]) };
    }
  }
  return last?.id;
}

async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const got = await probe();
    if (got !== undefined) return got;
    await sleep(250);
  }
  throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
}

/**
 * startPipeline, again when a topic it just made is unknown to the broker it
 * asks: its helper (kafkajs createTopics with waitForLeaders) retries only
 * LEADER_NOT_AVAILABLE, and on a cluster a broker may not have the new topic's
 * metadata yet. A single broker never answers so.
 */
async function startPipeline(): Promise<Pipeline> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await it.startPipeline();
    } catch (err) {
      if (attempt >= 3 || (err as { type?: string }).type !== 'UNKNOWN_TOPIC_OR_PARTITION') throw err;
      log(`starting the pipeline: ${(err as Error).message}; again`);
      await sleep(1000);
    }
  }
}

type Pipeline = Awaited<ReturnType<typeof it.startPipeline>>;
/** The pipeline whose services still run, and where their logs go. */
let running: { p: Pipeline; logs: string } | undefined;

/**
 * Stops the services in stopPipelines' order, but one that has not exited 30 s
 * after SIGTERM is killed (and named) rather than waited for; then keeps each
 * one's log (stderr) in `dir`.
 */
async function stopServices(p: Pipeline, dir: string): Promise<string[]> {
  running = undefined;
  const hung: string[] = [];
  for (const service of ['sensor', 'enricher', 'archiver'] as const) {
    const child = p.children.get(service);
    if (!child) continue;
    const stopped = await Promise.race([child.stop('SIGTERM').then(() => true), sleep(30_000).then(() => false)]);
    if (!stopped) {
      hung.push(service);
      await child.stop('SIGKILL');
    }
    writeFileSync(path.join(dir, `${service}.log`), child.stderr());
  }
  return hung;
}

async function main() {
  const before = await stackStatus({ nodes: 3 });
  const ownCluster = !(before.cluster ?? []).every((n) => n.answering);
  if (ownCluster) {
    log('starting the 3-node cluster');
    await stackUp({ nodes: 3 });
  }
  try {
    await drill(ownCluster);
  } finally {
    if (running) {
      const { logs } = running;
      await stopServices(running.p, logs);
      console.log(`services' logs in ${logs}`);
    }
    await it.stopPipelines().catch(() => {});
    if (ownCluster) await stackDown({ nodes: 3 });
  }
}

async function drill(ownCluster: boolean) {
  // As on a long-running cluster, each node leads the partitions it is the
  // preferred replica of (after a restart, the first node up leads them all
  // until the cluster rebalances: leader.imbalance.check.interval.seconds).
  await waitFor('leadership balanced', 90_000, async () => {
    const s = await states();
    return s?.every((x) => x.leader === x.replicas[0]) ? s : undefined;
  });
  const p = await startPipeline();
  const logs = mkdtempSync(path.join(tmpdir(), 'netmon-replicated-'));
  running = { p, logs };
  const conf = parse(readFileSync(p.config, 'utf8')) as {
    topics: { raw: string; events: string };
    enricher: { group_id: string };
    archiver: { group_id: string };
  };
  const topics = conf.topics;
  const start = await states();
  const replicas = new Set(start?.filter((s) => s.topic === topics.raw || s.topic === topics.events).map((s) => s.replicas.length));
  log(`pipeline on ${cluster.brokers.join(',')}; raw ${topics.raw}, events ${topics.events}: ${[...replicas].join('/')} replicas`);
  const traffic = it.startTraffic(CONNECTIONS, INTERVAL_MS);
  await sleep(12_000);

  // The victim: the leader of the busiest partition of raw and events (unless NETMON_BENCH_VICTIM says otherwise).
  const grown = await growth([topics.raw, topics.events], 3000);
  const busiest = grown[0]!;
  const busiestRaw = grown.find((g) => g.topic === topics.raw)!;
  const pre = (await states())!;
  const offsets = pre.filter((s) => s.topic === '__consumer_offsets');
  const coordinatorOf = (group: string) => offsets.find((s) => s.partition === coordinatorPartition(group, offsets.length))?.leader;
  const controller = activeController();
  const chosen = {
    busiest: () => pre.find((s) => s.topic === busiest.topic && s.partition === busiest.partition)?.leader,
    'enricher-coordinator': () => coordinatorOf(conf.enricher.group_id),
    // the enricher's changelog: one partition per raw partition (services/enricher/src/rdkafka.ts)
    'enricher-state': () => pre.find((s) => s.topic === `${conf.enricher.group_id}.state` && s.partition === busiestRaw.partition)?.leader,
    'archiver-coordinator': () => coordinatorOf(conf.archiver.group_id),
    controller: () => controller,
  }[VICTIM]();
  if (chosen === undefined || chosen < 0) throw new Error(`no node to kill as ${VICTIM}`);
  const victim = chosen;
  const led = pre.filter((s) => s.leader === victim);
  const ledInternal = led.filter((s) => s.topic.startsWith('__')).map((s) => `${s.topic}[${s.partition}]`);
  // Failover is timed on the busiest partition when the victim leads it, else on one of the pipeline's, else any it leads.
  const watched =
    led.find((s) => s.topic === busiest.topic && s.partition === busiest.partition) ??
    led.find((s) => s.topic === topics.raw || s.topic === topics.events) ??
    led.find((s) => s.topic.startsWith('__')) ??
    led[0];
  if (!watched) throw new Error(`node ${victim} leads no partition`);
  // What else dies with it: the quorum's leader, the groups' coordinators
  const groupsLost = [conf.enricher.group_id, conf.archiver.group_id].filter((g) => coordinatorOf(g) === victim);
  const pid = nodePid(layout, victim);
  if (pid === undefined) throw new Error(`node ${victim} (${VICTIM}) does not run`);
  log(
    `kill -9 node ${victim} (pid ${pid}, ${VICTIM}): busiest partition ${busiest.topic}[${busiest.partition}] (+${busiest.grew} messages in 3 s); it leads ${led.length} partitions ` +
      `(${ledInternal.length} internal: ${ledInternal.join(', ') || 'none'}); active controller: node ${controller ?? '?'}; ` +
      `coordinator of ${groupsLost.join(', ') || 'neither group'}`,
  );
  const killedAt = Date.now();
  process.kill(pid, 'SIGKILL');

  // Failover: a new leader of that partition, out of the in-sync replicas left.
  const after = await waitFor('a new leader', 60_000, async () => {
    const s = (await states())?.find((x) => x.topic === watched.topic && x.partition === watched.partition);
    return s && s.leader !== victim && s.leader >= 0 ? s : undefined;
  });
  const failoverMs = Date.now() - killedAt;
  log(`node ${after.leader} leads ${watched.topic}[${watched.partition}] after ${seconds(failoverMs)} s, in sync: ${after.isr.join(',')}`);

  await sleep(Math.max(0, killedAt + DOWN_MS - Date.now()));
  log(`starting node ${victim} again`);
  const restartAt = Date.now();
  await startClusterNode(victim, { log: (m) => console.log(`  ${m}`) });
  const restartMs = Date.now() - restartAt;
  log(`node ${victim} answers (${seconds(restartMs)} s)`);
  await waitFor('every partition back in sync', 120_000, async () => {
    const s = await states();
    return s?.every((x) => x.isr.length === x.replicas.length) ? s : undefined;
  });
  const inSyncMs = Date.now() - restartAt;
  log(`every partition has its ${[...replicas].join('/')} replicas in sync again (${seconds(inSyncMs)} s after the restart)`);

  const trafficCode = await traffic.exited;
  const exited = [...p.children].filter(([, c]) => c.proc.exitCode !== null || c.proc.signalCode !== null).map(([name]) => name);
  const logged = traffic
    .stdout()
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as LoggedConnection);
  const pidOfTraffic = logged[0]!.pid;
  log(`${logged.length} connections logged (traffic exit ${trafficCode}); services that exited: ${exited.join(', ') || 'none'}`);
  const ofTraffic = (events: NetworkEvent[]) => events.filter((e) => e.process.pid === pidOfTraffic && e.network_event.dport !== 0);
  const incomplete = (mine: NetworkEvent[]) => logged.filter((c) => it.eventsOf(mine, c).length !== 4).length;
  // The archive, read again until it is complete or 3 minutes passed; the S3
  // server is the plain stack's, which other work may stop for a while.
  const deadline = Date.now() + 180_000;
  const read = async (): Promise<NetworkEvent[] | undefined> => {
    try {
      return ofTraffic(await it.archived(p));
    } catch (err) {
      if (Date.now() > deadline) throw err;
      log(`reading the archive: ${(err as Error).message}; again`);
      return undefined;
    }
  };
  let mine = (await read()) ?? [];
  while (incomplete(mine) > 0 && Date.now() < deadline) {
    await sleep(3000);
    mine = (await read()) ?? mine;
  }
  const ids = mine.map((e) => `${e.source.run_id}/${e.source.seq}`);
  const duplicates = ids.length - new Set(ids).size;
  const missing = incomplete(mine);
  const perPhase = new Map<string, number>();
  for (const c of logged) {
    const n = it.eventsOf(mine, c).length;
    if (n === 4) continue;
    const phase = `${phases.filter((ph) => ph.at <= c.at).at(-1)!.name} (${n} events)`;
    perPhase.set(phase, (perPhase.get(phase) ?? 0) + 1);
  }
  for (const [phase, n] of perPhase) console.log(`incomplete after "${phase}": ${n}`);
  const hung = await stopServices(p, logs);
  log(`services stopped${hung.length ? `; killed after 30 s of SIGTERM: ${hung.join(', ')}` : ''}; their logs in ${logs}`);
  await it.stopPipelines();
  console.log(
    `connections ${logged.length}, events ${mine.length} (expected ${logged.length * 4}); incomplete ${missing}; duplicates ${duplicates}; ` +
      `failover ${seconds(failoverMs)} s, restart ${seconds(restartMs)} s, back in sync ${seconds(inSyncMs)} s after it`,
  );
  const result = {
    bench: 'replicated',
    nodes: cluster.nodes.length,
    replicas: [...replicas],
    own_cluster: ownCluster,
    connections: logged.length,
    events: mine.length,
    killed: {
      node: victim,
      as: VICTIM,
      busiest_partition: `${busiest.topic}[${busiest.partition}]`,
      timed_partition: `${watched.topic}[${watched.partition}]`,
      partitions_led: led.length,
      internal_led: ledInternal,
      active_controller: controller === undefined ? null : controller === victim,
      group_coordinator_of: groupsLost,
      down_s: seconds(restartAt - killedAt),
    },
    failover_s: seconds(failoverMs),
    restart_s: seconds(restartMs),
    back_in_sync_s: seconds(inSyncMs),
    services_exited: exited,
    services_hung_on_sigterm: hung,
    targets: {
      incomplete_connections: { value: missing, target: 0, met: missing === 0 },
      duplicate_events: { value: duplicates, target: 0, met: duplicates === 0 },
    },
  };
  console.log(`RESULT ${JSON.stringify(result)}`);
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
