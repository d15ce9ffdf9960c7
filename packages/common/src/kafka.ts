// One place that turns KafkaSettings into a kafkajs client, logging via pino.
import { readFileSync } from 'node:fs';
import { Kafka, logLevel, type KafkaConfig, type SASLOptions } from 'kafkajs';
import type { KafkaSettings } from './config';
import type { Logger } from './logger';

const LEVELS: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [logLevel.ERROR]: 'error',
  [logLevel.WARN]: 'warn',
  [logLevel.INFO]: 'info',
  [logLevel.DEBUG]: 'debug',
};

export function createKafka(settings: KafkaSettings, logger: Logger, clientSuffix = ''): Kafka {
  const config: KafkaConfig = {
    clientId: clientSuffix ? `${settings.clientId}-${clientSuffix}` : settings.clientId,
    brokers: settings.brokers,
    connectionTimeout: 3000,
    requestTimeout: 30000,
    retry: { initialRetryTime: 200, retries: 8, maxRetryTime: 5000 },
    logLevel: logLevel.WARN,
    logCreator: () => (entry) => {
      const { message, ...extra } = entry.log;
      logger[LEVELS[entry.level] ?? 'info']({ kafka: entry.namespace, ...extra }, message);
    },
  };
  if (settings.ssl) {
    const read = (file?: string) => (file ? readFileSync(file, 'utf8') : undefined);
    config.ssl = {
      ca: read(settings.ssl.caFile),
      cert: read(settings.ssl.certFile),
      key: read(settings.ssl.keyFile),
      rejectUnauthorized: settings.ssl.rejectUnauthorized,
    };
  }
  if (settings.sasl) {
    config.sasl = { mechanism: settings.sasl.mechanism, username: settings.sasl.username, password: settings.sasl.password } as SASLOptions;
  }
  return new Kafka(config);
}
