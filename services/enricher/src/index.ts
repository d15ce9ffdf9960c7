// @netmon/enricher: the command, the service and the pure library.
export { runEnricherCommand, USAGE } from './command';
export { start, type EnricherHandle, type StartOptions } from './service';
export { enricherSettings, type EnricherSettings } from './config';
export * from './lib';
