// `netmon stack up|down|status [--secure] [--json] [--dir DIR] [--help]`.
import { UsageError, parseFlags, stringFlag } from '@netmon/common';
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

Commands:
  up       fetch jars (first time), format storage (first time), start both servers,
           create the topics and the bucket; waits until both answer. No-op if running.
           --secure: the secure broker only (topics and ACLs too).
  down     stop both servers and the secure broker (SIGTERM, SIGKILL after a grace
           period); --secure: the secure broker only
  status   what runs where: pid, address, log file, data dir, whether it answers.
           Exit code 0 when both answer (--secure: when the secure broker answers), 3 otherwise.

Options:
  --secure    the secure broker (see above)
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
  const secure = status.secure ? `${describe(status.secure)}\n` : '';
  return `stack ${status.up ? 'up' : 'not up'} (state dir ${status.dir})\n${describe(status.kafka)}\n${describe(status.s3)}\n${secure}`;
}

/** `up --secure` and `status --secure`: the secure broker alone. */
function formatSecure(status: StackStatus): string {
  const s = status.secure!;
  return `secure broker ${s.answering ? 'up' : 'not up'} (state dir ${status.dir})\n${describe(s)}\n`;
}

export interface StackArgs {
  /** up | down | status (checked when run); undefined when none was given */
  command?: string;
  dir?: string;
  json: boolean;
  /** --secure (only present when given) */
  secure?: true;
}

/** `netmon stack` argv; undefined after printing the help for --help. Throws UsageError naming the flag. */
export function parseStackArgs(argv: string[]): StackArgs | undefined {
  const flags = parseFlags(argv, { json: { type: 'boolean' }, secure: { type: 'boolean' }, dir: { type: 'string' } }, STACK_HELP);
  if (!flags) return undefined;
  const [command, extra] = flags.positionals;
  if (extra !== undefined) throw new UsageError(`unexpected argument ${extra}`);
  const dir = stringFlag(flags, 'dir');
  if (dir === '') throw new UsageError('--dir needs a directory');
  return { command, dir, json: flags.values.json === true, ...(flags.values.secure === true ? { secure: true as const } : {}) };
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
        const status = await stackUp({ dir: args.dir, secure: args.secure });
        if (args.secure) {
          process.stdout.write(formatSecure(status));
          return status.secure?.answering ? 0 : 1;
        }
        process.stdout.write(formatStatus(status));
        return status.up ? 0 : 1;
      }
      case 'down': {
        const status = await stackDown({ dir: args.dir, secure: args.secure });
        const left = (args.secure ? [status.secure] : [status.kafka, status.s3, status.secure]).filter((s) => s?.running);
        const what = args.secure ? 'secure broker' : 'stack';
        process.stdout.write(left.length ? `still running: ${left.map((s) => `${s!.name} pid ${s!.pid}`).join(', ')}\n` : `${what} down\n`);
        return left.length ? 1 : 0;
      }
      case 'status': {
        const status = await stackStatus({ dir: args.dir, secure: args.secure });
        process.stdout.write(args.json ? `${JSON.stringify(status, null, 2)}\n` : args.secure ? formatSecure(status) : formatStatus(status));
        return (args.secure ? status.secure?.answering : status.up) ? 0 : 3;
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
