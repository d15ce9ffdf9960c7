// `netmon enricher --config FILE`: runs the service until SIGTERM/SIGINT;
// SIGHUP reloads process_filter from the config file.
import { ConfigError, UsageError, createLogger, describeError, loadConfig, parseFlags, stringFlag } from '@netmon/common';
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
  let flags: ReturnType<typeof parseFlags>;
  try {
    flags = parseFlags(argv, { config: { type: 'string' } }, USAGE);
    if (flags && flags.positionals.length > 0) throw new UsageError(`unexpected argument ${flags.positionals[0]}`);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`netmon enricher: ${err.reason}\n\n${USAGE}`);
    return 2;
  }
  if (!flags) return 0; // --help
  const config = loadConfig(stringFlag(flags, 'config'));
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
