// The secure broker of `netmon stack up --secure` for the tests: started through
// the CLI when it does not answer (and then stopped again), fresh topics and
// groups per run with the services' ACLs for them, client settings and
// service configs per SCRAM user, and what the broker logged meanwhile.
import { randomUUID } from 'node:crypto';
import { closeSync, openSync, readFileSync, readSync, statSync, writeFileSync } from 'node:fs';
import {
  ADMIN_USER,
  type PipelineNames,
  type SecureLayout,
  applyServiceAcls,
  clientYaml,
  removeServiceAcls,
  secureLayout,
  secureSettings,
  secureUsers,
  stackLayout,
  stackStatus,
} from '@netmon/cli';
import { type KafkaSettings, createKafka, createLogger } from '@netmon/common';
import { startNetmon } from './processes';

export interface SecureBroker {
  layout: ReturnType<typeof stackLayout>;
  s: SecureLayout;
  /** What `netmon stack up --secure` printed (stdout, then stderr). */
  upOutput: string;
  /** The test started it: stop() stops it again. */
  startedHere: boolean;
  stop(): Promise<void>;
}

/** Runs `netmon stack up --secure` (a no-op, apart from topics and ACLs, when it runs); throws with its output when it fails. */
export async function secureBroker(): Promise<SecureBroker> {
  const layout = stackLayout();
  const before = await stackStatus({ secure: true });
  const up = startNetmon(['stack', 'up', '--secure']);
  const code = await up.exited;
  const upOutput = `${up.stdout()}${up.stderr()}`;
  if (code !== 0) throw new Error(`netmon stack up --secure exited with ${code}:\n${upOutput}`);
  const startedHere = !before.secure?.running;
  return {
    layout,
    s: secureLayout(layout),
    upOutput,
    startedHere,
    stop: async () => {
      if (!startedHere) return; // someone else's: it stays
      const down = startNetmon(['stack', 'down', '--secure']);
      const c = await down.exited;
      if (c !== 0) throw new Error(`netmon stack down --secure exited with ${c}: ${down.stdout()}${down.stderr()}`);
    },
  };
}

/** Fresh topic and group names for one run. */
export function freshNames(): PipelineNames {
  const id = randomUUID().slice(0, 8);
  return {
    raw: `netmon.sec.raw.${id}`,
    events: `netmon.sec.events.${id}`,
    dlq: `netmon.sec.dlq.${id}`,
    status: `netmon.sec.status.${id}`,
    enricherGroup: `netmon-sec-enricher-${id}`,
    archiverGroup: `netmon-sec-archiver-${id}`,
  };
}

/** A kafkajs admin of the secure broker (as the super user). */
export function secureAdmin(b: SecureBroker) {
  return createKafka(secureSettings(b.s, ADMIN_USER, 'netmon-it'), createLogger('it-admin', 'error'), 'admin').admin();
}

/** Creates the topics of `names` and applies the services' ACLs for them. */
export async function provisionPipeline(b: SecureBroker, names: PipelineNames): Promise<void> {
  const admin = secureAdmin(b);
  await admin.connect();
  try {
    await admin.createTopics({
      topics: [
        { topic: names.raw, numPartitions: 2 },
        { topic: names.events, numPartitions: 2 },
        { topic: names.dlq, numPartitions: 1 },
        { topic: names.status, numPartitions: 2 },
      ],
      waitForLeaders: true,
    });
  } finally {
    await admin.disconnect();
  }
  await applyServiceAcls(b.layout, names);
}

/** Deletes the topics (the enricher's changelog too), groups and ACLs of `names`. */
export async function cleanPipeline(b: SecureBroker, names: PipelineNames): Promise<void> {
  await removeServiceAcls(b.layout, names).catch(() => {});
  const admin = secureAdmin(b);
  await admin.connect();
  try {
    await admin.deleteTopics({ topics: [names.raw, names.events, names.dlq, names.status, `${names.enricherGroup}.state`] }).catch(() => {});
    await admin.deleteGroups([names.enricherGroup, names.archiverGroup]).catch(() => {});
  } finally {
    await admin.disconnect();
  }
}

/** A user's client settings. */
export function settingsOf(b: SecureBroker, user: string, clientId = 'netmon-it'): KafkaSettings {
  return secureSettings(b.s, user, clientId);
}

/**
 * Writes a netmon.yaml: the user's `kafka:` section (clients/<user>.yaml, with
 * `kafka` replacing lines of it when given), then `rest`.
 */
export function writeConfig(file: string, b: SecureBroker, user: string, rest: string[], kafka?: (section: string) => string): void {
  const section = clientYaml(b.s, user);
  writeFileSync(file, `${kafka ? kafka(section) : section}${rest.join('\n')}\n`, { mode: 0o600 });
}

/** Every secret of the secure broker: the users' passwords and the private keys' bodies. */
export function secrets(b: SecureBroker): string[] {
  const keys = [b.s.tls.caKey, b.s.tls.brokerKey].map((f) => {
    const pem = readFileSync(f, 'utf8');
    // the base64 body, whole and line by line (a log could carry either)
    return pem.split('\n').filter((l) => l && !l.startsWith('-----'));
  });
  return [...Object.values(secureUsers(b.s)), ...keys.flat()];
}

/** The environment of a child: nothing that would point it at the plain broker instead of its config. */
export const SECURE_CHILD_ENV: NodeJS.ProcessEnv = {
  KAFKA_BROKERS: undefined,
  NETMON_KAFKA_BROKERS: undefined,
  NETMON_KAFKA_SSL: undefined,
  NETMON_KAFKA_SASL_USERNAME: undefined,
  NETMON_KAFKA_SASL_PASSWORD: undefined,
  NETMON_KAFKA_SASL_MECHANISM: undefined,
  NETMON_CONFIG: undefined,
};

/** A mark in the broker's log: brokerLogSince(mark) is what it logged after. */
export function brokerLogMark(b: SecureBroker): number {
  try {
    return statSync(b.s.log).size;
  } catch {
    return 0;
  }
}

export function brokerLogSince(b: SecureBroker, mark: number): string {
  const fd = openSync(b.s.log, 'r');
  try {
    const size = statSync(b.s.log).size;
    const buf = Buffer.alloc(Math.max(0, size - mark));
    readSync(fd, buf, 0, buf.length, mark);
    return buf.toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** The broker's "Failed authentication" lines, by reason ("SSL handshake failed", "Authentication failed …"). */
export function failedAuthentications(log: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of log.matchAll(/Failed authentication with \S+ \(channelId=[^)]*\) \((.*)\) \(org\.apache/g)) {
    out.set(m[1]!, (out.get(m[1]!) ?? 0) + 1);
  }
  return out;
}
