// The local infrastructure behind `netmon stack up|down|status`.
export { runStackCommand, formatStatus, STACK_HELP } from './command';
export { StackError } from './errors';
export { stackLayout, type StackLayout, type ServiceLayout, type ServiceName } from './layout';
export type { ServiceStatus, StackStatus } from './status';
export {
  stackUp,
  stackDown,
  stackStatus,
  startKafka,
  stopKafka,
  startS3,
  stopS3,
  startClusterNode,
  type StackOptions,
} from './stack';
export { TOPIC_PARTITIONS } from './kafka';
export { type HiveClassPath, ensureHiveJars, hiveJarSet, unreachableRepository } from './hive-jars';
export {
  CLUSTER_SIZE,
  CLUSTER_REPLICATION_FACTOR,
  CLUSTER_MIN_INSYNC_REPLICAS,
  type ClusterLayout,
  type ClusterNode,
  type PartitionState,
  clusterLayout,
  clusterSettings,
  nodePid,
  partitionStates,
} from './cluster';
export {
  ADMIN_USER,
  SECURE_USERS,
  DEFAULT_PIPELINE_NAMES,
  type SecureLayout,
  secureLayout,
  secureSettings,
  secureUsers,
  clientYaml,
  makeCa,
  applyServiceAcls,
  removeServiceAcls,
} from './secure';
export {
  SECURE_S3_ENDPOINT,
  type LoggedRequest,
  type SecureS3Layout,
  requestLogEntries,
  secureS3Layout,
  secureS3Settings,
  secureS3Yaml,
} from './s3-secure';
export { type AclRule, type PipelineNames, type ServiceUsers, DEFAULT_SERVICE_USERS, serviceAcls, aclCommand, aclEntries } from './acl';
