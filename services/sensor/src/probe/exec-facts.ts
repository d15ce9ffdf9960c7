// A program's path and arguments as the spec wants them, whatever the kernel
// could copy: a path cut by the kernel buffer is completed from
// /proc/PID/exe (or given as ""), never passed on shortened; args are kept up
// to sensor.max_args_bytes and cut at a character boundary, leaving room for
// the "…" the enricher appends to cut args.
import { readFileSync, readlinkSync } from 'node:fs';

/** UTF-8 bytes of the "…" (U+2026) that ends cut args. */
export const ELLIPSIS_BYTES = 3;

/** USER_HZ: /proc/PID/stat counts start time in these ticks. */
export const US_PER_TICK = 10_000;

/** Field 22 of /proc/PID/stat (start time in ticks); comm may hold spaces and parens. */
export function parseStartTicks(stat: string): number {
  const afterComm = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // afterComm[0] is field 3 (state), so field 22 is index 19.
  return Number(afterComm[19]);
}

/** The text before `maxBytes` UTF-8 bytes, never splitting a character. */
export function cutUtf8(text: string, maxBytes: number): string {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= maxBytes) return text;
  let end = Math.max(maxBytes, 0);
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--; // a continuation byte: back to the character's start
  return bytes.toString('utf8', 0, end);
}

/**
 * Args within `maxBytes` once joined by single spaces. Args already cut (by
 * the kernel buffer) or longer than the bound come back cut so that the
 * joined text plus "…" fits, with `truncated` set.
 */
export function limitArgs(args: readonly string[], maxBytes: number, alreadyTruncated: boolean): { args: string[]; truncated: boolean } {
  let joined = 0;
  for (let i = 0; i < args.length; i++) joined += Buffer.byteLength(args[i]!, 'utf8') + (i > 0 ? 1 : 0);
  if (!alreadyTruncated && joined <= maxBytes) return { args: [...args], truncated: false };
  const budget = maxBytes - ELLIPSIS_BYTES;
  const out: string[] = [];
  let used = 0;
  for (const arg of args) {
    const separator = out.length > 0 ? 1 : 0;
    const size = Buffer.byteLength(arg, 'utf8');
    if (used + separator + size <= budget) {
      out.push(arg);
      used += separator + size;
      continue;
    }
    const room = budget - used - separator;
    if (room > 0) out.push(cutUtf8(arg, room));
    break;
  }
  return { args: out, truncated: true };
}

/** argv[1..] of NUL-separated argument bytes (invalid UTF-8 becomes U+FFFD). */
export function splitArgs(bytes: Buffer): string[] {
  if (bytes.length === 0) return [];
  const args = bytes.toString('utf8').split('\0');
  if (args.at(-1) === '') args.pop();
  return args;
}

/**
 * Reads /proc/PID/<what> of the process that started at `startTimeUs` (µs
 * since boot), or undefined when it is gone or the pid now names another.
 */
function readOwnProc<T>(proc: string, pid: number, startTimeUs: number, read: (dir: string) => T): T | undefined {
  const dir = `${proc}/${pid}`;
  try {
    if (parseStartTicks(readFileSync(`${dir}/stat`, 'utf8')) !== Math.floor(startTimeUs / US_PER_TICK)) return undefined;
    return read(dir);
  } catch {
    return undefined; // exited, or not readable: the caller keeps what the kernel gave
  }
}

/** The executable's complete path, from /proc/PID/exe, or "" (never a cut path). */
export function executablePath(proc: string, pid: number, startTimeUs: number): string {
  const exe = readOwnProc(proc, pid, startTimeUs, (dir) => readlinkSync(`${dir}/exe`));
  return exe?.replace(/ \(deleted\)$/, '') ?? '';
}

/** argv[1..] from /proc/PID/cmdline, or undefined. */
export function commandLineArgs(proc: string, pid: number, startTimeUs: number): string[] | undefined {
  const cmdline = readOwnProc(proc, pid, startTimeUs, (dir) => readFileSync(`${dir}/cmdline`));
  if (cmdline === undefined || cmdline.length === 0) return undefined;
  return splitArgs(cmdline).slice(1);
}
