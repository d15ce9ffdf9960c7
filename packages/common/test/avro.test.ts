import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import avro from 'avsc';
import {
  DecodeError,
  type NetworkEvent,
  type RawRecord,
  type SocketEvent,
  SingleObjectCodec,
  canonicalForm,
  crc64Avro,
  fingerprint,
  networkEventCodec,
  rawRecordCodec,
  readSchema,
  schemaDir,
} from '../src';
import { sampleRaw } from './samples';

const fixtures = path.resolve(__dirname, '../../test/fixtures');
const vectors = JSON.parse(readFileSync(path.join(fixtures, 'avro-schema-tests.json'), 'utf8')).vectors as {
  input: string;
  canonical: string;
  fingerprint: string | null;
}[];

function readJson<T>(file: string): T {
  return JSON.parse(readFileSync(path.join(schemaDir(), file), 'utf8')) as T;
}

describe('Parsing Canonical Form and CRC-64-AVRO (Apache Avro test vectors)', () => {
  for (const [i, v] of vectors.entries()) {
    test(`vector ${String(i).padStart(3, '0')}: ${v.input.replace(/\s+/g, ' ').slice(0, 60)}`, () => {
      assert.equal(canonicalForm(v.input), v.canonical);
      if (v.fingerprint !== null) {
        const fp = crc64Avro(Buffer.from(v.canonical, 'utf8'));
        assert.equal(BigInt.asIntN(64, fp).toString(), v.fingerprint);
      }
    });
  }

  test("the fingerprint is not avsc's own (MD5) fingerprint", () => {
    const schema = readSchema('network-event.avsc');
    assert.notDeepEqual(
      fingerprint(schema),
      avro.Type.forSchema(schema as avro.Schema)
        .fingerprint()
        .subarray(0, 8),
    );
  });
});

describe('single-object encoding', () => {
  test('NetworkEvent round trip keeps every field, in the spec order', () => {
    const codec = networkEventCodec();
    const event = readJson<NetworkEvent>('fixtures/network-event.valid.json');
    const bytes = codec.encode(event);
    assert.deepEqual([...bytes.subarray(0, 2)], [0xc3, 0x01]);
    assert.deepEqual(bytes.subarray(2, 10), fingerprint(readSchema('network-event.avsc')));
    const back = codec.decode(bytes);
    assert.equal(JSON.stringify(back), JSON.stringify(event));
  });

  test('RawRecord round trip, including the union payload and bytes', () => {
    const codec = rawRecordCodec();
    const rec = sampleRaw(7);
    const back = codec.decode(codec.encode(rec));
    assert.deepEqual(JSON.parse(JSON.stringify(back)), JSON.parse(JSON.stringify(rec)));
    const socket = (back.payload as { 'netmon.raw.SocketEvent': { saddr: Buffer } })['netmon.raw.SocketEvent'];
    assert.ok(Buffer.isBuffer(socket.saddr));
  });

  test('records packed back to back decode one by one; a bad one is named by its index', () => {
    const codec = rawRecordCodec();
    const packed = Buffer.concat([1, 2, 3].map((seq) => codec.encode(sampleRaw(seq))));
    assert.deepEqual(
      codec.decodeAll(packed).map((r) => r.seq),
      [1, 2, 3],
    );
    const cut = packed.subarray(0, packed.length - 4);
    assert.throws(
      () => codec.decodeAll(cut),
      (err: unknown) => err instanceof DecodeError && /record 2 at byte/.test(err.message),
    );
    assert.throws(
      () => codec.decodeAll(Buffer.alloc(0)),
      (err: unknown) => err instanceof DecodeError && err.reason === 'too-short',
    );
  });

  test('a deliberately invalid fixture is refused when encoding', () => {
    const bad = readJson<NetworkEvent>('fixtures/network-event.invalid.json');
    assert.throws(() => networkEventCodec().encode(bad));
  });

  test('a record written with the older NetworkEvent (v0) decodes to the current one, with defaults', () => {
    const v0 = readSchema('history/network-event.v0.avsc');
    const writer = new SingleObjectCodec<Omit<NetworkEvent, 'source'>>(v0);
    const { source: _drop, ...old } = readJson<NetworkEvent>('fixtures/network-event.valid.json');
    const back = networkEventCodec().decode(writer.encode(old));
    assert.deepEqual({ ...back.source }, { run_id: '', seq: -1 });
    assert.equal(back.network_event.cookie, 4109);
    assert.equal(back.process.binary_path, '/usr/bin/curl');
  });

  test('each kind of bad bytes gives its typed DecodeError', () => {
    const codec = networkEventCodec();
    const good = codec.encode(readJson<NetworkEvent>('fixtures/network-event.valid.json'));
    const cases: [Buffer, string][] = [
      [Buffer.from([0xc3]), 'too-short'],
      [Buffer.concat([Buffer.from([0x7b, 0x22]), good.subarray(2)]), 'bad-magic'],
      [Buffer.concat([good.subarray(0, 2), Buffer.alloc(8, 0xee), good.subarray(10)]), 'unknown-fingerprint'],
      [good.subarray(0, good.length - 3), 'corrupt-body'],
      [Buffer.concat([good, Buffer.from([0, 0])]), 'trailing-bytes'],
    ];
    for (const [bytes, reason] of cases) {
      assert.throws(
        () => codec.decode(bytes),
        (err: unknown) => err instanceof DecodeError && err.reason === reason,
        reason,
      );
    }
  });

  test('10,000 random corruptions never crash: a value or a DecodeError', () => {
    const codec = rawRecordCodec();
    const good = codec.encode(sampleRaw(1));
    let seed = 42;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    let errors = 0;
    for (let i = 0; i < 10_000; i++) {
      const bytes = Buffer.from(good);
      for (let k = 0; k <= rand(4); k++) bytes[10 + rand(bytes.length - 10)] = rand(256);
      try {
        const value = codec.decode(bytes.subarray(0, rand(3) === 0 ? rand(bytes.length) : bytes.length));
        assert.ok(codec.type.isValid(value));
      } catch (err) {
        assert.ok(err instanceof DecodeError, `unexpected ${String(err)}`);
        errors++;
      }
    }
    assert.ok(errors > 1000, `only ${errors} corruptions were detected`);
  });
});

test('an array claiming a billion items in a few bytes is refused at once (no allocation, no loop)', () => {
  const codec = rawRecordCodec();
  const exec = (args: string[]): RawRecord => ({
    ...sampleRaw(1),
    payload: {
      'netmon.raw.ProcessExec': {
        task: (sampleRaw(1).payload as { 'netmon.raw.SocketEvent': SocketEvent })['netmon.raw.SocketEvent'].task,
        snapshot: false,
        binary_path: '/x',
        args,
        args_truncated: false,
        secureexec: [],
      },
    },
  });
  const empty = codec.encode(exec([]));
  const one = codec.encode(exec(['a']));
  const at = empty.findIndex((b, i) => b !== one[i]); // the args count (0 in `empty`)
  const billion = avro.Type.forSchema('long').toBuffer(1e9);
  const hostile = Buffer.concat([empty.subarray(0, at), billion, empty.subarray(at + 1)]);
  const started = performance.now();
  assert.throws(() => codec.decode(hostile), DecodeError);
  assert.ok(performance.now() - started < 100, `refused in ${performance.now() - started} ms`);
});
