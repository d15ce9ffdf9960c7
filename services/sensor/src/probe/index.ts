export * from './exec-facts';
export * from './records';
export * from './redact';
export * from './errors';
export * from './layout';
export { addonPath } from './native';
export * from './probe';
export { runProbeCommand } from './command';
