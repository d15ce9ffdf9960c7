// `netmon sensor --config FILE`: runs until SIGTERM/SIGINT, then stops the
// probes, flushes (or spools) what is queued, and exits 0.
import { rmSync } from 'node:fs';
import { createLogger, loadConfig, parseFlags, stringFlag } from '@netmon/common';
import { ProbeError } from '../probe/errors';
import { kernelSource } from './kernel';
import { startSensor } from './sensor';

const USAGE = `Usage: netmon sensor [--config FILE]

Loads the kernel probes and publishes every raw record of this host to Kafka
(topic raw), spooling to disk while Kafka is away. Needs root (CAP_BPF,
CAP_PERFMON, CAP_NET_ADMIN; and CAP_SYS_PTRACE to read other users' processes
for the start-up snapshot). Metrics on :sensor.metrics_port/metrics.

With sensor.pin_dir set (a directory on bpffs), the probes stay pinned and
recording when the sensor stops, and the next sensor of the same build adopts
them: a restart or upgrade misses nothing.

  --config FILE   netmon.yaml (default: $NETMON_CONFIG, else the local stack)
  --unpin         remove the probes pinned in sensor.pin_dir (uninstall) and exit
`;

export async function runSensorCommand(argv: string[]): Promise<number> {
  const flags = parseFlags(argv, { config: { type: 'string' }, unpin: { type: 'boolean' } }, USAGE);
  if (!flags) return 0;
  const config = loadConfig(stringFlag(flags, 'config'));
  if (flags.values.unpin) {
    if (!config.sensor.pinDir) {
      process.stderr.write(`netmon sensor: --unpin: sensor.pin_dir is not set in ${config.source}\n`);
      return 1;
    }
    // Unlinking the pinned links detaches the programs; the maps go with them.
    rmSync(config.sensor.pinDir, { recursive: true, force: true });
    process.stderr.write(`netmon sensor: removed the probes pinned in ${config.sensor.pinDir}\n`);
    return 0;
  }
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
