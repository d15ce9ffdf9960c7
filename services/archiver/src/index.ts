// @netmon/archiver: wires and exports; the logic lives in the modules below.
export { Archiver } from './archiver';
export { start, runArchiverCommand, runQueryCommand, ARCHIVER_HELP, QUERY_HELP, type ArchiverHandle, type CommandIo } from './command';
export { archiverSettings, type ArchiverSettings } from './config';
export { ArchiveQuery, syncArchive, cacheRoot, viewSql, formatTable } from './query';
export { ArchiveStore } from './store';
export { eventColumns, hiveType, duckdbType, PARTITION_COLUMNS, type Column, type ColumnType } from './columns';
export { dataKey, manifestKey, manifestDir, parseDataKey, hourOf } from './layout';
export { decodeManifest, type Manifest } from './manifest';
export * from './errors';
