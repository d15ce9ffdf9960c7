// Typed errors. Fatal start-up errors (ConfigError) end the process; per-record
// errors (DecodeError) are logged, counted and dead-lettered by the caller.

export class NetmonError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A configuration value is missing or wrong. The message names file and key. */
export class ConfigError extends NetmonError {
  constructor(
    readonly file: string,
    readonly key: string,
    readonly expected: string,
    readonly found: string,
  ) {
    super(`${file}: ${key}: expected ${expected}, found ${found}`);
  }
}

export type DecodeFailure = 'too-short' | 'bad-magic' | 'unknown-fingerprint' | 'corrupt-body' | 'trailing-bytes';

/** Bytes that are not a record of a known Netmon schema. */
export class DecodeError extends NetmonError {
  constructor(
    readonly reason: DecodeFailure,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`cannot decode record (${reason}): ${detail}`, options);
  }
}

/** Reads a human description of any thrown value, for logs. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.cause ? `${err.message} (cause: ${describeError(err.cause)})` : err.message;
  return String(err);
}
