// @netmon/sensor: kernel probes and their TypeScript API.
export * from './probe/index';
