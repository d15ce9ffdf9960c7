// Kernel tests of the probes' records, with real client and server child
// processes on loopback. Run as root (`node --test`); they skip only where
// the kernel refuses BPF altogether. Records are matched to what happened by
// pid and port (each child makes one connection) and paired by cookie.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { DEFAULT_REDACT_ARGS, formatAddress } from '@netmon/common';
import { REDACTED, compileRedaction } from '../src/index';
import { Child, Collector, NODE, type SocketSeen, bpfUnavailable, closedPort, procStartUs, scripts, waitFor } from './probe-helpers';

const unavailable = bpfUnavailable();
let c: Collector;

before(() => {
  // with the default redaction, as `netmon sensor` runs
  if (!unavailable) c = new Collector('tracepoint', undefined, compileRedaction(DEFAULT_REDACT_ARGS));
});
after(async () => {
  await c?.stop();
});

/** A process's cgroup v2 path (the `0::` line of /proc/PID/cgroup). */
function cgroup2PathOf(pid: number): string {
  const line = fs
    .readFileSync(`/proc/${pid}/cgroup`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('0::'));
  return line?.slice(3) ?? '';
}

/** Where cgroup v2 is mounted (/sys/fs/cgroup, or …/unified on hybrid hosts), or undefined. */
function cgroup2Root(): string | undefined {
  const mount = fs
    .readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .find((l) => l.split(' ')[2] === 'cgroup2');
  return mount?.split(' ')[1];
}

/** The four-tuple as text, the way the enricher prints it. */
function tuple(e: SocketSeen) {
  return { family: e.family, saddr: formatAddress(e.saddr), sport: e.sport, daddr: formatAddress(e.daddr), dport: e.dport };
}

async function connectAcceptClose(listenHost: string, connectHost: string) {
  const s = scripts();
  const server = new Child(NODE, [s.server, listenHost]);
  const serverStart = procStartUs(server.pid);
  const port = await server.line<number>('port');
  const client = new Child(NODE, [s.client, connectHost, String(port)]);
  const clientStart = procStartUs(client.pid);
  const { localPort: cport } = await client.line<{ localPort: number }>('connected');
  const accepted = await server.line<{ localPort: number; remotePort: number }>('accepted');
  assert.equal(accepted.remotePort, cport);
  await Promise.all([client.exited, server.exited]);

  const est = await waitFor('establish', () => c.sockets(client.pid, 'ESTABLISH')[0]);
  const acc = await waitFor('accept', () => c.sockets(server.pid, 'ACCEPT')[0]);
  const cClose = await waitFor('client close', () => c.sockets(client.pid, 'CLOSE').find((e) => e.cookie === est.cookie));
  const sClose = await waitFor('server close', () => c.sockets(server.pid, 'CLOSE').find((e) => e.cookie === acc.cookie));
  return { s, server, client, serverStart, clientStart, port, cport, est, acc, cClose, sClose };
}

