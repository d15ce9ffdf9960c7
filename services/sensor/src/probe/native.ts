// Loads the native addon (services/sensor/native) and types its surface.
import path from 'node:path';
import { ProbeError } from './errors';

export interface NativeProbe {
  /**
   * Loads and attaches; throws an Error with code/step/errno/detail. With
   * `lend`, a batch's Buffer is only valid during onBatch (then detached, its
   * memory reused).
   */
  start(
    mode: number,
    ringBytes: number,
    onBatch: (buf: Buffer) => void,
    onClose: () => void,
    pinDir?: string,
    lend?: boolean,
  ): { mode: string; reason: string };
  /** Idempotent; onClose runs once everything is detached and freed. */
  stop(): void;
  /** Failed ring buffer reserves per enum netmon_kind, summed over CPUs. */
  lost(): number[];
}

export interface NativeAddon {
  Probe: new () => NativeProbe;
  /** CLOCK_REALTIME - CLOCK_BOOTTIME, ns */
  clockOffsetNs(): bigint;
}

let cached: NativeAddon | undefined;

/** Path of the built addon; NETMON_NATIVE_ADDON overrides it. */
export function addonPath(): string {
  return (
    process.env.NETMON_NATIVE_ADDON ??
    // dist/src/probe -> services/sensor/native/build/Release
    path.resolve(__dirname, '..', '..', '..', 'native', 'build', 'Release', 'netmon.node')
  );
}

export function loadAddon(): NativeAddon {
  if (cached) return cached;
  const file = addonPath();
  try {
    cached = require(file) as NativeAddon;
  } catch (err) {
    throw new ProbeError(
      `probe: cannot load the native addon ${file} (run \`npm run build:native --workspace @netmon/sensor\`): ${(err as Error).message}`,
      'ENATIVE',
      { cause: err },
    );
  }
  return cached;
}
