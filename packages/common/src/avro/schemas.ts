// The .avsc files under schemas/avro are the contracts. This module finds them
// and builds one codec per contract, knowing every older version in history/.
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import path from 'node:path';
import type { NetworkEvent, RawRecord, SensorStatusRecord } from '../contracts';
import { SingleObjectCodec } from './single-object';

/** schemas/avro of this checkout, or NETMON_SCHEMA_DIR. */
export function schemaDir(): string {
  if (process.env.NETMON_SCHEMA_DIR) return process.env.NETMON_SCHEMA_DIR;
  // dist/src/avro → package root → repo root.
  return path.resolve(__dirname, '../../../../../schemas/avro');
}

export function readSchema(file: string, dir = schemaDir()): object {
  return JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as object;
}

/** Older versions of a schema: history/<stem>.v<N>.avsc. */
function history(stem: string, dir: string): object[] {
  const historyDir = path.join(dir, 'history');
  if (!existsSync(historyDir)) return [];
  return readdirSync(historyDir)
    .filter((f) => f.startsWith(`${stem}.v`) && f.endsWith('.avsc'))
    .sort()
    .map((f) => readSchema(path.join('history', f), dir));
}

export function codecFor<T>(stem: string, dir = schemaDir()): SingleObjectCodec<T> {
  return new SingleObjectCodec<T>(readSchema(`${stem}.avsc`, dir), history(stem, dir));
}

let raw: SingleObjectCodec<RawRecord> | undefined;
let events: SingleObjectCodec<NetworkEvent> | undefined;
let status: SingleObjectCodec<SensorStatusRecord> | undefined;

/** Codec of netmon.raw.RawRecord (topic raw). */
export function rawRecordCodec(): SingleObjectCodec<RawRecord> {
  raw ??= codecFor<RawRecord>('raw-record');
  return raw;
}

/** Codec of netmon.events.NetworkEvent (topic events). */
export function networkEventCodec(): SingleObjectCodec<NetworkEvent> {
  events ??= codecFor<NetworkEvent>('network-event');
  return events;
}

/** Codec of netmon.status.SensorStatus (topic status). */
export function sensorStatusCodec(): SingleObjectCodec<SensorStatusRecord> {
  status ??= codecFor<SensorStatusRecord>('sensor-status');
  return status;
}
