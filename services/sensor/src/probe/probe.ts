// The probe API the sensor and the tests use: validated options, typed
// events, lost counters, errors with their cause.
import { type ModeAttempt, ProbeArgumentError, attemptsFromNative, fromNative } from './errors';
import { KIND_MAX, Kind, ModeCode } from './layout';
import { type NativeProbe, loadAddon } from './native';
import { type DecodeOptions, type TimedPayload, decodeBatch } from './records';
import type { Redaction } from './redact';

export const ATTACH_MODES = ['auto', 'fentry', 'kprobe', 'tracepoint'] as const;
export type AttachMode = (typeof ATTACH_MODES)[number];
export type ResolvedAttachMode = Exclude<AttachMode, 'auto'>;

/** 8 MiB: about 30,000 socket records in flight. */
export const DEFAULT_RING_BUFFER_BYTES = 8 * 1024 * 1024;
const PAGE_SIZE = 4096;
const MAX_RING_BUFFER_BYTES = 1024 * 1024 * 1024;

export interface ProbeOptions {
  /**
   * default 'auto': fentry, else kprobe, else tracepoint. Each mode's program
   * types and helpers are probed first; a mode that still fails to load or
   * attach falls back to the next (`reason` lists each mode tried and why).
   * A forced mode fails with its own error, without fallback.
   */
  mode?: AttachMode;
  /** ring buffer size: a power of 2 multiple of the page size; default 8 MiB */
  ringBufferBytes?: number;
  /**
   * A directory on bpffs: the programs stay pinned there when this process
   * ends, still recording into the ring buffer, and the next probe of the
   * same build adopts them (nothing missed across a restart); a probe of
   * another build drains and replaces them. '' or absent: not pinned.
   */
  pinDir?: string;
  /** decoded records (the raw contract's payloads), one call per batch (one batch per poll wake-up) */
  onPayloads?: (payloads: TimedPayload[]) => void;
  /** sensor.max_args_bytes, for onPayloads (default 4096) */
  maxArgsBytes?: number;
  /** secrets to replace in args, for onPayloads (compileRedaction of sensor.redact_args) */
  redaction?: Redaction;
  /** the raw batch of packed records (layout.ts), before any decoding */
  onBatch?: (batch: Buffer) => void;
  /**
   * the raw batch with what decoding its records needs (clock offset, start
   * time, args settings): for consumers that read the layout themselves.
   * Alone (no onBatch, no onPayloads), the batch is only valid during the
   * call: its memory is reused for later batches, so copy what you keep.
   */
  onRecords?: (batch: Buffer, decode: DecodeOptions) => void;
  /** an exception thrown by onPayloads/onBatch; without it, it is rethrown */
  onError?: (err: unknown) => void;
}

export interface LostCounters {
  /** ring buffer reserves that failed, all kinds */
  total: number;
  establish: number;
  accept: number;
  close: number;
  exec: number;
  exit: number;
  fork: number;
  listen: number;
  dns: number;
}

export function validateRingBufferBytes(n: unknown): number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < PAGE_SIZE || n > MAX_RING_BUFFER_BYTES || (n & (n - 1)) !== 0) {
    throw new ProbeArgumentError(
      `probe: ring buffer size must be a power of 2 multiple of the page size (${PAGE_SIZE}..${MAX_RING_BUFFER_BYTES}), got ${String(n)}`,
      'EARG',
    );
  }
  return n;
}

export function validateMode(m: unknown): AttachMode {
  if (typeof m !== 'string' || !(ATTACH_MODES as readonly string[]).includes(m)) {
    throw new ProbeArgumentError(`probe: attach mode must be one of ${ATTACH_MODES.join(', ')}, got ${String(m)}`, 'EARG');
  }
  return m as AttachMode;
}

export class NetmonProbe {
  /** the attach mode in use */
  readonly mode: ResolvedAttachMode;
  /** why that mode, one line: forced, or (auto) each mode tried and why it failed */
  readonly reason: string;
  /** the modes tried, in order, the last one the mode in use */
  readonly attempts: ModeAttempt[];
  /** CLOCK_REALTIME - CLOCK_BOOTTIME at start, ns: add to an event's tsNs for wall clock */
  readonly clockOffsetNs: bigint;
  /** resolves once stopped and every program is detached */
  readonly closed: Promise<void>;

  private readonly native: NativeProbe;
  private stopping = false;

  private constructor(native: NativeProbe, mode: ResolvedAttachMode, reason: string, offset: bigint, closed: Promise<void>, attempts: ModeAttempt[] = []) {
    this.native = native;
    this.mode = mode;
    this.reason = reason;
    this.attempts = attempts;
    this.clockOffsetNs = offset;
    this.closed = closed;
  }

  /** Loads and attaches the probes. Blocking (the verifier runs); throws ProbeError. */
  static start(opts: ProbeOptions = {}): NetmonProbe {
    const mode = validateMode(opts.mode ?? 'auto');
    const ring = validateRingBufferBytes(opts.ringBufferBytes ?? DEFAULT_RING_BUFFER_BYTES);
    const { onPayloads, onBatch, onRecords, onError } = opts;
    const addon = loadAddon();
    const native = new addon.Probe();
    let resolveClosed!: () => void;
    const closed = new Promise<void>((r) => {
      resolveClosed = r;
    });
    // clock offset and start time are set once started, before the first batch
    const decode: DecodeOptions = { clockOffsetNs: 0, startedKtimeUs: 0, maxArgsBytes: opts.maxArgsBytes, redaction: opts.redaction };
    const handle = (buf: Buffer): void => {
      try {
        onBatch?.(buf);
        onRecords?.(buf, decode);
        if (onPayloads) onPayloads(decodeBatch(buf, decode));
      } catch (err) {
        if (onError) onError(err);
        else
          setImmediate(() => {
            throw err;
          });
      }
    };
    let started: { mode: string; reason: string; attempts?: unknown };
    try {
      const lend = onRecords !== undefined && !onBatch && !onPayloads;
      started = native.start(ModeCode[mode], ring, handle, () => resolveClosed(), opts.pinDir ?? '', lend);
    } catch (err) {
      throw fromNative(err);
    }
    // Batches arrive through the event loop, so never before this line runs.
    const offset = addon.clockOffsetNs();
    decode.clockOffsetNs = Number(offset);
    decode.startedKtimeUs = Math.floor((Date.now() * 1e6 - decode.clockOffsetNs) / 1000);
    return new NetmonProbe(native, started.mode as ResolvedAttachMode, started.reason, offset, closed, attemptsFromNative(started.attempts));
  }

  /** Failed ring buffer reserves so far (summed over CPUs). */
  lost(): LostCounters {
    const k = this.native.lost();
    const at = (i: number) => k[i] ?? 0;
    let total = 0;
    for (let i = 0; i < KIND_MAX; i++) total += at(i);
    return {
      total,
      establish: at(Kind.ESTABLISH),
      accept: at(Kind.ACCEPT),
      close: at(Kind.CLOSE),
      exec: at(Kind.EXEC),
      exit: at(Kind.EXIT),
      fork: at(Kind.FORK),
      listen: at(Kind.LISTEN),
      dns: at(Kind.DNS),
    };
  }

  /** Detaches, delivers what is left in the ring buffer, frees everything. Idempotent. */
  stop(): Promise<void> {
    if (!this.stopping) {
      this.stopping = true;
      this.native.stop();
    }
    return this.closed;
  }
}
