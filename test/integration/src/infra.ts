// Where the tests find Kafka and S3, in this order: KAFKA_BROKERS / S3_ENDPOINT
// from the environment; testcontainers where a Docker engine answers; else the
// native stack of `netmon stack up` (started here if it is not running).
import { execFileSync } from 'node:child_process';

export interface Infra {
  brokers: string;
  s3Endpoint: string;
  how: string;
  stop(): Promise<void>;
}

function dockerAnswers(): boolean {
  try {
    execFileSync('docker', ['info'], { stdio: 'ignore', timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

async function fromTestcontainers(): Promise<Infra> {
  const { GenericContainer, Wait } = await import('testcontainers');
  const kafka = await new GenericContainer('apache/kafka:4.1.0')
    .withExposedPorts({ container: 9092, host: 9092 })
    .withEnvironment({
      KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR: '1',
      KAFKA_TRANSACTION_STATE_LOG_MIN_ISR: '1',
      KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS: '0',
    })
    .withWaitStrategy(Wait.forLogMessage(/Kafka Server started/))
    .start();
  const s3 = await new GenericContainer('andrewgaul/s3proxy:latest')
    .withExposedPorts(80)
    .withEnvironment({
      S3PROXY_IDENTITY: 'netmon',
      S3PROXY_CREDENTIAL: 'netmon-secret-key',
      JCLOUDS_PROVIDER: 'filesystem',
      JCLOUDS_FILESYSTEM_BASEDIR: '/data',
    })
    .withWaitStrategy(Wait.forListeningPorts())
    .start();
  return {
    brokers: `127.0.0.1:${kafka.getMappedPort(9092)}`,
    s3Endpoint: `http://127.0.0.1:${s3.getMappedPort(80)}`,
    how: 'testcontainers',
    stop: async () => {
      await kafka.stop();
      await s3.stop();
    },
  };
}

async function fromNativeStack(log: (msg: string) => void): Promise<Infra> {
  const { stackUp } = await import('@netmon/cli');
  const { DEFAULT_BROKERS, DEFAULT_S3 } = await import('@netmon/common');
  await stackUp({ log });
  // The stack stays up: .ci/run and `netmon stack down` own its life.
  return { brokers: DEFAULT_BROKERS.join(','), s3Endpoint: DEFAULT_S3.endpoint, how: 'native stack (netmon stack up)', stop: async () => {} };
}

export async function resolveInfra(log: (msg: string) => void = (m) => process.stderr.write(`${m}\n`)): Promise<Infra> {
  const { KAFKA_BROKERS, S3_ENDPOINT } = process.env;
  if (KAFKA_BROKERS && S3_ENDPOINT) return { brokers: KAFKA_BROKERS, s3Endpoint: S3_ENDPOINT, how: 'environment', stop: async () => {} };
  if (dockerAnswers()) return fromTestcontainers();
  return fromNativeStack(log);
}
