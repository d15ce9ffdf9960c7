// Turns payloads into encoded RawRecords: host, run id and the per-run
// sequence number that lets every consumer see gaps and duplicates.
//
// Hot path. A RawRecord starts with host_id, hostname and run_id, the same for
// every record of a run: their bytes (after the single-object header) are
// encoded once, and each record only adds seq, time_us and its payload.
import { randomUUID } from 'node:crypto';
import { type RawPayloadOf, rawRecordCodec, wrapPayload } from '@netmon/common';
import avro from 'avsc';
import type { HostIdentity } from './identity';

const LONG = avro.Type.forSchema('long');
const STRING = avro.Type.forSchema('string');

export class RecordStamper {
  readonly runId = randomUUID();
  private nextSeq = 0;
  private readonly prefix: Buffer;
  private readonly payloadType: avro.Type;
  private scratch = Buffer.alloc(64 * 1024);

  constructor(host: HostIdentity) {
    const codec = rawRecordCodec();
    const fields = (codec.type as avro.types.RecordType).fields;
    const names = fields.map((f) => f.name).join(',');
    // The shortcut below is only right for this field order.
    if (names !== 'host_id,hostname,run_id,seq,time_us,payload') throw new Error(`RawRecord fields changed (${names}): update RecordStamper`);
    this.payloadType = fields[5]!.type;
    this.prefix = Buffer.concat([codec.header, STRING.toBuffer(host.id), STRING.toBuffer(host.hostname), STRING.toBuffer(this.runId)]);
  }

  /** Sequence number the next record will get (= records stamped so far). */
  get stamped(): number {
    return this.nextSeq;
  }

  stamp(payload: RawPayloadOf, timeUs: number): Buffer {
    const seq = this.nextSeq++;
    const wrapped = wrapPayload(payload);
    for (;;) {
      this.prefix.copy(this.scratch, 0);
      let pos = LONG.encode(seq, this.scratch, this.prefix.length);
      if (pos > 0) pos = LONG.encode(timeUs, this.scratch, pos);
      if (pos > 0) pos = this.payloadType.encode(wrapped, this.scratch, pos);
      if (pos > 0) return Buffer.from(this.scratch.subarray(0, pos));
      this.scratch = Buffer.alloc(this.scratch.length * 2);
    }
  }
}