async function checkPair(listenHost: string, connectHost: string, family: 'INET' | 'INET6', local: string) {
  const r = await connectAcceptClose(listenHost, connectHost);
  const { est, acc, cClose, sClose, port, cport } = r;
  const client = { family, saddr: local, sport: cport, daddr: local, dport: port };
  const server = { family, saddr: local, sport: port, daddr: local, dport: cport };

  // Establish: the client's connect, local end first; Accept: the accepted
  // connection's real four-tuple; Closes: the same tuples and cookies.
  assert.deepEqual(tuple(est), client, 'establish');
  assert.deepEqual(tuple(acc), server, 'accept');
  assert.deepEqual(tuple(cClose), client, 'client close');
  assert.deepEqual(tuple(sClose), server, 'server close');
  assert.notEqual(est.cookie, 0);
  assert.notEqual(acc.cookie, 0);
  assert.notEqual(est.cookie, acc.cookie);
  assert.equal(c.sockets(r.client.pid, 'ESTABLISH').length, 1, 'one establish per connect');
  assert.equal(c.sockets(r.server.pid, 'ACCEPT').length, 1, 'one accept per accepted connection');
  assert.equal(c.sockets(r.client.pid, 'CLOSE').length, 1, 'one close per connection, none for the listener');
  assert.equal(c.sockets(r.server.pid, 'CLOSE').length, 1, 'the listening socket closes silently');

  // Process facts are the children's.
  for (const [ev, child, start] of [
    [est, r.client, r.clientStart],
    [cClose, r.client, r.clientStart],
    [acc, r.server, r.serverStart],
    [sClose, r.server, r.serverStart],
  ] as const) {
    assert.equal(ev.task.pid, child.pid);
    assert.equal(ev.task.ppid, process.pid);
    assert.equal(ev.task.uid, process.getuid!());
    assert.equal(ev.task.euid, process.geteuid!());
    assert.equal(ev.task.comm, 'node');
    assert.equal(ev.task.cgroup_path, cgroup2PathOf(process.pid), 'children run in the cgroup of the test');
    const diff = ev.task.start_time_us - start;
    assert.ok(diff >= 0 && diff < 10_000, `start time ${ev.task.start_time_us} vs /proc ${start}`);
    assert.ok(ev.task.ktime_us > ev.task.start_time_us);
  }
  // Exec records name the children's binary and args, before their sockets.
  for (const [child, args] of [
    [r.client, [r.s.client, connectHost, String(port)]],
    [r.server, [r.s.server, listenHost]],
  ] as const) {
    const exec = c.exec(child.pid);
    assert.ok(exec, `exec record of ${child.pid}`);
    assert.equal(exec.binary_path, NODE);
    assert.deepEqual(exec.args, args);
    assert.equal(exec.args_truncated, false);
    assert.deepEqual(exec.secureexec, []);
    assert.ok(exec.index < (child === r.client ? est : acc).index, 'exec delivered first');
  }
  return r;
}

test('IPv4: connect -> establish, accept -> accept with the four-tuple, both closes -> close', { skip: unavailable }, async () => {
  await checkPair('127.0.0.1', '127.0.0.1', 'INET', '127.0.0.1');
});

test('IPv6: connect -> establish, accept -> accept with the four-tuple, both closes -> close', { skip: unavailable }, async () => {
  await checkPair('::1', '::1', 'INET6', '::1');
});

test('IPv4-mapped on an IPv6 socket is reported as IPv4 in the kernel record', { skip: unavailable }, async () => {
  // a dual-stack server on :: reached over IPv4, and an IPv6 client dialling ::ffff:127.0.0.1
  const r = await checkPair('::', '::ffff:127.0.0.1', 'INET', '127.0.0.1');
  for (const e of [r.est, r.acc, r.cClose, r.sClose]) assert.equal(e.saddr.length, 4);
});

/** A Close carries its Establish's four-tuple, even after the kernel cleared it. */
function assertClosesLike(est: SocketSeen, close: SocketSeen, port: number) {
  assert.equal(est.dport, port);
  assert.ok(est.sport > 0);
  assert.deepEqual(tuple(close), tuple(est));
  assert.equal(formatAddress(close.daddr), '127.0.0.1');
}

test('a refused non-blocking connect: establish, then a close with the same four-tuple and cookie', { skip: unavailable }, async () => {
  const port = await closedPort('127.0.0.1');
  const client = new Child(NODE, [scripts().client, '127.0.0.1', String(port)]);
  assert.equal(await client.line<string>('error'), 'ECONNREFUSED');
  await client.exited;
  const est = await waitFor('establish', () => c.sockets(client.pid, 'ESTABLISH')[0]);
  const close = await waitFor('close', () => c.sockets(client.pid, 'CLOSE').find((e) => e.cookie === est.cookie));
  assertClosesLike(est, close, port);
});

