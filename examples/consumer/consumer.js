#!/usr/bin/env node
// A custom consumer of netmon.events.v1 that needs nothing from Netmon but the
// .avsc files: kafkajs, avsc, and lz4-napi for LZ4-compressed batches (the
// services' default). Prints one line per connection event:
//   time  host  type  process[pid]  local → remote  container
//
//   node examples/consumer/consumer.js --brokers 127.0.0.1:9092 --topic netmon.events.v1 [--from-beginning] [--max N]
//     [--group ID] [--schemas DIR] [--json]
const { readFileSync, readdirSync, existsSync } = require('node:fs');
const path = require('node:path');
const { parseArgs } = require('node:util');
const avro = require('avsc');
const { Kafka, CompressionCodecs, CompressionTypes, logLevel } = require('kafkajs');
const { decompressFrameSync } = require('lz4-napi');

const { values: opt } = parseArgs({
  options: {
    brokers: { type: 'string', default: '127.0.0.1:9092' },
    topic: { type: 'string', default: 'netmon.events.v1' },
    group: { type: 'string' }, // default: a new group per run, like kafka-console-consumer
    'from-beginning': { type: 'boolean', default: false },
    max: { type: 'string' },
    schemas: { type: 'string', default: path.join(__dirname, '../../schemas/avro') },
    json: { type: 'boolean', default: false },
  },
});
const max = opt.max === undefined ? Number.POSITIVE_INFINITY : Number(opt.max);

// ---- Avro single-object encoding: C3 01, 8-byte little-endian CRC-64-AVRO
// fingerprint of the writer schema's Parsing Canonical Form, then the body.
const CRC_EMPTY = 0xc15d213aa4d7a795n;
const CRC_TABLE = Array.from({ length: 256 }, (_, i) => {
  let fp = BigInt(i);
  for (let bit = 0; bit < 8; bit++) fp = (fp >> 1n) ^ (CRC_EMPTY & -(fp & 1n));
  return fp;
});
function crc64Avro(bytes) {
  let fp = CRC_EMPTY;
  for (const b of bytes) fp = (fp >> 8n) ^ CRC_TABLE[Number((fp ^ BigInt(b)) & 0xffn)];
  return fp;
}
// avsc's getSchema() is the Parsing Canonical Form.
const fingerprint = (type) => crc64Avro(Buffer.from(JSON.stringify(type.getSchema())));

// The current schema reads; older versions (history/) are resolved to it.
const readSchema = (file) => avro.Type.forSchema(JSON.parse(readFileSync(path.join(opt.schemas, file), 'utf8')));
const reader = readSchema('network-event.avsc');
const writers = new Map([[fingerprint(reader), undefined]]);
if (existsSync(path.join(opt.schemas, 'history'))) {
  for (const f of readdirSync(path.join(opt.schemas, 'history')).filter((n) => /^network-event\.v\d+\.avsc$/.test(n))) {
    const old = readSchema(path.join('history', f));
    writers.set(fingerprint(old), reader.createResolver(old));
  }
}

function decode(buf) {
  if (buf.length < 10 || buf[0] !== 0xc3 || buf[1] !== 0x01) throw new Error('not single-object encoded');
  const fp = buf.readBigUInt64LE(2);
  if (!writers.has(fp)) throw new Error(`unknown writer schema ${buf.subarray(2, 10).toString('hex')}`);
  return reader.fromBuffer(buf.subarray(10), writers.get(fp)); // throws on trailing bytes
}

// ---- printing
const endpoint = (addr, port) => (addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`);
function line(e) {
  const n = e.network_event;
  const container = e.process.container_id ? e.process.container_id.slice(0, 12) : '-';
  const what = n.type.replace(/^TcpConnection/, '').padEnd(9);
  return `${e.timestamp}  ${e.host.hostname}  ${what} ${e.process.filename}[${e.process.pid}]  ${endpoint(n.saddr, n.sport)} → ${endpoint(n.daddr, n.dport)}  ${container}`;
}

// ---- Kafka
CompressionCodecs[CompressionTypes.LZ4] = () => ({
  compress: async () => {
    throw new Error('this consumer does not produce');
  },
  decompress: async (buffer) => decompressFrameSync(buffer),
});

let stopping; // set once SIGINT/SIGTERM or --max asked to stop

async function main() {
  const kafka = new Kafka({ clientId: 'netmon-example-consumer', brokers: opt.brokers.split(','), logLevel: logLevel.WARN });
  const consumer = kafka.consumer({
    groupId: opt.group ?? `netmon-example-${process.pid}-${Date.now()}`,
    readUncommitted: false, // isolation.level=read_committed: only events of committed transactions
  });
  let printed = 0;
  let failed = 0;
  let done;
  const finished = new Promise((resolve) => {
    done = resolve;
  });
  const stop = () => {
    stopping ??= consumer.disconnect().finally(done);
    return stopping;
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);

  await consumer.connect();
  await consumer.subscribe({ topic: opt.topic, fromBeginning: opt['from-beginning'] });
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      if (printed >= max) return;
      let event;
      try {
        event = decode(message.value);
      } catch (err) {
        failed++;
        process.stderr.write(`partition ${partition} offset ${message.offset}: ${err.message}\n`);
        return;
      }
      process.stdout.write(`${opt.json ? JSON.stringify(event) : line(event)}\n`);
      if (++printed >= max) setImmediate(stop);
    },
  });
  await finished;
  if (failed > 0) process.stderr.write(`${failed} records could not be decoded\n`);
}

main().catch((err) => {
  if (stopping) return; // interrupted while connecting
  process.stderr.write(`consumer: ${err.stack ?? err}\n`);
  process.exit(1);
});
