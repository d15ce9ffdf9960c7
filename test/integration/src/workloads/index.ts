// Helpers of the fidelity tests: real programs (fixtures/), what they logged,
// the expectations built from it, and where the events are read.
export * from './programs';
export * from './expect';
export * from './events';
export * from './scenario';
export * from './deny';