test('a refused blocking connect (bash /dev/tcp): establish, then a close with the same four-tuple', { skip: unavailable }, async () => {
  const port = await closedPort('127.0.0.1');
  const bash = new Child('/bin/bash', ['-c', `exec 3<>/dev/tcp/127.0.0.1/${port}`]);
  assert.notEqual(await bash.exited, 0);
  const est = await waitFor('establish', () => c.sockets(bash.pid, 'ESTABLISH')[0]);
  const close = await waitFor('close', () => c.sockets(bash.pid, 'CLOSE').find((e) => e.cookie === est.cookie));
  assertClosesLike(est, close, port);
  assert.equal(c.sockets(bash.pid, 'CLOSE').length, 1);
});

const PY = fs.realpathSync('/usr/bin/python3');

/** A python3 child running `code`; its JSON lines are collected. */
function python(code: string, args: string[] = [], wrap: string[] = []): Child {
  const program = `import json, os, socket, sys, time\nout = lambda **o: print(json.dumps(o), flush=True)\n${code}`;
  return wrap.length > 0 ? new Child(wrap[0]!, [...wrap.slice(1), PY, '-c', program, ...args]) : new Child(PY, ['-c', program, ...args]);
}

test('sockets that never connected (listener, bound-only, unused) close without any record', { skip: unavailable }, async () => {
  const port = await closedPort('127.0.0.1');
  const p = python(`
l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen(); l.close()
b = socket.socket(socket.AF_INET6); b.bind(('::1', 0)); b.close()
u = socket.socket(); u.close()
c = socket.socket()
try: c.connect(('127.0.0.1', ${port}))
except OSError as e: out(error=e.errno)
c.close()
out(done=True)
`);
  await p.line('done');
  await p.exited;
  // The refused connect is the marker: its Close comes after the three others.
  const est = await waitFor('establish of the marker', () => c.sockets(p.pid, 'ESTABLISH')[0]);
  await waitFor('close of the marker', () => c.sockets(p.pid, 'CLOSE').find((e) => e.cookie === est.cookie));
  const closes = c.sockets(p.pid, 'CLOSE');
  assert.deepEqual(
    closes.map((e) => e.cookie),
    [est.cookie],
    `only the connection closes: ${JSON.stringify(closes.map(tuple))}`,
  );
});

