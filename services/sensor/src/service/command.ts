// `netmon sensor --config FILE`: runs until SIGTERM/SIGINT, then stops the
// probes, flushes (or spools) what is queued, and exits 0.
import { createLogger, loadConfig, parseFlags, stringFlag } from '@netmon/common';
import { ProbeError } from '../probe/errors';
import { kernelSource } from './kernel';
import { startSensor } from './sensor';

const USAGE = `Usage: netmon sensor [--config FILE]

Loads the kernel probes and publishes every raw record of this host to Kafka
(topic raw), spooling to disk while Kafka is away. Needs root (CAP_BPF,
CAP_PERFMON, CAP_NET_ADMIN; and CAP_SYS_PTRACE to read other users' processes
for the start-up snapshot). Metrics on :sensor.metrics_port/metrics.

  --config FILE   netmon.yaml (default: $NETMON_CONFIG, else the local stack)
`;

export async function runSensorCommand(argv: string[]): Promise<number> {
  const flags = parseFlags(argv, { config: { type: 'string' } }, USAGE);
  if (!flags) return 0;
  const config = loadConfig(stringFlag(flags, 'config'));
  const logger = createLogger('sensor', config.log.level);
  let sensor: Awaited<ReturnType<typeof startSensor>>;
  try {
    sensor = await startSensor(config, logger, {
      startSource: kernelSource(config.sensor),
    });
  } catch (err) {
    if (!(err instanceof ProbeError)) throw err;
    // The kernel refused (privileges, BTF, verifier): one line that says why.
    logger.fatal({ code: err.code, step: err.step }, err.message);
    process.stderr.write(`netmon sensor: ${err.message}\n`);
    return 1;
  }
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  await sensor.stop();
  return 0;
}
