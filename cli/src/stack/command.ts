// `netmon stack up|down|status [--secure | --nodes 3] [--json] [--dir DIR] [--help]`.
import { UsageError, parseFlags, stringFlag } from '@netmon/common';
import { CLUSTER_BASE_PORT, CLUSTER_MIN_INSYNC_REPLICAS, CLUSTER_REPLICATION_FACTOR, CLUSTER_SIZE } from './cluster';
import type { ServiceStatus, StackStatus } from './status';
import { stackDown, stackStatus, stackUp } from './stack';

export const STACK_HELP = `Usage: netmon stack <command> [options]

The local infrastructure, started natively on loopback (no Docker):
  Apache Kafka (KRaft, one node) on 127.0.0.1:9092, controller 127.0.0.1:9093
  S3Proxy (S3 API, filesystem backend) on http://127.0.0.1:9000, bucket netmon-archive
Jars come from Maven Central through mvn (cached in ~/.m2); needs Java 17+ and Maven.

With --secure, a second broker next to them, as a production cluster demands it
(docs/security.md): SASL_SSL with SCRAM-SHA-512 on 127.0.0.1:9192 (controller
127.0.0.1:9193, mutual TLS), a local CA and broker certificate made with openssl,
SCRAM users admin, netmon-sensor, netmon-enricher, netmon-archiver (random
passwords, created at format time), StandardAuthorizer with least-privilege ACLs
per service. Client configs per user: <dir>/kafka-secure/clients/<user>.yaml.
And an S3Proxy over HTTPS only on https://127.0.0.1:9443 (its own CA and server
certificate made with openssl, its own data, bucket netmon-archive, every
request's headers in <dir>/logs/s3-secure-requests.log); its s3: settings,
with s3.ca_file: <dir>/s3-secure/client.yaml.

With --nodes ${CLUSTER_SIZE}, a replicated cluster next to them (the failover drill): ${CLUSTER_SIZE} KRaft nodes (broker
and controller each, a quorum of the ${CLUSTER_SIZE}) on 127.0.0.1:${CLUSTER_BASE_PORT}-${CLUSTER_BASE_PORT + CLUSTER_SIZE - 1} (controllers
${CLUSTER_BASE_PORT + CLUSTER_SIZE}-${CLUSTER_BASE_PORT + 2 * CLUSTER_SIZE - 1}), replication factor ${CLUSTER_REPLICATION_FACTOR}, min.insync.replicas ${CLUSTER_MIN_INSYNC_REPLICAS}, data in
<dir>/kafka-cluster/. Point the services at it with
KAFKA_BROKERS=${Array.from({ length: CLUSTER_SIZE }, (_, i) => `127.0.0.1:${CLUSTER_BASE_PORT + i}`).join(',')}.

Commands:
  up       fetch jars (first time), format storage (first time), start both servers,
           create the topics and the bucket; waits until both answer. No-op if running.
           --secure: the secure broker and HTTPS S3 only (topics, ACLs, bucket too).
           --nodes ${CLUSTER_SIZE}: the replicated cluster only (topics too).
  down     stop both servers, the secure ones and the cluster (SIGTERM, SIGKILL
           after a grace period); --secure / --nodes ${CLUSTER_SIZE}: that one only
  status   what runs where: pid, address, log file, data dir, whether it answers.
           Exit code 0 when both answer (--secure: when the secure broker and S3 answer;
           --nodes ${CLUSTER_SIZE}: when every node answers), 3 otherwise.

Options:
  --secure    the secure broker and the HTTPS S3 (see above)
  --nodes N   1: the plain stack (the default); ${CLUSTER_SIZE}: the replicated cluster (see above)
  --dir DIR   state directory (jars, data, logs, pids); default $NETMON_STACK_DIR,
              else <repo root>/.stack
  --json      (status) print the status as JSON
  -h, --help  this help
`;

function describe(s: ServiceStatus): string {
  const state = s.running ? `running, pid ${s.pid}, ${s.answering ? 'answering' : 'NOT answering'}` : 'stopped';
  return [
    `${s.name.length < 6 ? s.name.padEnd(6) : `${s.name} `}${s.server}: ${state}`,
    `      address ${s.address}${s.otherAddresses.length ? `, ${s.otherAddresses.join(', ')}` : ''}`,
    `      ${s.detail}`,
    `      log     ${s.logFile}`,
    `      data    ${s.dataDir}`,
    `      config  ${s.configFile}`,
  ].join('\n');
}

export function formatStatus(status: StackStatus): string {
  const secure = [status.secure, status.secureS3].map((s) => (s ? `${describe(s)}\n` : '')).join('');
  const cluster = (status.cluster ?? []).map((n) => `${describe(n)}\n`).join('');
  return `stack ${status.up ? 'up' : 'not up'} (state dir ${status.dir})\n${describe(status.kafka)}\n${describe(status.s3)}\n${secure}${cluster}`;
}

/** Whether every node of the replicated cluster answers. */
const clusterUp = (status: StackStatus) => (status.cluster ?? []).length === CLUSTER_SIZE && status.cluster!.every((n) => n.answering);

