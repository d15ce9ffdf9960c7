// Hostile processes, as single-host mode prints them and DuckDB reads them
// back: argv with invalid UTF-8, newlines, tabs, quotes and control
// characters, a 1 MB argv, a binary under a directory whose name holds a
// newline. Every line is one JSON object; text is kept up to
// sensor.max_args_bytes with invalid bytes replaced, never dropped whole.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, realpathSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import type { NetworkEvent } from '@netmon/common';
import { NETMON_BIN, startChild, startNetmon, waitUntil } from '../src';

const PY = realpathSync('/usr/bin/python3');

/** python3 execs `binary` with raw byte arguments (Node cannot pass invalid UTF-8), which connects to `port`. */
function hostile(binary: string, port: number, args: string): ReturnType<typeof startChild> {
  const code = `
import os, sys
port = ${port}
args = ${args}
os.execv(${JSON.stringify(binary)}.encode(), [b'hostile', b'-c', b'import socket,sys; s=socket.socket(); s.connect(("127.0.0.1", int(sys.argv[1]))); s.close()', str(port).encode()] + args)
`;
  return startChild(PY, ['-c', code]);
}

test('hostile argv and paths: every line is one JSON object, text kept (invalid bytes replaced), DuckDB reads it back', {
  skip: process.getuid?.() === 0 ? false : 'the kernel probes need root',
}, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'netmon-hostile-'));
  const config = path.join(dir, 'netmon.yaml');
  writeFileSync(config, 'kafka: { brokers: [127.0.0.1:1] }\n');
  const server = createServer((s) => s.resume());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const newlineDir = path.join(dir, 'bin\nwith newline');
  mkdirSync(newlineDir);
  const oddBinary = path.join(newlineDir, 'py "q"\ttab');
  copyFileSync(PY, oddBinary);
  execFileSync('chmod', ['755', oddBinary]);

  const run = startNetmon(['run', '--config', config]);
  await waitUntil('probes attached', () => run.stderr().includes('probes attached') || run.proc.exitCode !== null, 30_000);
  const children = [
    // invalid UTF-8, newline, tab, quotes, backslash, control characters, an empty argument
    hostile(PY, port, String.raw`[b'\xff\xfe bad', b'line1\nline2', b'tab\there', b'quote"q\'', b'back\\slash', b'\x01\x02\x1b[31m', b'']`),
    // 1 MB of argv in 8 arguments (one argument is at most 128 KiB)
    hostile(PY, port, "[('%d' % i).encode() + b'x' * 131000 for i in range(8)]"),
    // the binary under a directory named with a newline
    hostile(oddBinary, port, "[b'plain']"),
  ];
  for (const c of children) assert.equal(await c.exited, 0, c.stderr());
  const pids = children.map((c) => c.proc.pid!);
  const lines = await waitUntil('an Establish of each hostile process', () => {
    const all = run.stdout().split('\n').filter(Boolean);
    const events = all.map((l) => JSON.parse(l) as NetworkEvent); // every line one JSON object
    const mine = pids.map((pid) => events.find((e) => e.process.pid === pid && e.network_event.type === 'TcpConnectionEstablish'));
    return mine.every(Boolean) ? { all, mine: mine as NetworkEvent[] } : undefined;
  });
  assert.equal(await run.stop('SIGINT'), 0, run.stderr().slice(-2000));
  server.close();

  const [bad, huge, odd] = lines.mine as [NetworkEvent, NetworkEvent, NetworkEvent];
  assert.equal(bad.process.binary_path, PY);
  assert.equal(
    bad.process.args,
    `-c import socket,sys; s=socket.socket(); s.connect(("127.0.0.1", int(sys.argv[1]))); s.close() ${port} \ufffd\ufffd bad line1\nline2 tab\there quote"q' back\\slash \u0001\u0002\u001b[31m `,
  );
  assert.ok(Buffer.byteLength(huge.process.args) <= 4096, `args of ${Buffer.byteLength(huge.process.args)} bytes`);
  assert.ok(huge.process.args.endsWith('…'));
  assert.ok(huge.process.args.includes(' 0xxxx'), 'the first of the large arguments is kept, cut');
  assert.equal(odd.process.binary_path, oddBinary, 'a path with a newline, a tab and quotes, whole');
  assert.equal(odd.process.filename, 'py "q"\ttab');

  // DuckDB (netmon query, the Athena table's columns) reads the same lines back.
  const part = path.join(dir, 'archive', 'dt=2026-11-29', 'hour=00');
  mkdirSync(part, { recursive: true });
  writeFileSync(path.join(part, 'hostile.json.gz'), gzipSync(`${lines.all.join('\n')}\n`));
  const out = execFileSync(
    process.execPath,
    [
      NETMON_BIN,
      'query',
      '--json',
      '--source',
      path.join(dir, 'archive'),
      `SELECT process.pid AS pid, process.args AS args, process.binary_path AS path FROM network_events WHERE process.pid IN (${pids.join(',')}) AND network_event.type = 'TcpConnectionEstablish' ORDER BY pid`,
    ],
    { encoding: 'utf8' },
  );
  const rows = out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { pid: number; args: string; path: string });
  const byPid = new Map(rows.map((r) => [r.pid, r]));
  assert.equal(byPid.get(bad.process.pid)?.args, bad.process.args);
  assert.equal(byPid.get(huge.process.pid)?.args, huge.process.args);
  assert.equal(byPid.get(odd.process.pid)?.path, oddBinary);
});
