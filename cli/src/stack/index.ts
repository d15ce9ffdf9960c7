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
  type StackOptions,
} from './stack';
export { TOPIC_PARTITIONS } from './kafka';
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
export { type AclRule, type PipelineNames, type ServiceUsers, DEFAULT_SERVICE_USERS, serviceAcls, aclCommand, aclEntries } from './acl';