/** `up --nodes 3` and `status --nodes 3`: the replicated cluster alone. */
function formatCluster(status: StackStatus): string {
  const nodes = status.cluster ?? [];
  const answering = nodes.filter((n) => n.answering).length;
  return `replicated cluster ${clusterUp(status) ? 'up' : `not up (${answering} of ${CLUSTER_SIZE} nodes answer)`} (state dir ${status.dir})\n${nodes.map((n) => `${describe(n)}\n`).join('')}`;
}

/** Whether the secure broker and the HTTPS S3 both answer. */
const secureUp = (status: StackStatus) => status.secure?.answering === true && status.secureS3?.answering === true;

/** `up --secure` and `status --secure`: the secure broker and the HTTPS S3 alone. */
function formatSecure(status: StackStatus): string {
  const servers = [status.secure, status.secureS3].filter((s) => s !== undefined);
  return `secure servers ${secureUp(status) ? 'up' : 'not up'} (state dir ${status.dir})\n${servers.map((s) => `${describe(s)}\n`).join('')}`;
}

export interface StackArgs {
  /** up | down | status (checked when run); undefined when none was given */
  command?: string;
  dir?: string;
  json: boolean;
  /** --secure (only present when given) */
  secure?: true;
  /** --nodes 3 (only present when given; --nodes 1 is the default) */
  nodes?: typeof CLUSTER_SIZE;
}

/** `netmon stack` argv; undefined after printing the help for --help. Throws UsageError naming the flag. */
export function parseStackArgs(argv: string[]): StackArgs | undefined {
  const flags = parseFlags(argv, { json: { type: 'boolean' }, secure: { type: 'boolean' }, dir: { type: 'string' }, nodes: { type: 'string' } }, STACK_HELP);
  if (!flags) return undefined;
  const [command, extra] = flags.positionals;
  if (extra !== undefined) throw new UsageError(`unexpected argument ${extra}`);
  const dir = stringFlag(flags, 'dir');
  if (dir === '') throw new UsageError('--dir needs a directory');
  const nodes = stringFlag(flags, 'nodes');
  if (nodes !== undefined && nodes !== '1' && nodes !== String(CLUSTER_SIZE)) {
    throw new UsageError(`--nodes: 1 (the plain stack) or ${CLUSTER_SIZE} (the replicated cluster), found "${nodes}"`);
  }
  const cluster = nodes === String(CLUSTER_SIZE);
  if (cluster && flags.values.secure === true) throw new UsageError(`--secure and --nodes ${CLUSTER_SIZE} are two other brokers: one at a time`);
  return {
    command,
    dir,
    json: flags.values.json === true,
    ...(flags.values.secure === true ? { secure: true as const } : {}),
    ...(cluster ? { nodes: CLUSTER_SIZE } : {}),
  };
}

/** Runs `netmon stack ...` (argv after "stack"); resolves to the exit code. */
export async function runStackCommand(argv: string[]): Promise<number> {
  let args: StackArgs | undefined;
  try {
    args = parseStackArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`netmon stack: ${err.reason} (see: netmon stack --help)\n`);
    return 2;
  }
  if (!args) return 0; // --help
  if (args.command === undefined) {
    process.stdout.write(STACK_HELP);
    return 2;
  }
  try {
    switch (args.command) {
      case 'up': {
        const status = await stackUp({ dir: args.dir, secure: args.secure, nodes: args.nodes });
        if (args.nodes) {
          process.stdout.write(formatCluster(status));
          return clusterUp(status) ? 0 : 1;
        }
        if (args.secure) {
          process.stdout.write(formatSecure(status));
          return secureUp(status) ? 0 : 1;
        }
        process.stdout.write(formatStatus(status));
        return status.up ? 0 : 1;
      }
      case 'down': {
        const status = await stackDown({ dir: args.dir, secure: args.secure, nodes: args.nodes });
        const cluster = status.cluster ?? [];
        const left = (
          args.nodes ? cluster : args.secure ? [status.secure, status.secureS3] : [status.kafka, status.s3, status.secure, status.secureS3, ...cluster]
        ).filter((s) => s?.running);
        const what = args.nodes ? 'replicated cluster' : args.secure ? 'secure servers' : 'stack';
        process.stdout.write(left.length ? `still running: ${left.map((s) => `${s!.name} pid ${s!.pid}`).join(', ')}\n` : `${what} down\n`);
        return left.length ? 1 : 0;
      }
      case 'status': {
        const status = await stackStatus({ dir: args.dir, secure: args.secure, nodes: args.nodes });
        const text = args.json
          ? `${JSON.stringify(status, null, 2)}\n`
          : args.nodes
            ? formatCluster(status)
            : args.secure
              ? formatSecure(status)
              : formatStatus(status);
        process.stdout.write(text);
        return (args.nodes ? clusterUp(status) : args.secure ? secureUp(status) : status.up) ? 0 : 3;
      }
      default:
        process.stderr.write(`netmon stack: unknown command '${args.command}' (see: netmon stack --help)\n`);
        return 2;
    }
  } catch (err) {
    process.stderr.write(`netmon ${(err as Error).message}\n`);
    return 1;
  }
}
