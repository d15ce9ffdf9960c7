// Kafka ACLs per service principal, least privilege: one list, used by `stack up
// --secure` (applied through the Admin API), by the secure-stack test (for its
// fresh topics and groups) and rendered as the kafka-acls.sh commands of
// docs/security.md. What each service needs comes from its code:
//   sensor    services/sensor/src/service/kafka-link.ts: an idempotent producer on raw
//   enricher  services/enricher/src/rdkafka.ts: a read_committed group on raw; ONE
//             transactional producer (id "<group>.<raw>.<random>") writing events, the
//             DLQ and the changelog "<group>.state", which it creates when missing; a
//             changelog reader outside the group (group id "netmon-enricher-state-<uuid>",
//             never joined or committed: FindCoordinator needs Describe)
//   archiver  services/archiver/src/rdkafka-source.ts: a read_committed group on events,
//             and an idempotent producer dead-lettering undecodable events to the DLQ
// Idempotent producers need no Cluster IdempotentWrite since Kafka 3.0 (KIP-679):
// Write on a topic is enough. Read/Write imply Describe.
import type { AclEntry } from 'kafkajs';

export type AclResource = 'topic' | 'group' | 'transactional-id';
export type AclOperation = 'Read' | 'Write' | 'Create' | 'Describe';

export interface AclRule {
  /** "User:<name>" */
  principal: string;
  resource: AclResource;
  name: string;
  pattern: 'literal' | 'prefixed';
  operations: AclOperation[];
  /** Why the service needs it (a comment in the docs). */
  why: string;
}

/** The names an ACL set is made for: the topics and the consumer groups of one pipeline. */
export interface PipelineNames {
  raw: string;
  events: string;
  dlq: string;
  /** The sensors' status records (topics.status): written by the enricher, archived by the archiver. */
  status: string;
  enricherGroup: string;
  archiverGroup: string;
}

/** The SCRAM user of each service (principal "User:<name>"). */
export interface ServiceUsers {
  sensor: string;
  enricher: string;
  archiver: string;
}

export const DEFAULT_SERVICE_USERS: ServiceUsers = { sensor: 'netmon-sensor', enricher: 'netmon-enricher', archiver: 'netmon-archiver' };

/** The enricher's changelog reader's group id prefix (services/enricher/src/rdkafka.ts, StateReader). */
export const ENRICHER_STATE_READER_GROUP_PREFIX = 'netmon-enricher-state-';

/** Every ACL the three services need, and nothing more. */
export function serviceAcls(names: PipelineNames, users: ServiceUsers = DEFAULT_SERVICE_USERS): AclRule[] {
  const sensor = `User:${users.sensor}`;
  const enricher = `User:${users.enricher}`;
  const archiver = `User:${users.archiver}`;
  const state = `${names.enricherGroup}.state`;
  return [
    { principal: sensor, resource: 'topic', name: names.raw, pattern: 'literal', operations: ['Write'], why: 'produce raw records (idempotent)' },

    { principal: enricher, resource: 'topic', name: names.raw, pattern: 'literal', operations: ['Read'], why: 'consume raw records' },
    {
      principal: enricher,
      resource: 'group',
      name: names.enricherGroup,
      pattern: 'literal',
      operations: ['Read'],
      why: 'its consumer group, offsets committed in transactions',
    },
    { principal: enricher, resource: 'topic', name: names.events, pattern: 'literal', operations: ['Write'], why: 'produce NetworkEvents' },
    {
      principal: enricher,
      resource: 'topic',
      name: names.status,
      pattern: 'literal',
      operations: ['Write'],
      why: "produce the sensors' status records (heartbeats)",
    },
    { principal: enricher, resource: 'topic', name: names.dlq, pattern: 'literal', operations: ['Write'], why: 'dead-letter bad raw records' },
    {
      principal: enricher,
      resource: 'topic',
      name: state,
      pattern: 'literal',
      operations: ['Read', 'Write', 'Create'],
      why: 'its changelog: restored on assignment, written in each transaction, created when missing (drop Create if you create it)',
    },
    {
      principal: enricher,
      resource: 'transactional-id',
      name: `${names.enricherGroup}.${names.raw}.`,
      pattern: 'prefixed',
      operations: ['Write'],
      why: 'its transactional producer, one id per instance',
    },
    {
      principal: enricher,
      resource: 'group',
      name: ENRICHER_STATE_READER_GROUP_PREFIX,
      pattern: 'prefixed',
      operations: ['Describe'],
      why: 'the changelog reader: a group id that is never joined nor committed',
    },

    { principal: archiver, resource: 'topic', name: names.events, pattern: 'literal', operations: ['Read'], why: 'consume NetworkEvents' },
    { principal: archiver, resource: 'topic', name: names.status, pattern: 'literal', operations: ['Read'], why: "consume the sensors' status records" },
    { principal: archiver, resource: 'group', name: names.archiverGroup, pattern: 'literal', operations: ['Read'], why: 'its consumer group' },
    { principal: archiver, resource: 'topic', name: names.dlq, pattern: 'literal', operations: ['Write'], why: 'dead-letter undecodable events' },
  ];
}

// kafkajs's enums are TypeScript `enum`s of a CommonJS module: their values, spelled out.
const RESOURCE_TYPE: Record<AclResource, number> = { topic: 2, group: 3, 'transactional-id': 5 };
const OPERATION: Record<AclOperation, number> = { Read: 3, Write: 4, Create: 5, Describe: 8 };
const PATTERN = { literal: 3, prefixed: 4 } as const;
const ALLOW = 3;

/** The rules as kafkajs Admin.createAcls() entries: one per operation. */
export function aclEntries(rules: readonly AclRule[]): AclEntry[] {
  return rules.flatMap((r) =>
    r.operations.map(
      (op) =>
        ({
          principal: r.principal,
          host: '*',
          resourceType: RESOURCE_TYPE[r.resource],
          resourceName: r.name,
          resourcePatternType: PATTERN[r.pattern],
          operation: OPERATION[op],
          permissionType: ALLOW,
        }) as AclEntry,
    ),
  );
}

const FLAG: Record<AclResource, string> = { topic: '--topic', group: '--group', 'transactional-id': '--transactional-id' };

/** The rule as one kafka-acls.sh command (the broker and the admin's client properties are variables). */
export function aclCommand(rule: AclRule): string {
  return [
    'kafka-acls.sh --bootstrap-server "$BROKER" --command-config admin.properties --add',
    `--allow-principal ${rule.principal}`,
    ...rule.operations.map((op) => `--operation ${op}`),
    `${FLAG[rule.resource]} ${rule.name}`,
    ...(rule.pattern === 'prefixed' ? ['--resource-pattern-type prefixed'] : []),
  ].join(' ');
}
