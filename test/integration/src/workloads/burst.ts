// A burst of TCP connections for the fidelity tests: COUNT connections to
// HOST:PORT, CONCURRENCY at a time, each ended by the client as soon as it is
// up. One JSON line per connection on stdout, after it closed:
// {"event":"connection","pid","sport","dport","start","end"} (wall-clock ms),
// then {"event":"done","count","errors"}.
//   node burst.js --host 127.0.0.1 --port P [--count 2000] [--concurrency 32]
import { createConnection } from 'node:net';
import { parseArgs } from 'node:util';

export interface BurstConnection {
  event: 'connection';
  pid: number;
  sport: number;
  dport: number;
  start: number;
  end: number;
}

function one(host: string, port: number): Promise<BurstConnection> {
  return new Promise((resolve, reject) => {
    const start = Date.now();
    let sport = 0;
    const c = createConnection({ host, port }, () => {
      sport = c.localPort ?? 0;
      c.end();
    });
    c.on('error', reject);
    c.on('close', () => resolve({ event: 'connection', pid: process.pid, sport, dport: port, start, end: Date.now() }));
    c.resume();
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { host: { type: 'string' }, port: { type: 'string' }, count: { type: 'string' }, concurrency: { type: 'string' } },
  });
  const host = values.host ?? '127.0.0.1';
  const port = Number(values.port);
  const count = Number(values.count ?? 2000);
  const concurrency = Number(values.concurrency ?? 32);
  let next = 0;
  let errors = 0;
  const lines: string[] = [];
  const worker = async () => {
    while (next < count) {
      next++;
      try {
        lines.push(JSON.stringify(await one(host, port)));
      } catch (err) {
        errors++;
        lines.push(JSON.stringify({ event: 'error', pid: process.pid, error: String(err), at: Date.now() }));
      }
      if (lines.length >= 100) process.stdout.write(`${lines.splice(0).join('\n')}\n`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  if (lines.length > 0) process.stdout.write(`${lines.splice(0).join('\n')}\n`);
  process.stdout.write(`${JSON.stringify({ event: 'done', pid: process.pid, count, errors, at: Date.now() })}\n`);
}

if (require.main === module) {
  main().catch((err) => {
    process.stderr.write(`burst: ${err}\n`);
    process.exit(1);
  });
}
