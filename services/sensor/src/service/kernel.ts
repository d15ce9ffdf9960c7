// The sensor's source of kernel facts: the probes, their batches decoded
// (probe/records.ts) straight into the raw contract's payloads.
import type { AttachMode } from '@netmon/common';
import { NetmonProbe } from '../probe/probe';
import type { KernelSource, StartSource } from './source';

/** Starts the probes; their batches arrive as payloads. */
export function kernelSource(options: { mode: AttachMode; ringBufferBytes: number; maxArgsBytes: number }): StartSource {
  return (onPayloads) => {
    const probe = NetmonProbe.start({ ...options, onPayloads });
    const source: KernelSource = {
      mode: probe.mode,
      reason: probe.reason,
      lost: () => probe.lost().total,
      stop: () => probe.stop(),
    };
    return source;
  };
}
