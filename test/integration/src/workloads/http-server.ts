// A Node HTTP server for the fidelity tests: `http.createServer().listen(port)`
// with no host, so dual-stack on :: (IPv4 clients arrive as ::ffff:a.b.c.d).
// One JSON line per step on stdout: {"event":"listening","pid","port"}, then
// one {"event":"request",...} per request with the socket's four-tuple as Node
// sees it. Runs until SIGTERM.
//   node http-server.js [--port P]
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

function log(event: string, more: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ event, pid: process.pid, tid: process.pid, ppid: process.ppid, at: Date.now(), ...more })}\n`);
}

function main(): void {
  const { values } = parseArgs({ options: { port: { type: 'string' } } });
  const server = createServer((req, res) => {
    const s = req.socket;
    log('request', { url: req.url, laddr: s.localAddress, lport: s.localPort, raddr: s.remoteAddress, rport: s.remotePort });
    res.setHeader('connection', 'close');
    res.end('ok\n');
  });
  server.on('connection', (s) => {
    const lport = s.localPort;
    const rport = s.remotePort;
    s.on('close', () => log('closed', { lport, rport }));
  });
  server.listen(Number(values.port ?? 0), () => {
    const a = server.address() as { address: string; port: number };
    log('listening', { bound: a.address, port: a.port });
  });
  process.on('SIGTERM', () => process.exit(0));
}

if (require.main === module) main();
