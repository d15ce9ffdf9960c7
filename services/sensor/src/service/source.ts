// Where the sensor's payloads come from: the kernel probes, or (benchmarks)
// a synthetic generator through the same code path.
import type { TimedPayload } from '../probe/records';

export type { TimedPayload };

export interface KernelSource {
  /** Attach mode in use and why, for the log. */
  readonly mode: string;
  readonly reason: string;
  /** Records the kernel could not deliver (ring buffer full), since start. */
  lost(): number;
  stop(): Promise<void>;
}

export type StartSource = (onPayloads: (batch: TimedPayload[]) => void) => KernelSource;
