export * from './decode';
export * from './errors';
export * from './layout';
export { addonPath } from './native';
export * from './probe';
export { runProbeCommand } from './command';
