// The one error type of the stack: which step failed and which log file tells more.
import { readFileSync } from 'node:fs';
import { NetmonError } from '@netmon/common';

export class StackError extends NetmonError {
  constructor(
    readonly step: string,
    detail: string,
    readonly logFile?: string,
    options?: { cause?: unknown },
  ) {
    super(`stack: ${step}: ${detail}${logFile ? `\n  log: ${logFile}` : ''}`, options);
  }
}

/** The last lines of a log file, indented for an error message; '' when unreadable. */
export function tailOf(file: string, lines = 15): string {
  try {
    const all = readFileSync(file, 'utf8').trimEnd().split('\n');
    return `\n  last lines of ${file}:\n${all
      .slice(-lines)
      .map((l) => `    | ${l}`)
      .join('\n')}`;
  } catch {
    return '';
  }
}
