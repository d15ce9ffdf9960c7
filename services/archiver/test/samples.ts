// NetworkEvent samples for the archiver's tests.
import { DEFAULT_CONNECTION_FACTS, type NetworkEvent } from '@netmon/common';

export interface SampleOverrides {
  timestamp?: string;
  type?: NetworkEvent['network_event']['type'];
  binary?: string;
  pid?: number;
  saddr?: string;
  daddr?: string;
  sport?: number;
  dport?: number;
  cookie?: number;
  hostname?: string;
  hostId?: string;
  containerId?: string;
  seq?: number;
  /** NetworkEvent v2 facts; the rest stay DEFAULT_CONNECTION_FACTS. */
  connection?: Partial<NetworkEvent['connection']>;
  processKey?: string;
}

/** A NetworkEvent with every field in the spec's order. */
export function sampleEvent(o: SampleOverrides = {}): NetworkEvent {
  const binary = o.binary ?? '/usr/bin/curl';
  return {
    type: 'NetworkEvent',
    process: {
      pid: o.pid ?? 2538344,
      tid: o.pid ?? 2538344,
      ppid: 9425,
      uid: 1000,
      euid: 1000,
      auid: 4294967295,
      cap_inheritable: 0,
      cap_permitted: 0,
      cap_effective: 2 ** 40 - 1,
      secureexec: '',
      filename: binary.slice(binary.lastIndexOf('/') + 1),
      binary_path: binary,
      args: '-6 "google.com" \\ é',
      container_id: o.containerId ?? '',
    },
    network_event: {
      type: o.type ?? 'TcpConnectionEstablish',
      saddr: o.saddr ?? 'fe80::d497:36b6:16bf:d97b',
      daddr: o.daddr ?? '2a00:1450:4010:c08::8b',
      sport: o.sport ?? 33340,
      dport: o.dport ?? 80,
      cookie: o.cookie ?? 4109,
    },
    timestamp: o.timestamp ?? '2025-05-31T10:05:51.282Z',
    host: { hostname: o.hostname ?? 'web-17', id: o.hostId ?? '4c4c4544004e3510804bb4c04f4a3332' },
    source: { run_id: 'run-1', seq: o.seq ?? 1 },
    connection: { ...DEFAULT_CONNECTION_FACTS, ...o.connection },
    process_key: o.processKey ?? `${o.hostId ?? 'h'}:${o.pid ?? 2538344}:1748685951282000`,
  };
}

/** A NetworkEvent as v1 has it (schemas/avro/history/network-event.v1.avsc): no connection, no process_key. */
export type NetworkEventV1 = Omit<NetworkEvent, 'connection' | 'process_key'>;

/** The event as the archiver wrote it before v2: the fields after `source` left out. */
export function asV1(e: NetworkEvent): NetworkEventV1 {
  const { connection: _connection, process_key: _processKey, ...v1 } = e;
  return v1;
}

export const SPEC_ORDER = {
  top: ['type', 'process', 'network_event', 'timestamp', 'host', 'source', 'connection', 'process_key'],
  process: [
    'pid',
    'tid',
    'ppid',
    'uid',
    'euid',
    'auid',
    'cap_inheritable',
    'cap_permitted',
    'cap_effective',
    'secureexec',
    'filename',
    'binary_path',
    'args',
    'container_id',
  ],
  network_event: ['type', 'saddr', 'daddr', 'sport', 'dport', 'cookie'],
  host: ['hostname', 'id'],
  connection: ['outcome', 'duration_ms', 'bytes_sent', 'bytes_received', 'remote_name', 'netns'],
};

/** Throws unless the parsed line has the spec's fields in the spec's order. */
export function assertSpecOrder(obj: Record<string, unknown>): void {
  const keys = (o: unknown) => Object.keys(o as object).join(',');
  const expect = (got: string, want: string[], where: string) => {
    if (got !== want.join(',')) throw new Error(`${where}: fields ${got}, expected ${want.join(',')}`);
  };
  expect(keys(obj).split(',').slice(0, SPEC_ORDER.top.length).join(','), SPEC_ORDER.top, 'event');
  expect(keys(obj.process), SPEC_ORDER.process, 'process');
  expect(keys(obj.network_event), SPEC_ORDER.network_event, 'network_event');
  expect(keys(obj.host), SPEC_ORDER.host, 'host');
  expect(keys(obj.connection), SPEC_ORDER.connection, 'connection');
}