test('an unreachable network: no establish and no close', { skip: unavailable }, async (t) => {
  // A fresh network namespace with nothing up: connect() fails before any packet.
  const probe = spawnSync('unshare', ['-n', 'true']);
  if (probe.status !== 0) {
    t.skip(`unshare -n refused: ${probe.stderr}`);
    return;
  }
  const p = python(
    `
for addr, fam in (('192.0.2.1', socket.AF_INET), ('2001:db8::1', socket.AF_INET6)):
  s = socket.socket(fam)
  try: s.connect((addr, 80))
  except OSError as e: out(error=e.errno)
  s.close()
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); out(port=s.getsockname()[1])
c = socket.socket(); c.connect(('127.0.0.1', s.getsockname()[1])); c.close(); s.close()
out(done=True)
`,
    [],
    ['unshare', '-n', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh'],
  );
  await p.line('done');
  await p.exited;
  const errors = p.lines.filter((l) => 'error' in l).map((l) => l.error);
  assert.deepEqual(errors, [101, 101], 'both connects: ENETUNREACH');
  const port = p.lines.find((l) => 'port' in l)!.port as number;
  // The loopback connection inside the namespace is the marker.
  const est = await waitFor('establish of the marker', () => c.sockets(p.pid, 'ESTABLISH').find((e) => e.dport === port));
  await waitFor('close of the marker', () => c.sockets(p.pid, 'CLOSE').find((e) => e.cookie === est.cookie));
  assert.equal(c.sockets(p.pid, 'ESTABLISH').length, 1, 'no establish for the unreachable connects');
  // (its accepted end, never accepted, goes with the listener: no close)
  assert.equal(c.sockets(p.pid, 'CLOSE').length, 1, 'one close: the marker client');
});

test('a connection open before the probes loaded closes with its real ports', { skip: unavailable }, async () => {
  const p = python(`
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()
c = socket.socket(); c.connect(s.getsockname())
a, _ = s.accept()
out(sport=c.getsockname()[1], dport=s.getsockname()[1])
sys.stdin.readline()
c.close(); a.close(); s.close()
out(done=True)
`);
  const { sport, dport } = (await p.line<number>('sport').then(() => p.lines[0])) as { sport: number; dport: number };
  const late = new Collector('tracepoint');
  try {
    p.proc.stdin!.write('go\n');
    await p.line('done');
    const closes = await waitFor('both closes', () => {
      const all = late.sockets(p.pid, 'CLOSE');
      return all.length >= 2 ? all : undefined;
    });
    const client = closes.find((e) => e.sport === sport);
    assert.ok(client, `the client's close: ${JSON.stringify(closes.map(tuple))}`);
    assert.deepEqual(tuple(client), { family: 'INET', saddr: '127.0.0.1', sport, daddr: '127.0.0.1', dport });
    const server = closes.find((e) => e.sport === dport);
    assert.ok(server, "the accepted end's close");
    assert.equal(server.dport, sport);
    assert.equal(closes.length, 2, 'the listener closes silently');
  } finally {
    await late.stop();
  }
});

test('a forked child that never execs: a fork record names its parent, its sockets carry its own pid', { skip: unavailable }, async () => {
  const s = scripts();
  const server = new Child(NODE, [s.server, '127.0.0.1']);
  const port = await server.line<number>('port');
  const p = python(`
pid = os.fork()
if pid == 0:
  c = socket.socket(); c.connect(('127.0.0.1', ${port})); out(child=os.getpid(), sport=c.getsockname()[1]); c.close(); os._exit(0)
os.waitpid(pid, 0)
out(done=True)
`);
  const parentStart = procStartUs(p.pid);
  const child = await p.line<number>('child');
  await p.line('done');
  const fork = await waitFor('fork record', () => c.fork(child));
  assert.equal(fork.parent_pid, p.pid);
  assert.equal(fork.task.ppid, p.pid);
  assert.equal(fork.task.comm, path.basename(PY));
  assert.ok(fork.parent_start_time_us >= parentStart && fork.parent_start_time_us - parentStart < 10_000);
  const est = await waitFor('establish of the child', () => c.sockets(child, 'ESTABLISH')[0]);
  assert.equal(est.dport, port);
  assert.equal(est.task.ppid, p.pid);
  assert.equal(est.task.start_time_us, fork.task.start_time_us);
  const forkIndex = c.records.findIndex(({ payload }) => payload.kind === 'fork' && payload.value.task.pid === child);
  assert.ok(forkIndex < est.index, 'the fork record comes before the child acts');
  assert.equal(c.exec(child), undefined, 'no exec');
  server.kill();
});

test('a nested container cgroup: the record carries the whole cgroup path', { skip: unavailable }, async (t) => {
  const root = cgroup2Root();
  if (!root) {
    t.skip('no cgroup v2 hierarchy mounted');
    return;
  }
  const id = randomBytes(32).toString('hex');
  const slice = `${root}/netmon-test-${process.pid}.slice`;
  const leaf = `${slice}/docker-${id}.scope/init.scope`;
  fs.mkdirSync(leaf, { recursive: true });
  const s = scripts();
  const server = new Child(NODE, [s.server, '127.0.0.1']);
  const port = await server.line<number>('port');
  const client = new Child(NODE, [s.waitingClient, '127.0.0.1', String(port)]);
  try {
    await client.line('ready');
    fs.writeFileSync(`${leaf}/cgroup.procs`, String(client.pid));
    client.proc.stdin!.write('go\n');
    await client.exited;
    const est = await waitFor('establish', () => c.sockets(client.pid, 'ESTABLISH')[0]);
    assert.equal(est.task.cgroup_path, leaf.slice(root.length));
    assert.ok(est.task.cgroup_id > 0);
  } finally {
    server.kill();
    await client.exited;
    for (const dir of [leaf, path.dirname(leaf), slice]) fs.rmdirSync(dir);
  }
});

test('a 600-byte binary path and a 6 KiB argv: the whole path, args cut at max_args_bytes', { skip: unavailable }, async () => {
  // 12 directories of 50 bytes: past the kernel's 512-byte path buffer.
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-'));
  const deep = path.join(base, ...Array.from({ length: 12 }, (_, i) => `${String(i).padStart(2, '0')}${'d'.repeat(48)}`));
  fs.mkdirSync(deep, { recursive: true });
  const binary = path.join(deep, 'nmdeep');
  fs.copyFileSync('/usr/bin/true', binary);
  fs.chmodSync(binary, 0o755);
  assert.ok(binary.length > 600);
  const args = Array.from({ length: 48 }, (_, i) => `${i}:${'é'.repeat(60)}`); // 48 × 123 bytes ≈ 5.9 KiB
  execFileSync(binary, args);
  const exec = await waitFor(
    'exec of the deep binary',
    () =>
      c.records.map((r) => r.payload).find((p) => p.kind === 'exec' && p.value.task.comm === 'nmdeep')?.value as
        | { binary_path: string; args: string[]; args_truncated: boolean }
        | undefined,
  );
  // The kernel's buffer holds PATH_MAX: the whole path, though the process is long gone.
  assert.equal(exec.binary_path, binary);
  assert.equal(exec.args_truncated, true);
  const joined = exec.args.join(' ');
  assert.ok(Buffer.byteLength(joined) + 3 <= 4096, `args of ${Buffer.byteLength(joined)} bytes`);
  assert.ok(Buffer.byteLength(joined) > 4000, 'cut near the bound, not far before it');
  assert.ok(!joined.includes('\ufffd'), 'cut at a character boundary');
  assert.deepEqual(exec.args.slice(0, -1), args.slice(0, exec.args.length - 1));
  fs.rmSync(base, { recursive: true });
});

test('a long-lived process 140 directories deep (past the kernel walk): the path is completed from /proc', { skip: unavailable }, async () => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-'));
  const deep = path.join(base, ...Array.from({ length: 140 }, () => 'e'));
  fs.mkdirSync(deep, { recursive: true });
  const binary = path.join(deep, 'nmsleep');
  fs.copyFileSync('/usr/bin/sleep', binary);
  fs.chmodSync(binary, 0o755);
  const argv0 = `/${'z'.repeat(5000)}`; // an argv[0] longer than the kernel's 4095-byte step
  const child = new Child('/bin/bash', ['-c', `exec -a ${argv0} ${binary} 30`]);
  try {
    const exec = await waitFor('exec of the long-path sleep', () => {
      const all = c.records.map((r) => r.payload).filter((p) => p.kind === 'exec' && p.value.task.pid === child.pid);
      return all.find((p) => p.kind === 'exec' && p.value.task.comm === 'nmsleep')?.value as { binary_path: string; args: string[] } | undefined;
    });
    assert.equal(exec.binary_path, binary);
    assert.deepEqual(exec.args, ['30'], 'args after a 5001-byte argv[0]');
  } finally {
    child.kill();
    await child.exited;
    fs.rmSync(base, { recursive: true });
  }
});

