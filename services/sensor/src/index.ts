// @netmon/sensor: kernel probes, their TypeScript API, and the sensor service.
export * from './probe/index';
export { runSensorCommand } from './service/command';
export { kernelSource } from './service/kernel';
export { type Sensor, type SensorOptions, startSensor } from './service/sensor';
export type { KernelSource, OnRecords, StartSource } from './service/source';
export { type HostIdentity, hostIdentity } from './service/identity';
export { snapshotProcess, snapshotProcesses } from './service/snapshot';
