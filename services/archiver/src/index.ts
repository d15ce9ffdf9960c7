// @netmon/archiver: wires and exports; the logic lives in the modules below.
export { Archiver, type ArchiverOptions } from './archiver';
export {
  PartitionMachine,
  Undecodable,
  type Command,
  type IoCommand,
  type Notice,
  type InMessage,
  type BatchEnd,
  type OpenFlush,
  type PartitionOptions,
} from './partition';
export { type ArchiveSource, type SourceHandlers, type DeadLetterRecord, type TopicPartition, tpKey } from './source';
export { RdkafkaSource, type RdkafkaSourceOptions } from './rdkafka-source';
export { start, runArchiverCommand, runQueryCommand, ARCHIVER_HELP, QUERY_HELP, type ArchiverHandle, type CommandIo } from './command';
export { archiverSettings, type ArchiverSettings, type ArchiveStream } from './config';
export { ArchiveQuery, syncArchive, cacheRoot, viewSql, formatTable } from './query';
export { ArchiveStore } from './store';
export { eventColumns, hiveType, duckdbType, PARTITION_COLUMNS, type Column, type ColumnType } from './columns';
export { dataKey, manifestKey, manifestDir, parseDataKey, hourOf, statusPrefix } from './layout';
export { decodeManifest, type Manifest } from './manifest';
export * from './errors';
export { archiverLag, waitingLine, type ArchiverLag } from './lag';
