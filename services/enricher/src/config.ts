// The enricher's settings: the shared netmon.yaml (loadConfig validates it
// once) plus what the enricher derives from it.
import { type NetmonConfig, validateTopicName, ConfigError, loadConfig } from '@netmon/common';

export interface EnricherSettings {
  config: NetmonConfig;
  /** Compacted changelog of the process tables, one per consumer group. */
  stateTopic: string;
  /** Prefix of the per-partition transactional ids. */
  transactionalIdPrefix: string;
}

export function enricherSettings(config: NetmonConfig): EnricherSettings {
  const stateTopic = `${config.enricher.groupId}.state`;
  const problem = validateTopicName(stateTopic);
  if (problem)
    throw new ConfigError(
      config.source,
      'enricher.group_id',
      `a name that makes a topic name "<group_id>.state" (${problem})`,
      JSON.stringify(config.enricher.groupId),
    );
  return { config, stateTopic, transactionalIdPrefix: `${config.enricher.groupId}.${config.topics.raw}` };
}

/** Reads the config file again (SIGHUP); throws ConfigError. */
export function reloadConfig(config: NetmonConfig): NetmonConfig {
  return config.source.startsWith('(') ? config : loadConfig(config.source);
}
