// The changelog's record format, pure (no client): what a flush writes and
// what a restore reads back. state.ts reads the topic; partition.ts writes it.
//   key "t\0<host>\0<pid>\0<ticks>"  value JSON EntryState, null when the entry left
//   key "d\0<host>"                  value the host's done position (raw offset × 2^16 + record index, decimal)
//   key "n\0<host>\0<netns>\0<address hex>"  value JSON [[name, answered µs, expires µs]...] (DNS cache), null when it left
import type { EntryState, TableChange } from './lib';
import type { DnsCacheChange } from './lib/dns-cache';

/** A changelog record to produce (a kafkajs Message, or any client's). */
export interface ChangelogMessage {
  key: string;
  value: string | null;
  partition: number;
}

/** Receives a changelog partition's records during a restore. */
export interface StateSink {
  entry(hostId: string, pid: number, ticks: number, state: EntryState | null): void;
  done(hostId: string, position: number): void;
  dns(change: DnsCacheChange): void;
}

export function changeMessage(c: TableChange, partition: number): ChangelogMessage {
  return { key: `t\u0000${c.hostId}\u0000${c.pid}\u0000${c.ticks}`, value: c.state === null ? null : JSON.stringify(c.state), partition };
}

export function dnsMessage(c: DnsCacheChange, partition: number): ChangelogMessage {
  return { key: `n\u0000${c.hostId}\u0000${c.netns}\u0000${c.address}`, value: c.names === null ? null : JSON.stringify(c.names), partition };
}

export function doneMessage(hostId: string, position: number, partition: number): ChangelogMessage {
  return { key: `d\u0000${hostId}`, value: String(position), partition };
}

/** Applies one changelog record to a sink; false when it is not ours. */
export function applyStateMessage(m: { key: Buffer | null; value: Buffer | null }, sink: StateSink): boolean {
  const key = m.key?.toString('utf8') ?? '';
  const parts = key.split('\u0000');
  if (parts[0] === 't' && parts.length === 4) {
    const value = m.value === null ? null : (JSON.parse(m.value.toString('utf8')) as EntryState);
    sink.entry(parts[1]!, Number(parts[2]), Number(parts[3]), value);
    return true;
  }
  if (parts[0] === 'n' && parts.length === 4) {
    const names = m.value === null ? null : (JSON.parse(m.value.toString('utf8')) as DnsCacheChange['names']);
    sink.dns({ hostId: parts[1]!, netns: Number(parts[2]), address: parts[3]!, names });
    return true;
  }
  if (parts[0] === 'd' && parts.length === 2 && m.value !== null) {
    sink.done(parts[1]!, Number(m.value.toString('utf8')));
    return true;
  }
  return false;
}
