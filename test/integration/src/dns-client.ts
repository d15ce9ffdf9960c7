// A DNS client for the remote_name tests, run as its own process (so its pid
// names its events): resolves a name through one DNS server with node's
// resolver (c-ares, as real Node programs resolve), then connects to the
// first address and closes. One JSON line on stdout says what it did.
//   node dns-client.js --server 127.0.0.153 --name app.test --port 8080
//   node dns-client.js --literal 127.0.0.9 --port 8080      (no DNS at all)
//   --wait-ms N: wait N ms between the answer and the connect (past a TTL)
// Run inside a network namespace with `ip netns exec NS node dns-client.js ...`.
import { Resolver } from 'node:dns/promises';
import { connect } from 'node:net';
import { parseArgs } from 'node:util';

async function resolveWithRetry(server: string, name: string): Promise<string> {
  const resolver = new Resolver({ timeout: 500, tries: 1 });
  resolver.setServers([server]);
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      const [address] = await resolver.resolve4(name);
      if (address) return address;
    } catch (err) {
      // the server may still be starting (a fresh network namespace)
      if (Date.now() > deadline) throw err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { server: { type: 'string' }, name: { type: 'string' }, literal: { type: 'string' }, port: { type: 'string' }, 'wait-ms': { type: 'string' } },
  });
  const port = Number(values.port);
  const address = values.literal ?? (await resolveWithRetry(values.server!, values.name!));
  const resolvedAt = Date.now();
  if (values['wait-ms']) await new Promise((r) => setTimeout(r, Number(values['wait-ms'])));
  const start = Date.now();
  const result = await new Promise<{ ok: boolean; sport: number; errno: string }>((resolve) => {
    const s = connect({ host: address, port });
    s.on('connect', () => {
      const sport = s.localPort ?? 0;
      s.end(() => resolve({ ok: true, sport, errno: '' }));
    });
    s.on('error', (err: NodeJS.ErrnoException) => resolve({ ok: false, sport: 0, errno: err.code ?? String(err) }));
  });
  process.stdout.write(`${JSON.stringify({ pid: process.pid, name: values.name ?? '', address, port, resolvedAt, start, end: Date.now(), ...result })}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`dns-client: ${String(err)}\n`);
  process.exit(1);
});
