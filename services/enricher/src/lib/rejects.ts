// Records refused or dropped, tallied by reason, so that a flood of bad
// records is logged once per reason (the first one, in full), not once per
// record. The reason of a message is the message with its numbers replaced
// ("INET6 addresses of 4 and 4 bytes, expected 16" and "...of 16 and 4
// bytes..." are one reason).

/** The reason of a message: its numbers, UUIDs and long hex strings replaced by "N". */
export function reasonOf(message: string): string {
  return message
    .replace(/\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/gi, 'N')
    .replace(/\b(?:0x)?[0-9a-f]{8,}\b/gi, 'N')
    .replace(/-?\b\d+(?:\.\d+)?\b/g, 'N');
}

export interface ReasonCount {
  /** The reason (numbers replaced). */
  reason: string;
  /** The first message of this reason, as it came. */
  first: string;
  count: number;
}

/** Past this many distinct reasons, new ones are counted together and not logged. */
const MAX_REASONS = 100;
const OTHER = 'other reasons';

export class RejectTally {
  private readonly reasons = new Map<string, ReasonCount>();
  total = 0;

  constructor(private readonly maxReasons = MAX_REASONS) {}

  /** Counts one record; true when it is the first of its reason (the one to log). */
  add(message: string): boolean {
    this.total++;
    let reason = reasonOf(message);
    let r = this.reasons.get(reason);
    if (r === undefined && this.reasons.size >= this.maxReasons) {
      reason = OTHER;
      r = this.reasons.get(reason);
    }
    if (r !== undefined) {
      r.count++;
      return false;
    }
    this.reasons.set(reason, { reason, first: message, count: 1 });
    return reason !== OTHER;
  }

  /** Reasons by count, most frequent first. */
  counts(): ReasonCount[] {
    return [...this.reasons.values()].sort((a, b) => b.count - a.count);
  }
}
