// `netmon run`: single-host mode (default) or the whole pipeline (--pipeline).
import { loadConfig, numberFlag, parseFlags, stringFlag } from '@netmon/common';
import { runEmbedded } from './embedded';
import { runPipeline } from './pipeline';

const USAGE = `Usage: netmon run [--pipeline] [--pretty] [--duration S] [--config FILE]

Single-host mode (default): the kernel probes and the enrichment in one
process; every NetworkEvent as a JSON line on stdout, process_filter applied.
No Kafka, no S3. Needs root.

  --pretty        one readable line per event instead of JSON

--pipeline: the whole pipeline on this host as separate processes: the local
Kafka + S3 stack (unless brokers or S3 are configured), sensor, enricher and
archiver, and a live view of the events topic. Ctrl-C stops everything.

Both modes:
  --duration S    stop after S seconds, as on Ctrl-C (default: until Ctrl-C)
  --config FILE   netmon.yaml (default: $NETMON_CONFIG, else the local stack)
`;

export async function runRunCommand(argv: string[]): Promise<number> {
  const flags = parseFlags(
    argv,
    { pipeline: { type: 'boolean' }, pretty: { type: 'boolean' }, duration: { type: 'string' }, config: { type: 'string' } },
    USAGE,
  );
  if (!flags) return 0;
  const file = stringFlag(flags, 'config');
  const config = loadConfig(file);
  const durationS = numberFlag(flags, 'duration', 0);
  if (flags.values.pipeline) return runPipeline(config, file ?? process.env.NETMON_CONFIG, durationS);
  return runEmbedded(config, { pretty: Boolean(flags.values.pretty), durationS });
}
