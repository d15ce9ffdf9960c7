// A steady load of real TCP connections on loopback whose own log records
// every connection it made: one JSON line per connection on stdout,
// {"pid", "sport", "dport", "at"} from the client's side, after the client closed.
//   node traffic.js --count N --interval-ms M [--host 127.0.0.1|::1]
import { createConnection, createServer } from 'node:net';
import { parseArgs } from 'node:util';

export interface LoggedConnection {
  pid: number;
  sport: number;
  dport: number;
  /** Wall-clock ms when the client had closed. */
  at: number;
}

/**
 * The archived events of one logged connection: those of its pid with its
 * client port on either end, seen in the 2 s before it was logged (the kernel
 * reuses ephemeral ports, so the port alone may name an older connection).
 */
export function eventsOf<E extends { process: { pid: number }; network_event: { sport: number; dport: number }; timestamp: string }>(
  events: readonly E[],
  c: LoggedConnection,
): E[] {
  return events.filter((e) => {
    if (e.process.pid !== c.pid || (e.network_event.sport !== c.sport && e.network_event.dport !== c.sport)) return false;
    const t = Date.parse(e.timestamp);
    return t <= c.at + 5 && t >= c.at - 2000;
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { count: { type: 'string' }, 'interval-ms': { type: 'string' }, host: { type: 'string' } } });
  const count = Number(values.count ?? 100);
  const intervalMs = Number(values['interval-ms'] ?? 10);
  const host = values.host ?? '127.0.0.1';
  const server = createServer((socket) => socket.end());
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const dport = (server.address() as { port: number }).port;
  for (let i = 0; i < count; i++) {
    const sport = await new Promise<number>((resolve, reject) => {
      const client = createConnection({ host, port: dport }, () => {
        const port = client.localPort ?? 0;
        client.on('close', () => resolve(port));
        client.end();
      });
      client.on('error', reject);
      client.resume();
    });
    process.stdout.write(`${JSON.stringify({ pid: process.pid, sport, dport, at: Date.now() } satisfies LoggedConnection)}\n`);
    if (intervalMs > 0) await new Promise((r) => setTimeout(r, intervalMs));
  }
  server.close();
}

if (require.main === module) {
  main().catch((err) => {
    process.stderr.write(`traffic: ${err}\n`);
    process.exit(1);
  });
}
