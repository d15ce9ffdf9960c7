// The archive's S3 operations: manifests (read, conditional create) and data
// objects (single PUT or multipart through lib-storage), with the configured
// server-side encryption and storage class.
import {
  DeleteObjectCommand,
  GetObjectCommand,
  type ListObjectsV2CommandOutput,
  ListObjectsV2Command,
  PutObjectCommand,
  type PutObjectCommandInput,
  type S3Client,
  type StorageClass,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { S3Settings } from '@netmon/common';
import { StoreError } from './errors';
import { PARQUET_SUFFIX } from './layout';
import { type Manifest, decodeManifest, encodeManifest } from './manifest';

export interface StoreOptions {
  /** Bodies larger than this go up as multipart uploads of parts this size. */
  partSize: number;
  /** Parts of one multipart upload in flight at once. */
  queueSize: number;
}

/** gzip NDJSON is stored as such (Athena reads the .gz; no Content-Encoding, so clients do not unpack it). */
function contentType(key: string): string {
  return key.endsWith(PARQUET_SUFFIX) ? 'application/vnd.apache.parquet' : 'application/x-ndjson';
}

function statusOf(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

export class ArchiveStore {
  constructor(
    readonly client: S3Client,
    readonly settings: S3Settings,
    readonly options: StoreOptions = { partSize: 16 << 20, queueSize: 4 },
  ) {}

  get bucket(): string {
    return this.settings.bucket;
  }

  private encryption(): Pick<PutObjectCommandInput, 'ServerSideEncryption' | 'SSEKMSKeyId' | 'StorageClass'> {
    const s = this.settings;
    return {
      ...(s.sse ? { ServerSideEncryption: s.sse } : {}),
      ...(s.kmsKeyId ? { SSEKMSKeyId: s.kmsKeyId } : {}),
      ...(s.storageClass ? { StorageClass: s.storageClass as StorageClass } : {}),
    };
  }

  /** The manifest at `key`, or undefined when there is none. */
  async getManifest(key: string): Promise<Manifest | undefined> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      const text = await out.Body!.transformToString('utf8');
      return decodeManifest(text, key);
    } catch (err) {
      const status = statusOf(err);
      if (status === 404 || (err as Error).name === 'NoSuchKey') return undefined;
      throw new StoreError('GetObject', key, { cause: err });
    }
  }

  /**
   * Creates the manifest unless one exists (PUT with If-None-Match: *).
   * 'exists' when another writer got there first (412).
   */
  async createManifest(key: string, manifest: Manifest): Promise<'created' | 'exists'> {
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: encodeManifest(manifest),
          ContentType: 'application/json',
          IfNoneMatch: '*',
          ...this.encryption(),
        }),
      );
      return 'created';
    } catch (err) {
      if (statusOf(err) === 412) return 'exists';
      // 409 ConditionalRequestConflict: a concurrent create; the retry sees who won.
      throw new StoreError('PutObject (If-None-Match)', key, { cause: err });
    }
  }

  /**
   * Uploads one data object. Its content is fixed by the manifest, so writing it
   * again (a replay, a zombie) stores the same bytes: no condition needed.
   */
  async putObject(key: string, body: Buffer): Promise<void> {
    try {
      const upload = new Upload({
        client: this.client,
        params: { Bucket: this.bucket, Key: key, Body: body, ContentType: contentType(key), ...this.encryption() },
        partSize: this.options.partSize,
        queueSize: this.options.queueSize,
        leavePartsOnError: false,
      });
      await upload.done();
    } catch (err) {
      throw new StoreError(body.length > this.options.partSize ? 'multipart upload' : 'PutObject', key, { cause: err });
    }
  }

  /**
   * Writes `body` at `key` (a PUT with the configured encryption, as every
   * object is written): whether this archiver may write where it will, within
   * `timeoutMs`. No delete: the archiver's role has none (infra/k8s), so the
   * probe uses one fixed key that each start overwrites.
   */
  async probeWrite(key: string, body: string, timeoutMs: number): Promise<void> {
    await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentType: 'application/json', ...this.encryption() }), {
      abortSignal: AbortSignal.timeout(timeoutMs),
    });
  }

  /** Every key under `prefix` (with sizes), in key order. */
  async list(prefix: string): Promise<{ key: string; size: number; etag: string }[]> {
    const keys: { key: string; size: number; etag: string }[] = [];
    let token: string | undefined;
    do {
      let out: ListObjectsV2CommandOutput;
      try {
        out = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }));
      } catch (err) {
        throw new StoreError('ListObjectsV2', prefix, { cause: err });
      }
      for (const o of out.Contents ?? []) keys.push({ key: o.Key!, size: o.Size ?? 0, etag: o.ETag ?? '' });
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
    return keys;
  }

  async getBytes(key: string): Promise<Buffer> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return Buffer.from(await out.Body!.transformToByteArray());
    } catch (err) {
      throw new StoreError('GetObject', key, { cause: err });
    }
  }

  /** Deletes every object under `prefix` (tests and benchmarks clean up with it). */
  async deletePrefix(prefix: string, concurrency = 8): Promise<number> {
    const keys = (await this.list(prefix)).map((o) => o.key);
    let next = 0;
    const worker = async () => {
      while (next < keys.length) {
        const key = keys[next++]!;
        await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, keys.length) }, worker));
    return keys.length;
  }
}