test('an io_uring accept (IORING_OP_ACCEPT) is an Accept with the real four-tuple', { skip: unavailable }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-uring-'));
  // the fidelity tests' fixture (test/integration/fixtures): one io_uring accept, JSON lines
  const src = path.join(__dirname, '..', '..', '..', '..', 'test', 'integration', 'fixtures', 'uring_accept.c');
  const bin = path.join(dir, 'uring_accept');
  const cc = spawnSync('cc', ['-O2', '-o', bin, src, '-luring'], { encoding: 'utf8' });
  if (cc.status !== 0) {
    t.skip(`liburing not available to build the fixture: ${cc.stderr.trim()}`);
    return;
  }
  const server = new Child(bin, []);
  const port = await server.line<number>('port');
  const client = new Child(NODE, [scripts().client, '127.0.0.1', String(port)]);
  const { localPort } = await client.line<{ localPort: number }>('connected');
  assert.equal(await server.line<number>('rport'), localPort, 'accepted through io_uring');
  await Promise.all([client.exited, server.exited]);
  const acc = await waitFor('accept through io_uring', () => c.sockets(server.pid, 'ACCEPT')[0]);
  assert.deepEqual(tuple(acc), { family: 'INET', saddr: '127.0.0.1', sport: port, daddr: '127.0.0.1', dport: localPort });
  await waitFor('its close', () => c.sockets(server.pid, 'CLOSE').find((e) => e.cookie === acc.cookie));
  fs.rmSync(dir, { recursive: true });
});

