// Secrets in command lines (--password=…, mysql's -p…, token=…, URLs with
// user:pass@, Authorization headers) replaced by a visible "<redacted>" before
// any record leaves the host. Rules come from sensor.redact_args (defaults:
// DEFAULT_REDACT_ARGS); each is one of
//   { arg: REGEX }   in an argument it matches, the named group `secret` (or the
//                    whole match) is replaced, every occurrence
//   { flag: REGEX }  the argument after one it matches whole is replaced
// with an optional `binary: REGEX` on the program's file name. Case-insensitive.
import type { RedactRule } from '@netmon/common';

export const REDACTED = '<redacted>';

interface CompiledRule {
  arg?: RegExp;
  flag?: RegExp;
  binary?: RegExp;
}

export type Redaction = readonly CompiledRule[];

/** Compiles the configured rules once (the config already checked they compile). */
export function compileRedaction(rules: readonly RedactRule[]): Redaction {
  return rules.map((r) => ({
    arg: r.arg === undefined ? undefined : new RegExp(r.arg, 'dgi'),
    flag: r.flag === undefined ? undefined : new RegExp(`^(?:${r.flag})$`, 'i'),
    binary: r.binary === undefined ? undefined : new RegExp(r.binary, 'i'),
  }));
}

/** `text` with every match's `secret` group (or the whole match) replaced. */
function redactMatches(text: string, re: RegExp): string {
  let out = '';
  let from = 0;
  for (const m of text.matchAll(re)) {
    const [start, end] = m.indices?.groups?.secret ?? m.indices![0]!;
    if (start === end) continue;
    out += text.slice(from, start) + REDACTED;
    from = end;
  }
  return from === 0 ? text : out + text.slice(from);
}

/** The args with secrets replaced; the same array when nothing matched. */
export function redactArgs(args: readonly string[], filename: string, redaction: Redaction): readonly string[] {
  let out: string[] | undefined;
  for (const rule of redaction) {
    if (rule.binary && !rule.binary.test(filename)) continue;
    const current = out ?? args;
    for (let i = 0; i < current.length; i++) {
      let next: string | undefined;
      if (rule.arg) {
        const redacted = redactMatches(current[i]!, rule.arg);
        if (redacted !== current[i]) next = redacted;
      } else if (rule.flag && i > 0 && rule.flag.test(current[i - 1]!) && current[i] !== REDACTED) {
        next = REDACTED;
      }
      if (next !== undefined) {
        out ??= [...args];
        out[i] = next;
      }
    }
  }
  return out ?? args;
}
