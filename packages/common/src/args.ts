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
}

/** Parses argv; returns undefined after printing usage for --help. */
export function parseFlags(argv: string[], options: FlagSpec, usage: string): Flags | undefined {
  let parsed: Flags;
  try {
    parsed = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true }) as Flags;
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n\n${usage}`);
  }
  if (parsed.values.help) {
    process.stdout.write(usage);
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
