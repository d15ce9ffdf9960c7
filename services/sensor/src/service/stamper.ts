// Turns payloads into encoded RawRecords: host, run id and the per-run
// sequence number that lets every consumer see gaps and duplicates.
import { randomUUID } from 'node:crypto';
import { type RawPayloadOf, rawRecordCodec, wrapPayload } from '@netmon/common';
import type { HostIdentity } from './identity';

export class RecordStamper {
  readonly runId = randomUUID();
  private nextSeq = 0;
  private readonly codec = rawRecordCodec();

  constructor(private readonly host: HostIdentity) {}

  /** Sequence number the next record will get (= records stamped so far). */
  get stamped(): number {
    return this.nextSeq;
  }

  stamp(payload: RawPayloadOf, timeUs: number): Buffer {
    return this.codec.encode({
      host_id: this.host.id,
      hostname: this.host.hostname,
      run_id: this.runId,
      seq: this.nextSeq++,
      time_us: timeUs,
      payload: wrapPayload(payload),
    });
  }
}
