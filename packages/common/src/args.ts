// Flag parsing shared by the commands: node's parseArgs, a --help that prints
// the command's usage, and errors that say which flag is wrong.
import { parseArgs } from 'node:util';

type FlagSpec = Record<string, { type: 'string' | 'boolean'; short?: string }>;
export interface Flags {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

/** A wrong flag or argument: main prints it and exits 2. */
export class UsageError extends Error {
  override name = 'UsageError';
  /** What is wrong, without the usage text that the message may carry after it. */
  readonly reason: string;

  /** The message is the reason, then a blank line and the usage when given. */
  constructor(reason: string, usage?: string) {
    super(usage === undefined ? reason : `${reason}\n\n${usage}`);
    this.reason = reason;
  }
}

/**
 * Parses argv (flags anywhere, positionals kept, -h/--help added); returns
 * undefined after writing the usage to `out` (default stdout) for --help.
 * A wrong flag throws a UsageError whose message ends with the usage.
 */
export function parseFlags(argv: string[], options: FlagSpec, usage: string, out: { write(text: string): unknown } = process.stdout): Flags | undefined {
  let parsed: Flags;
  try {
    parsed = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true }) as Flags;
  } catch (err) {
    throw new UsageError((err as Error).message, usage);
  }
  if (parsed.values.help) {
    out.write(usage);
    return undefined;
  }
  return parsed;
}

export function stringFlag(flags: Flags, name: string): string | undefined {
  const value = flags.values[name];
  return typeof value === 'string' ? value : undefined;
}

/** A non-negative number flag, or the fallback; names the flag when wrong. */
export function numberFlag(flags: Flags, name: string, fallback: number): number {
  const value = stringFlag(flags, name);
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw new UsageError(`--${name}: expected a non-negative number, found "${value}"`);
  return n;
}

/** A number flag greater than 0, or undefined when absent; names the flag and value when wrong. */
export function positiveNumberFlag(flags: Flags, name: string): number | undefined {
  const value = stringFlag(flags, name);
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0) throw new UsageError(`--${name}: expected a positive number, found "${value}"`);
  return n;
}

/**
 * A string flag passed through `check` (a validator that throws, e.g. the
 * library's own); undefined when absent. A failed check becomes a UsageError
 * "--name: <its message>".
 */
export function checkedFlag<T>(flags: Flags, name: string, check: (value: string) => T): T | undefined {
  const value = stringFlag(flags, name);
  if (value === undefined) return undefined;
  try {
    return check(value);
  } catch (err) {
    throw new UsageError(`--${name}: ${err instanceof UsageError ? err.reason : (err as Error).message}`);
  }
}