test('a process that execs and connects at once is attributed (exec record first)', { skip: unavailable }, async (t) => {
  const s = scripts();
  const server = new Child(NODE, [s.server, '127.0.0.1']);
  const port = await server.line<number>('port');
  const cmd = `exec 3<>/dev/tcp/127.0.0.1/${port}`;
  const bash = new Child('/bin/bash', ['-c', cmd]);
  await bash.exited;
  const est = await waitFor('establish', () => c.sockets(bash.pid, 'ESTABLISH')[0]);
  const exec = await waitFor('exec', () => c.exec(bash.pid));
  assert.equal(exec.binary_path, '/usr/bin/bash');
  assert.deepEqual(exec.args, ['-c', cmd]);
  assert.equal(exec.task.comm, 'bash');
  assert.equal(est.task.start_time_us, exec.task.start_time_us);
  assert.ok(exec.index < est.index, 'exec delivered before the establish');
  t.diagnostic(`exec -> connect: ${(est.task.ktime_us - exec.task.ktime_us) / 1e3} ms`);
  await waitFor('close', () => c.sockets(bash.pid, 'CLOSE').find((e) => e.cookie === est.cookie));
  server.kill();
});

test('a connect from a process that was running before the probes loaded', { skip: unavailable }, async () => {
  const s = scripts();
  const server = new Child(NODE, [s.server, '127.0.0.1']);
  const port = await server.line<number>('port');
  const client = new Child(NODE, [s.waitingClient, '127.0.0.1', String(port)]);
  const start = procStartUs(client.pid);
  await client.line('ready');
  const late = new Collector('tracepoint'); // loaded after the client started
  try {
    client.proc.stdin!.write('go\n');
    const { localPort } = await client.line<{ localPort: number }>('connected');
    const est = await waitFor('establish', () => late.sockets(client.pid, 'ESTABLISH')[0]);
    assert.equal(est.sport, localPort);
    assert.equal(est.dport, port);
    assert.equal(est.task.comm, 'node');
    assert.ok(est.task.start_time_us - start < 10_000 && est.task.start_time_us >= start);
    assert.equal(late.exec(client.pid), undefined, 'no exec record: it ran before');
    await client.exited;
    await waitFor('close', () => late.sockets(client.pid, 'CLOSE').find((e) => e.cookie === est.cookie));
  } finally {
    await late.stop();
    server.kill();
  }
});

test('secrets in a real command line are redacted before the record leaves the probe', { skip: unavailable }, async () => {
  const args = ['-c', 'import sys; print(sys.argv[1:])', '--password=hunter2', '--token', 't0k', 'postgres://app:s3cret@db:5432/x', '--verbose'];
  const p = new Child(PY, args);
  await p.exited;
  const exec = await waitFor('exec of the python child', () => c.exec(p.pid));
  assert.equal(exec.binary_path, PY, 'the path is untouched: filters still match on it');
  assert.deepEqual(exec.args, [
    '-c',
    'import sys; print(sys.argv[1:])',
    `--password=${REDACTED}`,
    '--token',
    REDACTED,
    `postgres://app:${REDACTED}@db:5432/x`,
    '--verbose',
  ]);
  const text = JSON.stringify(c.records.filter((r) => r.payload.kind === 'exec' && r.payload.value.task.pid === p.pid));
  for (const secret of ['hunter2', 't0k', 's3cret']) assert.ok(!text.includes(secret), `${secret} left the probe`);
});
