// Where the sensor's payloads come from: the kernel probes, or (benchmarks)
// a synthetic generator through the same code path.
import type { RawPayloadOf } from '@netmon/common';

export interface TimedPayload {
  payload: RawPayloadOf;
  /** Wall-clock time of the fact, µs since the Unix epoch. */
  timeUs: number;
}

export interface KernelSource {
  /** Attach mode in use and why, for the log. */
  readonly mode: string;
  readonly reason: string;
  /** Records the kernel could not deliver (ring buffer full), since start. */
  lost(): number;
  stop(): Promise<void>;
}

export type StartSource = (onPayloads: (batch: TimedPayload[]) => void) => KernelSource;
