// KafkaSettings as a kafkajs client, logging via pino: for the tests' helpers,
// the benchmarks' side-by-side runs and the example of a custom consumer. The
// services' data paths use librdkafka (rdkafka.ts).
import { readFileSync } from 'node:fs';
import type { CompressionTypes, Kafka, KafkaConfig, SASLOptions } from 'kafkajs';
import type { Compression } from './config';
import type { KafkaSettings } from './config';
import type { Logger } from './logger';

type KafkaJs = typeof import('kafkajs');
let kafkajsModule: KafkaJs | undefined;

/**
 * kafkajs, loaded on first use: the services' data paths use librdkafka and
 * never pay for it (about 150 modules, several MB of a sensor's RSS).
 * kafkajs ships gzip only; LZ4 (the standard frame format Kafka uses) comes
 * from lz4-napi's prebuilt binding, registered once here.
 */
function kafkajs(): KafkaJs {
  if (!kafkajsModule) {
    const loaded = require('kafkajs') as KafkaJs;
    const { compressFrameSync, decompressFrameSync } = require('lz4-napi') as typeof import('lz4-napi');
    loaded.CompressionCodecs[loaded.CompressionTypes.LZ4] = () => ({
      compress: async (encoder: { buffer: Buffer }) => compressFrameSync(encoder.buffer),
      decompress: async (buffer: Buffer) => decompressFrameSync(buffer),
    });
    kafkajsModule = loaded;
  }
  return kafkajsModule;
}

/** The kafkajs codec of a configured compression. */
export function compressionType(compression: Compression): CompressionTypes {
  const { CompressionTypes: types } = kafkajs();
  return { gzip: types.GZIP, lz4: types.LZ4, none: types.None }[compression];
}

export function createKafka(settings: KafkaSettings, logger: Logger, clientSuffix = ''): Kafka {
  const { Kafka: KafkaClient, logLevel } = kafkajs();
  const LEVELS: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
    [logLevel.ERROR]: 'error',
    [logLevel.WARN]: 'warn',
    [logLevel.INFO]: 'info',
    [logLevel.DEBUG]: 'debug',
  };
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
  return new KafkaClient(config);
}
