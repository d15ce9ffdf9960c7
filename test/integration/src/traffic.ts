// A steady load of real TCP connections on loopback whose own log records
// every connection it made: one JSON line per connection on stdout,
// {"pid", "sport", "dport", "start", "at"} from the client's side, after the
// client closed. Connections are made one after another, so the window
// [start, at] of one holds no other connection of this process.
//   node traffic.js --count N --interval-ms M [--host 127.0.0.1|::1]
import { createConnection, createServer } from 'node:net';
import { parseArgs } from 'node:util';

export interface LoggedConnection {
  pid: number;
  sport: number;
  dport: number;
  /** Wall-clock ms just before the client connected. */
  start: number;
  /** Wall-clock ms when the client had closed. */
  at: number;
}

/** Clock slack between the kernel's stamps and Date.now() (ms resolution on both sides). */
const SLACK_MS = 5;

/** Whether a time (ms) falls in a logged connection's window. */
export function during(c: LoggedConnection, timeMs: number): boolean {
  return timeMs >= c.start - SLACK_MS && timeMs <= c.at + SLACK_MS;
}

/**
 * The archived events of one logged connection: those of its pid with its
 * client port on either end, seen while it was open (the kernel reuses
 * ephemeral ports, so the port alone may name an older connection).
 */
export function eventsOf<E extends { process: { pid: number }; network_event: { sport: number; dport: number }; timestamp: string }>(
  events: readonly E[],
  c: LoggedConnection,
): E[] {
  return events.filter((e) => {
    if (e.process.pid !== c.pid || (e.network_event.sport !== c.sport && e.network_event.dport !== c.sport)) return false;
    return during(c, Date.parse(e.timestamp));
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
    const start = Date.now();
    const sport = await new Promise<number>((resolve, reject) => {
      const client = createConnection({ host, port: dport }, () => {
        const port = client.localPort ?? 0;
        client.on('close', () => resolve(port));
        client.end();
      });
      client.on('error', reject);
      client.resume();
    });
    process.stdout.write(`${JSON.stringify({ pid: process.pid, sport, dport, start, at: Date.now() } satisfies LoggedConnection)}\n`);
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
