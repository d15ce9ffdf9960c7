// The enrichment library: pure, no Kafka. The service wraps it; the
// single-host mode can run it in-process.
export * from './container';
export * from './enricher';
export * from './event';
export * from './event-encoder';
export * from './filter';
export * from './process-table';
export * from './rejects';
