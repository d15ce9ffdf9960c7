// The local S3-compatible server: S3Proxy with its filesystem backend, on DEFAULT_S3.endpoint.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CreateBucketCommand, HeadBucketCommand, ListBucketsCommand, S3Client } from '@aws-sdk/client-s3';
import { DEFAULT_S3 } from '@netmon/common';
import { StackError, tailOf } from './errors';
import { classPath } from './fetch';
import { type StackLayout, renderTemplate, writeIfChanged } from './layout';
import { isAlive, sleep, spawnDetached } from './process';
import { findJava } from './tools';

export function s3Markers(layout: StackLayout): string[] {
  return ['-Dnetmon.stack.service=s3', `-Dnetmon.stack.dir=${layout.dir}`];
}

/** A client with the default credentials, short timeouts and no retries. */
export function s3Client(layout: StackLayout, timeoutMs = 3000): S3Client {
  return new S3Client({
    endpoint: layout.s3.address,
    region: DEFAULT_S3.region,
    forcePathStyle: DEFAULT_S3.forcePathStyle,
    credentials: { accessKeyId: DEFAULT_S3.accessKeyId, secretAccessKey: DEFAULT_S3.secretAccessKey },
    maxAttempts: 1,
    requestHandler: { connectionTimeout: 1000, requestTimeout: timeoutMs },
  });
}

function writeConfig(layout: StackLayout): void {
  const s = layout.s3;
  fs.mkdirSync(s.data, { recursive: true });
  writeIfChanged(
    s.config,
    renderTemplate(s.template, {
      ENDPOINT: s.address,
      ACCESS_KEY_ID: DEFAULT_S3.accessKeyId,
      SECRET_ACCESS_KEY: DEFAULT_S3.secretAccessKey,
      DATA_DIR: s.data,
    }),
  );
}

export async function launchS3(layout: StackLayout): Promise<number> {
  const s = layout.s3;
  writeConfig(layout);
  return spawnDetached({
    command: findJava(),
    args: [
      '-Xms64m',
      '-Xmx512m',
      '-XX:+UseSerialGC',
      '-XX:+ExitOnOutOfMemoryError',
      '-Djava.awt.headless=true',
      `-Dlogback.configurationFile=${s.logback}`,
      ...s3Markers(layout),
      '-cp',
      classPath(s),
      'org.gaul.s3proxy.Main',
      '--properties',
      s.config,
    ],
    cwd: path.dirname(s.config),
    logFile: s.log,
    pidFile: s.pidFile,
  });
}

/** Whether the server answers a signed ListBuckets. */
export async function s3Answers(layout: StackLayout, timeoutMs = 3000): Promise<{ ok: boolean; detail: string }> {
  const client = s3Client(layout, timeoutMs);
  try {
    const out = await client.send(new ListBucketsCommand({}));
    const names = (out.Buckets ?? []).map((b) => b.Name).join(', ');
    return { ok: true, detail: `buckets: ${names || '(none)'}` };
  } catch (err) {
    const e = err as Error & { $metadata?: { httpStatusCode?: number } };
    return { ok: false, detail: `${e.name}: ${e.message}${e.$metadata?.httpStatusCode ? ` (HTTP ${e.$metadata.httpStatusCode})` : ''}` };
  } finally {
    client.destroy();
  }
}

export async function waitS3Ready(layout: StackLayout, pid: number, timeoutMs = 60_000): Promise<void> {
  const s = layout.s3;
  const until = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < until) {
    if (!isAlive(pid)) {
      throw new StackError('start s3', `S3Proxy (pid ${pid}) exited during start-up${tailOf(s.log)}`, s.log);
    }
    const answer = await s3Answers(layout, 2000);
    if (answer.ok) return;
    last = answer.detail;
    await sleep(300);
  }
  throw new StackError('start s3', `no answer on ${s.address} within ${timeoutMs / 1000} s (last: ${last})${tailOf(s.log)}`, s.log);
}

/**
 * Creates the archive bucket when it is missing: on the plain S3Proxy, or, with
 * `server`, on another (the HTTPS one of s3-secure.ts; its client is destroyed here).
 */
export async function ensureBucket(
  layout: StackLayout,
  log: (msg: string) => void,
  bucket: string = DEFAULT_S3.bucket,
  server: { client: S3Client; logFile: string } = { client: s3Client(layout, 10_000), logFile: layout.s3.log },
): Promise<void> {
  const { client } = server;
  try {
    try {
      await client.send(new HeadBucketCommand({ Bucket: bucket }));
      return;
    } catch (err) {
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status !== 404) throw err;
    }
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    log(`s3: created bucket ${bucket}`);
  } catch (err) {
    throw new StackError('create s3 bucket', `${bucket}: ${(err as Error).message}`, server.logFile, { cause: err });
  } finally {
    client.destroy();
  }
}
