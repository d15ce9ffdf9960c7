// One readable line per connection, for people watching a terminal:
// time, type, process, local → remote (with the name it was resolved from),
// container; a close adds how it went, how long, and what it carried.
import type { NetworkEvent } from '@netmon/common';

const TYPE = { TcpConnectionEstablish: 'connect', TcpConnectionAccept: 'accept ', TcpConnectionClose: 'close  ', TcpListen: 'listen ' } as const;

const endpoint = (addr: string, port: number) => (addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`);

/** 1536 → "1.5 kB" (decimal units, as network tools count). */
export function formatBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = -1;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v.toFixed(1)} ${units[u]}`;
}

export function formatDuration(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

export function formatEvent(e: NetworkEvent): string {
  const time = e.timestamp.slice(11, 23);
  const proc = `${e.process.filename || '?'}[${e.process.pid}]`;
  const n = e.network_event;
  const c = e.connection;
  const container = e.process.container_id ? `  container ${e.process.container_id.slice(0, 12)}` : '';
  const head = `${time}  ${TYPE[n.type]}  ${proc.padEnd(24)} ${endpoint(n.saddr, n.sport)}`;
  if (n.type === 'TcpListen') return `${head}${container}`;
  const arrow = n.type === 'TcpConnectionAccept' ? '←' : '→';
  const remote = c?.remote_name ? `${c.remote_name} (${endpoint(n.daddr, n.dport)})` : endpoint(n.daddr, n.dport);
  const facts =
    n.type === 'TcpConnectionClose' && c?.outcome
      ? `  ${c.outcome} ${formatDuration(c.duration_ms)} ↑${formatBytes(c.bytes_sent)} ↓${formatBytes(c.bytes_received)}`
      : '';
  return `${head} ${arrow} ${remote}${facts}${container}`;
}
