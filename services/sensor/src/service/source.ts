// Where the sensor's payloads come from: the kernel probes, or (benchmarks)
// a synthetic generator through the same code path.
import type { DecodeOptions, TimedPayload } from '../probe/records';

export type { DecodeOptions, TimedPayload };

/**
 * The kernel's packed records (probe/layout.ts) with what decoding them
 * needs; `batch` is only valid during the call.
 */
export type OnRecords = (batch: Buffer, decode: DecodeOptions) => void;

export interface KernelSource {
  /** Attach mode in use and why, for the log. */
  readonly mode: string;
  readonly reason: string;
  /** Records the kernel could not deliver (ring buffer full), since start. */
  lost(): number;
  stop(): Promise<void>;
}

/** Starts a source: its records go to onRecords when given (the sensor's path), else decoded to onPayloads. */
export type StartSource = (onPayloads: (batch: TimedPayload[]) => void, onRecords?: OnRecords) => KernelSource;
