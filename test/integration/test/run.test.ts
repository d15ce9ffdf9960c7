// `netmon run`, single-host mode: probes and enrichment in one process, the
// spec's NetworkEvent JSON lines on stdout, process_filter applied. No Kafka.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { NetworkEvent } from '@netmon/common';
import { startChild, startNetmon, waitUntil } from '../src';

test("netmon run prints curl's connection, and only curl's, as spec JSON lines", {
  skip: process.getuid?.() === 0 ? false : 'the kernel probes need root',
}, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'netmon-run-'));
  const config = path.join(dir, 'netmon.yaml');
  // No broker in this config: single-host mode needs none.
  writeFileSync(config, 'kafka: { brokers: [127.0.0.1:1] }\nprocess_filter: { binary: { name: [curl] } }\n');
  const server = createServer((s) => s.end('HTTP/1.0 200 OK\r\n\r\n'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const run = startNetmon(['run', '--config', config]);
  await waitUntil('probes attached', () => run.stderr().includes('probes attached') || run.proc.exitCode !== null, 30_000);
  const curl = execFileSync('sh', ['-c', 'command -v curl']).toString().trim();
  const client = startChild(curl, ['-s', '-o', '/dev/null', `http://127.0.0.1:${port}/`]);
  await client.exited;
  const lines = await waitUntil("curl's Establish and Close", () => {
    const l = run.stdout().trim().split('\n').filter(Boolean);
    return l.length >= 2 ? l : undefined;
  });
  assert.equal(await run.stop('SIGINT'), 0);
  server.close();
  const events = lines.map((l) => JSON.parse(l) as NetworkEvent);
  assert.deepEqual(Object.keys(events[0]!), ['type', 'process', 'network_event', 'timestamp', 'host', 'source', 'connection', 'process_key']);
  for (const e of events) assert.equal(e.process.filename, 'curl', 'the filter keeps curl only');
  const establish = events.find((e) => e.network_event.type === 'TcpConnectionEstablish' && e.network_event.dport === port);
  assert.ok(establish);
  assert.equal(establish.process.pid, client.proc.pid);
  assert.equal(establish.process.args, `-s -o /dev/null http://127.0.0.1:${port}/`);
  const close = events.find((e) => e.network_event.type === 'TcpConnectionClose' && e.network_event.cookie === establish.network_event.cookie);
  assert.ok(close, 'the Close pairs with the Establish');
});
