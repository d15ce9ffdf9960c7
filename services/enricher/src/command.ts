// `netmon enricher --config FILE`: runs the service until SIGTERM/SIGINT;
// SIGHUP reloads process_filter from the config file.
import { parseArgs } from 'node:util';
import { ConfigError, createLogger, describeError, loadConfig } from '@netmon/common';
import { enricherSettings, reloadConfig } from './config';
import { start } from './service';

export const USAGE = `Usage: netmon enricher [--config FILE]

Consumer group on the raw topic: joins socket records with the process table,
applies process_filter and writes NetworkEvents to the events topic (exactly
once unless enricher.exactly_once is false). SIGHUP reloads process_filter.

Options:
  --config FILE   netmon.yaml (default: $NETMON_CONFIG, else the local stack)
  -h, --help      this help
`;

/** Returns the process exit code. ConfigError is thrown (the CLI prints it, exit 78). */
export async function runEnricherCommand(argv: string[]): Promise<number> {
  let values: { config?: string; help?: boolean };
  try {
    ({ values } = parseArgs({ args: argv, options: { config: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, allowPositionals: false }));
  } catch (err) {
    process.stderr.write(`netmon enricher: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const config = loadConfig(values.config);
  enricherSettings(config); // validates the derived names before connecting
  const logger = createLogger('enricher', config.log.level);
  const handle = await start(config, logger);

  const onHup = () => {
    try {
      handle.reload(reloadConfig(config));
    } catch (err) {
      // A bad file on reload keeps the running filter.
      logger.error({ err: err instanceof ConfigError ? err.message : describeError(err) }, 'reload failed; the previous process_filter stays');
    }
  };
  process.on('SIGHUP', onHup);
  const signal = await Promise.race([
    new Promise<string>((resolve) => {
      process.once('SIGTERM', () => resolve('SIGTERM'));
      process.once('SIGINT', () => resolve('SIGINT'));
    }),
    handle.failed.catch((err: unknown) => `failure: ${describeError(err)}`),
  ]);
  process.off('SIGHUP', onHup);
  logger.info({ reason: signal }, 'shutting down');
  await handle.stop();
  return signal.startsWith('failure') ? 1 : 0;
}
