// Where the fidelity tests read the events: the JSON lines of `netmon run`
// (single-host mode, each with the wall-clock time it appeared), and for the
// pipeline the archive through `netmon query`, the events topic and the
// dead-letter topic.
import { execFile, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { type NetworkEvent, loadConfig, networkEventCodec } from '@netmon/common';
import type { Pipeline } from '../pipeline';
import { type Child, NETMON_BIN } from '../processes';
import { testKafka } from '../topics';
import { waitUntil } from '../wait';

/** The NetworkEvent lines of a `netmon run` child, each with the time its line appeared. */
export class EventLines {
  private readonly list: NetworkEvent[] = [];
  private readonly arrivals = new Map<NetworkEvent, number>();
  private partial = '';
  /** Lines that were not JSON (there should be none). */
  readonly junk: string[] = [];

  constructor(child: Child) {
    child.proc.stdout!.on('data', (chunk: Buffer) => {
      const at = Date.now();
      const text = this.partial + chunk.toString();
      const lines = text.split('\n');
      this.partial = lines.pop() ?? '';
      for (const line of lines) {
        if (line.trim() === '') continue;
        try {
          const e = JSON.parse(line) as NetworkEvent;
          this.list.push(e);
          this.arrivals.set(e, at);
        } catch {
          this.junk.push(line);
        }
      }
    });
  }

  events(): NetworkEvent[] {
    return this.list;
  }

  /** Wall-clock ms when the event's line was read from netmon's stdout. */
  arrival = (e: NetworkEvent): number | undefined => this.arrivals.get(e);
}

/** The spec's fields in its order, NetworkEvent v2's (connection, process_key) included. */
export const ARCHIVE_SQL = 'SELECT "type", process, network_event, "timestamp", host, "source", connection, process_key FROM network_events';

/**
 * `netmon query --json SQL` over the pipeline's archive, its stdout as text. `via: 'file'` points
 * its stdout at a file; `via: 'pipe'` reads it through a pipe, as `netmon query ... | jq` does.
 */
export async function runQuery(p: Pipeline, sql: string, via: 'file' | 'pipe' = 'file'): Promise<string> {
  const dir = mkdtempSync(path.join(tmpdir(), 'netmon-query-'));
  try {
    const env = { ...process.env, NETMON_CACHE_DIR: path.join(dir, 'cache') };
    const args = [NETMON_BIN, 'query', '--json', '--config', p.config, sql];
    if (via === 'pipe') {
      const { stdout } = await promisify(execFile)(process.execPath, args, { env, maxBuffer: 1 << 30, timeout: 120_000 });
      return stdout;
    }
    const out = path.join(dir, 'stdout.json');
    const fd = openSync(out, 'w');
    let stderr = '';
    try {
      const child = spawn(process.execPath, args, { env, stdio: ['ignore', fd, 'pipe'] });
      child.stderr?.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
      if (code !== 0) throw new Error(`netmon query exited ${code}: ${stderr.slice(-1000)}`);
    } finally {
      closeSync(fd);
    }
    return readFileSync(out, 'utf8');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** JSON lines → events; a line that is not JSON fails with the line. */
export function parseEventLines(text: string, what: string): NetworkEvent[] {
  return text
    .split('\n')
    .filter(Boolean)
    .map((l, i) => {
      try {
        return JSON.parse(l) as NetworkEvent;
      } catch (err) {
        throw new Error(`${what} printed a line that is not JSON (line ${i + 1}, ${(err as Error).message}): ${l.slice(0, 400)}`);
      }
    });
}

/** Every archived event, through `netmon query --json` (DuckDB over the S3 objects), as the spec's JSON. */
export async function queryArchive(p: Pipeline): Promise<NetworkEvent[]> {
  return parseEventLines(await runQuery(p, ARCHIVE_SQL, 'file'), 'netmon query --json');
}

/** The pipeline's topic names (from its config file). */
export const pipelineTopics = (p: Pipeline) => loadConfig(p.config).topics;

/** The pipeline's events topic (read committed), decoded, read until `enough` holds; fails after `timeoutMs`. */
export async function readEventsTopic(p: Pipeline, enough: (events: NetworkEvent[]) => boolean, timeoutMs = 120_000): Promise<NetworkEvent[]> {
  const codec = networkEventCodec();
  const consumer = testKafka().consumer({ groupId: `netmon-it-fidelity-${randomUUID()}` });
  const out: NetworkEvent[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic: pipelineTopics(p).events, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        out.push(codec.decode(message.value ?? Buffer.alloc(0)) as NetworkEvent);
      },
    });
    await waitUntil('the events topic to hold the archived events', () => enough(out), timeoutMs, 500).catch((err: Error) => {
      throw new Error(`${err.message} (${out.length} events read)`);
    });
  } finally {
    await consumer.disconnect();
  }
  return out;
}

/** The dead-letter topic's records: count (high watermarks) and, if any, their reasons. */
export async function deadLetters(p: Pipeline): Promise<{ count: number; reasons: string[] }> {
  const kafka = testKafka();
  const topic = pipelineTopics(p).dlq;
  const admin = kafka.admin();
  await admin.connect();
  let count = 0;
  try {
    for (const o of await admin.fetchTopicOffsets(topic)) count += Number(o.high) - Number(o.low);
  } finally {
    await admin.disconnect();
  }
  if (count === 0) return { count, reasons: [] };
  const consumer = kafka.consumer({ groupId: `netmon-it-dlq-${randomUUID()}` });
  const reasons: string[] = [];
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 20_000);
    consumer.run({
      eachMessage: async ({ message }) => {
        const h = (k: string) => message.headers?.[k]?.toString() ?? '';
        reasons.push(`${h('netmon-dlq-reason')}: ${h('netmon-dlq-detail')}`.slice(0, 300));
        if (reasons.length >= Math.min(count, 20)) {
          clearTimeout(timer);
          resolve();
        }
      },
    });
  });
  await consumer.disconnect();
  return { count, reasons };
}
