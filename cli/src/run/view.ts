// One readable line per connection, for people watching a terminal:
// time, type, process, local → remote, container.
import type { NetworkEvent } from '@netmon/common';

const TYPE = { TcpConnectionEstablish: 'connect', TcpConnectionAccept: 'accept ', TcpConnectionClose: 'close  ' } as const;

const endpoint = (addr: string, port: number) => (addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`);

export function formatEvent(e: NetworkEvent): string {
  const time = e.timestamp.slice(11, 23);
  const proc = `${e.process.filename || '?'}[${e.process.pid}]`;
  const n = e.network_event;
  const arrow = n.type === 'TcpConnectionAccept' ? '←' : '→';
  const container = e.process.container_id ? `  container ${e.process.container_id.slice(0, 12)}` : '';
  return `${time}  ${TYPE[n.type]}  ${proc.padEnd(24)} ${endpoint(n.saddr, n.sport)} ${arrow} ${endpoint(n.daddr, n.dport)}${container}`;
}
