// Typed errors of the probe. Each carries the native failure as `cause` and
// says what is wrong in its message.

export type ProbeErrorCode =
  | 'EPRIV' // not root / missing CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN
  | 'ENOBTF' // kernel has no BTF
  | 'EVERIFIER' // a program was rejected; `detail` holds the verifier's last lines
  | 'ENOHOOK' // a hook (function, tracepoint) does not exist
  | 'EMODE' // a forced attach mode this kernel lacks
  | 'ENOMODE' // auto: no attach mode loads and attaches here; `attempts` says why for each
  | 'ENOCGROUP2' // no cgroup v2 mount for the socket hooks
  | 'EARG' // invalid option
  | 'ENATIVE' // the native addon could not be loaded
  | 'ESYS'; // anything else, with strerror

/** One attach mode the loader tried, in order (auto tries fentry, kprobe, tracepoint). */
export interface ModeAttempt {
  mode: 'fentry' | 'kprobe' | 'tracepoint';
  ok: boolean;
  /** the failure's code and step (empty when ok) */
  code: string;
  step: string;
  /** one line: why it failed, or what was skipped when ok */
  message: string;
}

export class ProbeError extends Error {
  override name = 'ProbeError';
  readonly code: ProbeErrorCode;
  /** loader step that failed: privileges, btf, probe, open, load, attach, ringbuf */
  readonly step: string;
  readonly errno: number;
  /** verifier log tail or libbpf messages, when there are any */
  readonly detail: string;
  /** the attach modes tried before giving up, each with why it failed */
  readonly attempts: ModeAttempt[];

  constructor(message: string, code: ProbeErrorCode, opts: { step?: string; errno?: number; detail?: string; attempts?: ModeAttempt[]; cause?: unknown } = {}) {
    super(opts.detail ? `${message}\n${opts.detail.trimEnd()}` : message, { cause: opts.cause });
    this.code = code;
    this.step = opts.step ?? '';
    this.errno = opts.errno ?? 0;
    this.detail = opts.detail ?? '';
    this.attempts = opts.attempts ?? [];
  }
}

export class ProbePermissionError extends ProbeError {
  override name = 'ProbePermissionError';
}
export class ProbeBtfError extends ProbeError {
  override name = 'ProbeBtfError';
}
export class ProbeVerifierError extends ProbeError {
  override name = 'ProbeVerifierError';
}
export class ProbeHookError extends ProbeError {
  override name = 'ProbeHookError';
}
export class ProbeModeUnavailableError extends ProbeError {
  override name = 'ProbeModeUnavailableError';
}
/** auto found no mode that loads and attaches; the message lists each mode and why. */
export class ProbeNoModeError extends ProbeModeUnavailableError {
  override name = 'ProbeNoModeError';
}
export class ProbeArgumentError extends ProbeError {
  override name = 'ProbeArgumentError';
}

interface NativeFailure {
  message?: unknown;
  code?: unknown;
  step?: unknown;
  errno?: unknown;
  detail?: unknown;
  attempts?: unknown;
}

const MODES = new Set(['fentry', 'kprobe', 'tracepoint']);

/** The `attempts` array of the addon (start()'s result or error), checked. */
export function attemptsFromNative(v: unknown): ModeAttempt[] {
  if (!Array.isArray(v)) return [];
  return v.flatMap((a: Record<string, unknown>) =>
    a && typeof a === 'object' && typeof a.mode === 'string' && MODES.has(a.mode)
      ? [
          {
            mode: a.mode as ModeAttempt['mode'],
            ok: a.ok === true,
            code: typeof a.code === 'string' ? a.code : '',
            step: typeof a.step === 'string' ? a.step : '',
            message: typeof a.message === 'string' ? a.message : '',
          },
        ]
      : [],
  );
}

/** Turns an error thrown by the addon into the matching typed error. */
export function fromNative(err: unknown): ProbeError {
  const e = (err ?? {}) as NativeFailure;
  const message = typeof e.message === 'string' ? e.message : String(err);
  const code = (typeof e.code === 'string' ? e.code : 'ESYS') as ProbeErrorCode;
  const opts = {
    step: typeof e.step === 'string' ? e.step : '',
    errno: typeof e.errno === 'number' ? e.errno : 0,
    detail: typeof e.detail === 'string' ? e.detail : '',
    attempts: attemptsFromNative(e.attempts),
    cause: err,
  };
  switch (code) {
    case 'EPRIV':
      return new ProbePermissionError(`probe: permission denied: ${message}`, code, opts);
    case 'ENOBTF':
      return new ProbeBtfError(`probe: ${message}`, code, opts);
    case 'EVERIFIER':
      return new ProbeVerifierError(`probe: ${message}`, code, opts);
    case 'ENOHOOK':
      return new ProbeHookError(`probe: ${message}`, code, opts);
    case 'EMODE':
      return new ProbeModeUnavailableError(`probe: ${message}`, code, opts);
    case 'ENOMODE':
      return new ProbeNoModeError(`probe: ${message}`, code, opts);
    case 'EARG':
      return new ProbeArgumentError(`probe: ${message}`, code, opts);
    default:
      return new ProbeError(`probe: ${opts.step ? `${opts.step}: ` : ''}${message}`, code, opts);
  }
}
