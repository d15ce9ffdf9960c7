// A whole pipeline for one test: topics, groups and an S3 prefix of its own,
// and the three services as separate `netmon` processes; its archive read back.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { DeleteObjectsCommand, GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { type NetworkEvent, createS3Client } from '@netmon/common';
import { type Child, startNetmon } from './processes';
import { createTopic, deleteTopics, testConfig, testKafka } from './topics';
import { waitUntil } from './wait';

export type Service = 'sensor' | 'enricher' | 'archiver';

export interface Pipeline {
  prefix: string;
  config: string;
  children: Map<Service, Child>;
  /** Starts (or restarts) a service; resolves once it runs. */
  start(service: Service): Promise<Child>;
  stop(): Promise<void>;
}

const kafka = testKafka();
const s3Settings = testConfig().s3;
const s3 = createS3Client(s3Settings);
const started: Pipeline[] = [];

/** `sensorSettings`: more `sensor:` settings, e.g. ", pin_dir: /sys/fs/bpf/x". */
export async function startPipeline(processFilter = '', sensorSettings = ''): Promise<Pipeline> {
  const id = randomUUID().slice(0, 8);
  const raw = await createTopic(kafka, `netmon.e2e.raw.${id}`);
  const events = await createTopic(kafka, `netmon.e2e.events.${id}`);
  const dlq = await createTopic(kafka, `netmon.e2e.dlq.${id}`, 1);
  const status = await createTopic(kafka, `netmon.e2e.status.${id}`);
  const dir = mkdtempSync(path.join(tmpdir(), 'netmon-e2e-'));
  const prefix = `e2e/${id}`;
  const config = path.join(dir, 'netmon.yaml');
  writeFileSync(
    config,
    [
      `topics: { raw: ${raw}, events: ${events}, dlq: ${dlq}, status: ${status} }`,
      `s3: { bucket: ${s3Settings.bucket}, prefix: ${prefix} }`,
      `sensor: { spool_dir: ${dir}/spool, metrics_port: 0, status_interval_s: 1${sensorSettings} }`,
      `enricher: { group_id: netmon-e2e-enricher-${id}, metrics_port: 0, process_wait_ms: 2000 }`,
      `archiver: { group_id: netmon-e2e-archiver-${id}, metrics_port: 0, idle_flush_s: 1, flush_span_s: 5 }`,
      processFilter,
    ].join('\n'),
  );
  const children = new Map<Service, Child>();
  const pipeline: Pipeline = {
    prefix,
    config,
    children,
    start: async (service) => {
      const child = startNetmon([service, '--config', config]);
      children.set(service, child);
      const ready = service === 'sensor' ? '"sensor started"' : undefined;
      if (ready) await waitUntil(`the ${service} to start`, () => child.stderr().includes(ready) || child.proc.exitCode !== null, 60_000);
      if (child.proc.exitCode !== null) throw new Error(`${service} exited: ${child.stderr().slice(-2000)}`);
      return child;
    },
    stop: async () => {
      for (const service of ['sensor', 'enricher', 'archiver'] as const) await children.get(service)?.stop('SIGTERM');
      // and the enricher's changelog (services/enricher/src/config.ts names it)
      await deleteTopics(kafka, [raw, events, dlq, status, `netmon-e2e-enricher-${id}.state`]);
      await deleteArchive(prefix);
    },
  };
  started.push(pipeline);
  await pipeline.start('enricher');
  await pipeline.start('archiver');
  await pipeline.start('sensor');
  return pipeline;
}

/** The archive of a prefix: the events (and their manifests) under prefix/, the sensors' status records under prefix-status/. */
export async function deleteArchive(prefix: string): Promise<void> {
  for (const under of [`${prefix}/`, `${prefix}-status/`]) {
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: s3Settings.bucket, Prefix: under }));
    const keys = (listed.Contents ?? []).map((o) => ({ Key: o.Key! }));
    if (keys.length > 0) await s3.send(new DeleteObjectsCommand({ Bucket: s3Settings.bucket, Delete: { Objects: keys } }));
  }
}

/** Stops every pipeline started (for `after`). */
export async function stopPipelines(): Promise<void> {
  for (const p of started.splice(0)) await p.stop();
}

/** Every archived event under the pipeline's prefix. */
export async function archived(p: Pick<Pipeline, 'prefix'>): Promise<NetworkEvent[]> {
  return (await archivedObjects(p)).flatMap((o) => o.events);
}

/** The archive's objects in S3: each one's key, LastModified (ms; S3 keeps whole seconds) and events. */
export async function archivedObjects(p: Pick<Pipeline, 'prefix'>): Promise<Array<{ key: string; modifiedMs: number; events: NetworkEvent[] }>> {
  const objects: Array<{ key: string; modifiedMs: number; events: NetworkEvent[] }> = [];
  let token: string | undefined;
  do {
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: s3Settings.bucket, Prefix: `${p.prefix}/dt=`, ContinuationToken: token }));
    for (const o of listed.Contents ?? []) {
      if (!o.Key?.endsWith('.json.gz')) continue;
      const got = await s3.send(new GetObjectCommand({ Bucket: s3Settings.bucket, Key: o.Key }));
      const text = gunzipSync(Buffer.from(await got.Body!.transformToByteArray())).toString();
      const events = text
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as NetworkEvent);
      objects.push({ key: o.Key, modifiedMs: o.LastModified?.getTime() ?? 0, events });
    }
    token = listed.NextContinuationToken;
  } while (token);
  return objects;
}
