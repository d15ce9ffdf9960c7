export * from './infra';
export * from './wait';
export * from './processes';
export * from './topics';
export { type LoggedConnection, during, eventsOf } from './traffic';
export * from './pipeline';
export * from './workloads';
