// The TypeScript shapes in src/contracts.ts against the .avsc files: a typed
// sample of each must be valid for its schema and carry exactly its fields.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import avro from 'avsc';
import {
  type NetworkEvent,
  type RawPayloadOf,
  type RawRecord,
  type SensorStatusRecord,
  type SocketEvent,
  readSchema,
  sensorStatusCodec,
  unwrapPayload,
  wrapPayload,
} from '../src';
import { sampleRaw } from './samples';

type Schema = { type: unknown; name?: string; fields?: { name: string; type: unknown }[] };

/** Field names of a record schema, nested records flattened as a.b. */
function fieldPaths(schema: Schema, prefix = '', named = new Map<string, Schema>()): string[] {
  if (schema.name) named.set(schema.name, schema);
  return (schema.fields ?? []).flatMap((f) => {
    const t = (typeof f.type === 'string' ? named.get(f.type) : f.type) as Schema | undefined;
    const isRecord = t && typeof t === 'object' && t.type === 'record';
    return isRecord ? fieldPaths(t, `${prefix}${f.name}.`, named) : [`${prefix}${f.name}`];
  });
}

function valuePaths(value: Record<string, unknown>, prefix = ''): string[] {
  return Object.entries(value).flatMap(([k, v]) =>
    v && typeof v === 'object' && !Array.isArray(v) && !Buffer.isBuffer(v) ? valuePaths(v as Record<string, unknown>, `${prefix}${k}.`) : [`${prefix}${k}`],
  );
}

test('NetworkEvent: the TypeScript shape has exactly the schema fields, in order', () => {
  const schema = readSchema('network-event.avsc') as Schema;
  const event: NetworkEvent = {
    type: 'NetworkEvent',
    process: {
      pid: 1,
      tid: 1,
      ppid: 0,
      uid: 0,
      euid: 0,
      auid: 4294967295,
      cap_inheritable: 0,
      cap_permitted: 0,
      cap_effective: 0,
      secureexec: '',
      filename: 'init',
      binary_path: '/sbin/init',
      args: '',
      container_id: '',
    },
    network_event: { type: 'TcpConnectionClose', saddr: '127.0.0.1', daddr: '127.0.0.1', sport: 1, dport: 2, cookie: 3 },
    timestamp: '2025-05-31T10:05:51.282Z',
    host: { hostname: 'h', id: 'i' },
    source: { run_id: 'r', seq: 0 },
    connection: { outcome: 'established', duration_ms: 1, bytes_sent: 2, bytes_received: 3, remote_name: 'example.org', netns: 4026531840 },
    process_key: 'h:1:2',
  };
  assert.ok(avro.Type.forSchema(schema as avro.Schema).isValid(event));
  assert.deepEqual(valuePaths(event as unknown as Record<string, unknown>), fieldPaths(schema));
});

test('RawRecord: every payload branch is valid and wraps/unwraps', () => {
  const type = avro.Type.forSchema(readSchema('raw-record.avsc') as avro.Schema);
  const socket = sampleRaw(0);
  const first = unwrapPayload(socket.payload);
  assert.equal(first.kind, 'socket');
  const task = (first.value as SocketEvent).task;
  const payloads: RawPayloadOf[] = [
    unwrapPayload(socket.payload),
    { kind: 'exec', value: { task, snapshot: false, binary_path: '/usr/bin/curl', args: ['-6', 'x'], args_truncated: false, secureexec: ['SETUID'] } },
    { kind: 'exit', value: { pid: 1, tid: 1, start_time_us: 5, exit_code: 0 } },
    { kind: 'status', value: { seen: 1, lost_kernel: 0, spooled: 0, dropped: 0, spool_bytes: 0 } },
  ];
  for (const p of payloads) {
    const record: RawRecord = { ...socket, payload: wrapPayload(p) };
    assert.ok(type.isValid(record), p.kind);
    assert.deepEqual(unwrapPayload(record.payload).kind, p.kind);
  }
});

test('SensorStatus (status topic): the TypeScript shape has exactly the schema fields, in order, and round-trips', () => {
  const schema = readSchema('sensor-status.avsc') as Schema;
  const record: SensorStatusRecord = {
    timestamp: '2025-05-31T10:05:51.282Z',
    host: { hostname: 'h', id: 'i' },
    source: { run_id: 'r', seq: 7 },
    seen: 1,
    lost_kernel: 2,
    spooled: 3,
    dropped: 4,
    spool_bytes: 5,
  };
  assert.ok(avro.Type.forSchema(schema as avro.Schema).isValid(record));
  assert.deepEqual(valuePaths(record as unknown as Record<string, unknown>), fieldPaths(schema));
  const codec = sensorStatusCodec();
  assert.equal(JSON.stringify(codec.decode(codec.encode(record))), JSON.stringify(record), 'its JSON line is the record, fields in schema order');
  // the raw SensorStatus's counters, field for field, after timestamp, host and source
  const raw = (readSchema('raw-record.avsc') as { fields: { name: string; type: unknown }[] }).fields.find((f) => f.name === 'payload')!.type as Schema[];
  const counters = raw.find((b) => b.name === 'SensorStatus')!.fields!.map((f) => f.name);
  assert.deepEqual(fieldPaths(schema).slice(5), counters);
});
