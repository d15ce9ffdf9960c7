// What Netmon needs from the S3 server, through @aws-sdk/client-s3 with default
// settings (checksum headers included): put, list, get, multipart upload, delete.
// Runs against S3_ENDPOINT, else the native stack (DEFAULT_S3.endpoint).
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, test } from 'node:test';
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { DEFAULT_S3 } from '@netmon/common';

const s3 = new S3Client({
  endpoint: process.env.S3_ENDPOINT ?? DEFAULT_S3.endpoint,
  region: DEFAULT_S3.region,
  forcePathStyle: true,
  credentials: { accessKeyId: DEFAULT_S3.accessKeyId, secretAccessKey: DEFAULT_S3.secretAccessKey },
});
const Bucket = DEFAULT_S3.bucket;
const prefix = `stack-test/${process.pid}-${Date.now()}/`;

async function body(Key: string): Promise<Buffer> {
  const out = await s3.send(new GetObjectCommand({ Bucket, Key }));
  return Buffer.from(await out.Body!.transformToByteArray());
}

async function keys(): Promise<string[]> {
  const out = await s3.send(new ListObjectsV2Command({ Bucket, Prefix: prefix }));
  return (out.Contents ?? []).map((o) => o.Key!).sort();
}

after(async () => {
  for (const Key of await keys()) await s3.send(new DeleteObjectCommand({ Bucket, Key }));
  s3.destroy();
});

test('the archive bucket exists', async () => {
  await s3.send(new HeadBucketCommand({ Bucket }));
});

test('put, list, get, delete', async () => {
  await s3.send(new PutObjectCommand({ Bucket, Key: `${prefix}a.txt`, Body: 'hello', ContentType: 'text/plain' }));
  const data = Buffer.alloc(300_000, 7);
  // a stream body: aws-chunked upload with a trailing checksum
  await s3.send(
    new PutObjectCommand({
      Bucket,
      Key: `${prefix}b.bin`,
      Body: Readable.from([data.subarray(0, 100_000), data.subarray(100_000)]),
      ContentLength: data.length,
    }),
  );
  assert.deepEqual(await keys(), [`${prefix}a.txt`, `${prefix}b.bin`]);
  assert.equal((await body(`${prefix}a.txt`)).toString(), 'hello');
  assert.ok((await body(`${prefix}b.bin`)).equals(data));
  await s3.send(new DeleteObjectCommand({ Bucket, Key: `${prefix}a.txt` }));
  const deleted = await s3.send(new DeleteObjectsCommand({ Bucket, Delete: { Objects: [{ Key: `${prefix}b.bin` }] } }));
  assert.equal(deleted.Deleted?.length, 1);
  assert.deepEqual(await keys(), []);
});

test('multipart upload', async () => {
  const Key = `${prefix}multi.bin`;
  const part1 = Buffer.alloc(5 * 1024 * 1024, 1);
  const part2 = Buffer.from('the last part may be small');
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket, Key }));
  const r1 = await s3.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: 1, Body: part1 }));
  const r2 = await s3.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: 2, Body: part2 }));
  await s3.send(
    new CompleteMultipartUploadCommand({
      Bucket,
      Key,
      UploadId,
      MultipartUpload: {
        Parts: [
          { ETag: r1.ETag, PartNumber: 1 },
          { ETag: r2.ETag, PartNumber: 2 },
        ],
      },
    }),
  );
  assert.ok((await body(Key)).equals(Buffer.concat([part1, part2])));
  await s3.send(new DeleteObjectCommand({ Bucket, Key }));
  assert.deepEqual(await keys(), []);
});
