// A Kafka record's value to the JSON line the archive stores. Fast path: Avro
// bytes straight to the JSON line (transcode.ts); else decode once, stringify
// once. Pure CPU: no Kafka, no S3. One decoder per contract: NetworkEvent for
// the events topic, SensorStatus for the status topic; both have a
// `timestamp` (RFC 3339 UTC) that picks the hour partition.
import { DecodeError, type SingleObjectCodec, networkEventCodec, readSchema, sensorStatusCodec } from '@netmon/common';
import type { ArchiveRecord } from './batch';
import { type HourPartition, hourOf, timeOf } from './layout';
import { type InMessage, Undecodable } from './partition';
import { JsonTranscoder, fastTime } from './transcode';

/** The fast path for the current schema (undefined if the schema has types it does not know). */
function makeTranscoder(schemaFile: string, codec: { header: Buffer }): JsonTranscoder | undefined {
  try {
    return new JsonTranscoder(readSchema(schemaFile), codec.header, 'timestamp');
  } catch {
    return undefined;
  }
}

/** A record of the contract: it has an RFC 3339 `timestamp`. */
type Timestamped = { timestamp: string };

export class EventDecoder {
  private readonly transcoder: JsonTranscoder | undefined;
  private readonly lastPartBytes = Buffer.alloc(13);
  private lastPart?: HourPartition;

  /** Default: NetworkEvents (network-event.avsc). */
  constructor(
    private readonly codec: SingleObjectCodec<Timestamped> = networkEventCodec(),
    schemaFile = 'network-event.avsc',
  ) {
    this.transcoder = makeTranscoder(schemaFile, codec);
  }

  /** The decoder of the status topic's SensorStatus records. */
  static status(): EventDecoder {
    return new EventDecoder(sensorStatusCodec(), 'sensor-status.avsc');
  }

  /**
   * The record, or why it cannot be archived. A fast-path record's bytes are
   * the transcoder's buffer: append it before decoding the next one.
   */
  decode(m: InMessage, offset: number): ArchiveRecord | Undecodable {
    const fast = m.value ? this.transcoder?.transcode(m.value) : undefined;
    if (fast) {
      const out = this.transcoder!.out;
      const timeMs = fastTime(out, fast.markStart, fast.markEnd);
      if (timeMs !== undefined) return { offset, bytes: out, bytesEnd: fast.end, part: this.partOf(out, fast.markStart), timeMs };
    }
    let event: Timestamped;
    try {
      event = this.codec.decode(m.value ?? Buffer.alloc(0));
    } catch (err) {
      return new Undecodable(err instanceof DecodeError ? err.reason : 'error', err);
    }
    const part = hourOf(event.timestamp);
    if (!part) return new Undecodable('bad-timestamp', new Error(`timestamp ${JSON.stringify(event.timestamp)} is not RFC 3339`));
    return { offset, line: JSON.stringify(event), part, timeMs: timeOf(event.timestamp) };
  }

  /** The hour partition of "YYYY-MM-DDTHH" at buf[start..], reusing the last one while it repeats. */
  private partOf(buf: Buffer, start: number): HourPartition {
    if (this.lastPart && buf.compare(this.lastPartBytes, 0, 13, start, start + 13) === 0) return this.lastPart;
    buf.copy(this.lastPartBytes, 0, start, start + 13);
    this.lastPart = { dt: buf.toString('latin1', start, start + 10), hour: buf.toString('latin1', start + 11, start + 13) };
    return this.lastPart;
  }
}
