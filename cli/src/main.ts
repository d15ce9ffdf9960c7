// `netmon <command>`: dispatches to the command's module. Each command parses
// its own flags, prints its own --help and returns the process exit code.
import { ConfigError, NetmonError } from '@netmon/common';
import { UsageError } from '@netmon/common';

interface Command {
  summary: string;
  run(argv: string[]): Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  stack: {
    summary: 'up | down | status of the local Kafka broker and S3 server',
    run: async (argv) => (await import('./stack/index.js')).runStackCommand(argv),
  },
  probe: {
    summary: 'load the kernel probes and print raw events as JSON lines',
    run: async (argv) => (await import('@netmon/sensor')).runProbeCommand(argv),
  },
  sensor: {
    summary: 'per-host publisher of kernel events to Kafka (topic raw)',
    run: async (argv) => (await import('@netmon/sensor')).runSensorCommand(argv),
  },
  enricher: {
    summary: 'consumer group turning raw records into NetworkEvents (topic events)',
    run: async (argv) => (await import('@netmon/enricher')).runEnricherCommand(argv),
  },
  archiver: {
    summary: 'consumer group writing the events to S3 as gzip NDJSON for Athena',
    run: async (argv) => (await import('@netmon/archiver')).runArchiverCommand(argv),
  },
  query: {
    summary: 'SQL over the archive (DuckDB), view network_events as in Athena',
    run: async (argv) => (await import('@netmon/archiver')).runQueryCommand(argv),
  },
  report: {
    summary: 'one self-contained HTML page of the archive: charts and tables for analysts',
    run: async (argv) => (await import('./report/index.js')).runReportCommand(argv),
  },
  run: {
    summary: 'single-host mode (events as JSON lines), or --pipeline: the whole pipeline here',
    run: async (argv) => (await import('./run/index.js')).runRunCommand(argv),
  },
  tail: {
    summary: 'decode a Netmon topic (raw | events | dlq) to JSON lines',
    run: async (argv) => (await import('./tail.js')).runTailCommand(argv),
  },
};

export function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  const lines = ['Usage: netmon <command> [options]   (netmon <command> --help for its options)', '', 'Commands:'];
  for (const [name, cmd] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(width)}  ${cmd.summary}`);
  lines.push('', 'With no --config (or NETMON_CONFIG), commands use the local stack: Kafka on 127.0.0.1:9092, S3 on 127.0.0.1:9000.');
  return `${lines.join('\n')}\n`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`netmon: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`netmon ${name}: ${err.message}\n`);
      return 2;
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`netmon ${name}: bad configuration: ${err.message}\n`);
      return 78; // EX_CONFIG
    }
    if (err instanceof NetmonError) {
      // An operational failure (a broker refusing us, S3 away at start): its
      // message says what and why; a stack trace would only bury it.
      process.stderr.write(`netmon ${name}: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
