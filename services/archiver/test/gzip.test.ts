import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { crc32, gunzipSync, inflateRawSync } from 'node:zlib';
import { GzipWriter, PIECE_BYTES } from '../src/gzip';

/** NDJSON-like lines, compressible as the archive's are. */
function lines(bytes: number, seed: number): Buffer {
  const out: string[] = [];
  let n = 0;
  for (let i = 0; n < bytes; i++) {
    const line = `{"seq":${seed * 1_000_000 + i},"host":"web-${i % 50}","args":"--flag=${(i * 7919) % 100003} \\"q\\" é"}\n`;
    out.push(line);
    n += Buffer.byteLength(line);
  }
  return Buffer.from(out.join('')).subarray(0, bytes);
}

async function gzipOf(data: Buffer, writes: number[], level = 6): Promise<Buffer> {
  const g = new GzipWriter(level);
  let at = 0;
  for (let i = 0; at < data.length; i++) {
    const n = Math.min(data.length - at, writes[i % writes.length]!);
    g.write(data.subarray(at, at + n));
    at += n;
  }
  return g.end();
}

/** One gzip member: a 10-byte header, ONE deflate stream holding everything, then the CRC and size of everything. */
function assertOneMember(gz: Buffer, data: Buffer): void {
  assert.deepEqual([...gz.subarray(0, 4)], [0x1f, 0x8b, 8, 0]);
  assert.deepEqual(inflateRawSync(gz.subarray(10, gz.length - 8)), data, 'one deflate stream');
  assert.equal(gz.readUInt32LE(gz.length - 8), crc32(data));
  assert.equal(gz.readUInt32LE(gz.length - 4), data.length % 2 ** 32);
}

describe('gzip writer (libdeflate, pieces joined into one member)', () => {
  test('round trip, one member, at piece boundaries and around them', async () => {
    for (const size of [0, 1, 100, PIECE_BYTES - 1, PIECE_BYTES, PIECE_BYTES + 1, Math.floor(3.5 * PIECE_BYTES)]) {
      const data = lines(size, size);
      const gz = await gzipOf(data, [65536, 1, 777, PIECE_BYTES + 3]);
      assert.deepEqual(gunzipSync(gz), data, `size ${size}`);
      assertOneMember(gz, data);
    }
  });

  test('incompressible bytes and tiny pieces (stored blocks) join as well', async () => {
    const data = Buffer.concat([randomBytes(PIECE_BYTES + 5000), lines(20, 1), randomBytes(3)]);
    const gz = await gzipOf(data, [PIECE_BYTES + 5000, 20, 3]);
    assertOneMember(gz, data);
  });

  test('the same bytes give the same object, however they were written', async () => {
    const data = lines(2.3 * PIECE_BYTES, 7);
    const whole = await gzipOf(data, [data.length]);
    assert.deepEqual(await gzipOf(data, [1000, 4096, 1]), whole);
    assert.deepEqual(await gzipOf(data, [PIECE_BYTES]), whole);
  });

  test('at level 6: smaller than a tenth of NDJSON, and readable by gzip itself', async () => {
    const data = lines(3 * PIECE_BYTES, 3);
    const gz = await gzipOf(data, [PIECE_BYTES]);
    assert.ok(gz.length < data.length / 10, `${gz.length} bytes of ${data.length}`);
    const dir = mkdtempSync(path.join(tmpdir(), 'netmon-gzip-'));
    try {
      const file = path.join(dir, 'x.json.gz');
      writeFileSync(file, gz);
      const r = spawnSync('gzip', ['-dc', file], { maxBuffer: 64 << 20 });
      assert.equal(r.status, 0, String(r.stderr));
      assert.deepEqual(r.stdout, data);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('back-pressure: congested above the high-water mark, drained below it', async () => {
    const g = new GzipWriter(6, PIECE_BYTES);
    g.write(lines(5 * PIECE_BYTES, 5));
    assert.equal(g.congested, true);
    await g.drained();
    assert.equal(g.congested, false);
    assert.ok((await g.end()).length > 0);
  });

  test('destroyed: later writes are ignored and end() refuses; bad levels are refused', async () => {
    const g = new GzipWriter(6);
    g.write(lines(2 * PIECE_BYTES, 2));
    g.destroy();
    g.write(Buffer.from('x'));
    assert.equal(g.congested, false);
    await g.drained();
    await assert.rejects(g.end(), /destroyed/);
    for (const level of [0, 13, -1]) assert.throws(() => new GzipWriter(level), RangeError);
  });
});
