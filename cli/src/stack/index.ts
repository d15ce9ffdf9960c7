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
