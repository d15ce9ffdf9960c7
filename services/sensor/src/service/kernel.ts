// The sensor's source of kernel facts: the probes, their batches handed on as
// packed records (the sensor encodes them from the layout), or decoded
// (probe/records.ts) into the raw contract's payloads for other consumers.
import type { NetmonConfig } from '@netmon/common';
import { NetmonProbe } from '../probe/probe';
import { compileRedaction } from '../probe/redact';
import type { KernelSource, StartSource } from './source';

/** Starts the probes as the sensor settings say; their batches arrive as payloads. */
export function kernelSource(sensor: NetmonConfig['sensor']): StartSource {
  const redaction = compileRedaction(sensor.redactArgs);
  return (onPayloads, onRecords) => {
    const probe = NetmonProbe.start({
      mode: sensor.attachMode,
      ringBufferBytes: sensor.ringBufferBytes,
      maxArgsBytes: sensor.maxArgsBytes,
      pinDir: sensor.pinDir,
      redaction,
      ...(onRecords ? { onRecords } : { onPayloads }),
    });
    const source: KernelSource = {
      mode: probe.mode,
      reason: probe.reason,
      lost: () => probe.lost().total,
      stop: () => probe.stop(),
    };
    return source;
  };
}
