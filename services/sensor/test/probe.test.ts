// Kernel tests of the probes' events, with real client and server child
// processes on loopback. Run as root (`node --test`); they skip only where
// the kernel refuses BPF altogether.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { SocketEvent } from '../src/index';
import { Child, Collector, NODE, bpfUnavailable, closedPort, procStartNs, scripts, waitFor } from './probe-helpers';

const unavailable = bpfUnavailable();
let c: Collector;

before(() => {
  if (!unavailable) c = new Collector('tracepoint');
});
after(async () => {
  await c?.stop();
});

function assertTuple(e: SocketEvent, want: Partial<SocketEvent>, what: string): void {
  for (const [k, v] of Object.entries(want)) assert.deepEqual(e[k as keyof SocketEvent], v, `${what}.${k}`);
}

async function connectAcceptClose(listenHost: string, connectHost: string) {
  const s = scripts();
  const server = new Child(NODE, [s.server, listenHost]);
  const serverStart = procStartNs(server.pid);
  const port = await server.line<number>('port');
  const client = new Child(NODE, [s.client, connectHost, String(port)]);
  const clientStart = procStartNs(client.pid);
  const { localPort: cport } = await client.line<{ localPort: number }>('connected');
  const accepted = await server.line<{ localPort: number; remotePort: number }>('accepted');
  assert.equal(accepted.remotePort, cport);
  await Promise.all([client.exited, server.exited]);

  const est = await waitFor('establish', () => c.sockets(client.pid, 'establish')[0]);
  const acc = await waitFor('accept', () => c.sockets(server.pid, 'accept')[0]);
  const cClose = await waitFor('client close', () => c.sockets(client.pid, 'close').find((e) => e.cookie === est.cookie));
  const sClose = await waitFor('server close', () => c.sockets(server.pid, 'close').find((e) => e.cookie === acc.cookie));
  return { s, server, client, serverStart, clientStart, port, cport, est, acc, cClose, sClose };
}

async function checkPair(listenHost: string, connectHost: string, family: 4 | 6, local: string, v4mapped: boolean) {
  const r = await connectAcceptClose(listenHost, connectHost);
  const { est, acc, cClose, sClose, port, cport } = r;

  // Establish: the client's connect, local end first.
  assertTuple(est, { family, v4mapped, saddr: local, sport: cport, daddr: local, dport: port, state: 'SYN_SENT' }, 'establish');
  // Accept: the accepted connection's real four-tuple, by the accepting process.
  assertTuple(acc, { family, v4mapped, saddr: local, sport: port, daddr: local, dport: cport }, 'accept');
  // the client may have sent its FIN before the server got to accept()
  assert.ok(['ESTABLISHED', 'CLOSE_WAIT'].includes(acc.state), acc.state);
  // Close: same cookies, real local ports, by the closing process.
  assertTuple(cClose, { saddr: local, sport: cport, daddr: local, dport: port }, 'client close');
  assertTuple(sClose, { saddr: local, sport: port, daddr: local, dport: cport }, 'server close');
  assert.notEqual(est.cookie, 0);
  assert.notEqual(acc.cookie, 0);
  assert.notEqual(est.cookie, acc.cookie);
  assert.equal(c.sockets(r.client.pid, 'establish').length, 1, 'one establish per connect');
  assert.equal(c.sockets(r.server.pid, 'accept').length, 1, 'one accept per accepted connection');

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
    const diff = ev.task.startTimeNs - start;
    assert.ok(diff >= 0 && diff < 10_000_000, `start time ${ev.task.startTimeNs} vs /proc ${start}`);
    assert.ok(ev.tsNs > ev.task.startTimeNs);
  }
  // Exec records name the children's binary and args, before their sockets.
  for (const [child, args] of [
    [r.client, [r.s.client, connectHost, String(port)]],
    [r.server, [r.s.server, listenHost]],
  ] as const) {
    const exec = c.exec(child.pid);
    assert.ok(exec, `exec record of ${child.pid}`);
    assert.equal(exec.binaryPath, NODE);
    assert.deepEqual(exec.args, args);
    assert.equal(exec.argsTruncated, false);
    assert.deepEqual(exec.secureexec, []);
    assert.ok(c.events.indexOf(exec) < c.events.indexOf(child === r.client ? est : acc), 'exec delivered first');
  }
  return r;
}

test('IPv4: connect -> establish, accept -> accept with the four-tuple, both closes -> close', { skip: unavailable }, async () => {
  await checkPair('127.0.0.1', '127.0.0.1', 4, '127.0.0.1', false);
});

test('IPv6: connect -> establish, accept -> accept with the four-tuple, both closes -> close', { skip: unavailable }, async () => {
  await checkPair('::1', '::1', 6, '::1', false);
});

test('IPv4-mapped on an IPv6 socket is reported as IPv4', { skip: unavailable }, async () => {
  await checkPair('::', '::ffff:127.0.0.1', 6, '127.0.0.1', true);
});

test('a refused non-blocking connect: establish (SYN sent), then close with the same cookie and port', { skip: unavailable }, async () => {
  const port = await closedPort('127.0.0.1');
  const client = new Child(NODE, [scripts().client, '127.0.0.1', String(port)]);
  assert.equal(await client.line<string>('error'), 'ECONNREFUSED');
  await client.exited;
  const est = await waitFor('establish', () => c.sockets(client.pid, 'establish')[0]);
  const close = await waitFor('close', () => c.sockets(client.pid, 'close').find((e) => e.cookie === est.cookie));
  assert.equal(est.dport, port);
  assert.ok(est.sport > 0);
  assert.equal(close.sport, est.sport, 'real local port on close');
  assert.equal(close.dport, port);
  assert.equal(close.state, 'CLOSE');
});

test('a refused blocking connect (bash /dev/tcp): establish, then close', { skip: unavailable }, async () => {
  const port = await closedPort('127.0.0.1');
  const bash = new Child('/bin/bash', ['-c', `exec 3<>/dev/tcp/127.0.0.1/${port}`]);
  assert.notEqual(await bash.exited, 0);
  const est = await waitFor('establish', () => c.sockets(bash.pid, 'establish')[0]);
  const close = await waitFor('close', () => c.sockets(bash.pid, 'close').find((e) => e.cookie === est.cookie));
  assert.equal(est.dport, port);
  assert.equal(close.sport, est.sport);
});

test('a process that execs and connects at once is attributed (exec record first)', { skip: unavailable }, async (t) => {
  const s = scripts();
  const server = new Child(NODE, [s.server, '127.0.0.1']);
  const port = await server.line<number>('port');
  const cmd = `exec 3<>/dev/tcp/127.0.0.1/${port}`;
  const bash = new Child('/bin/bash', ['-c', cmd]);
  await bash.exited;
  const est = await waitFor('establish', () => c.sockets(bash.pid, 'establish')[0]);
  const exec = await waitFor('exec', () => c.exec(bash.pid));
  assert.equal(exec.binaryPath, '/usr/bin/bash');
  assert.deepEqual(exec.args, ['-c', cmd]);
  assert.equal(exec.task.comm, 'bash');
  assert.equal(est.task.startTimeNs, exec.task.startTimeNs);
  assert.ok(c.events.indexOf(exec) < c.events.indexOf(est), 'exec delivered before the establish');
  t.diagnostic(`exec -> connect: ${Number(est.tsNs - exec.tsNs) / 1e6} ms`);
  await waitFor('close', () => c.sockets(bash.pid, 'close').find((e) => e.cookie === est.cookie));
  server.kill();
});

test('a connect from a process that was running before the probes loaded', { skip: unavailable }, async () => {
  const s = scripts();
  const server = new Child(NODE, [s.server, '127.0.0.1']);
  const port = await server.line<number>('port');
  const client = new Child(NODE, [s.waitingClient, '127.0.0.1', String(port)]);
  const start = procStartNs(client.pid);
  await client.line('ready');
  const late = new Collector('tracepoint'); // loaded after the client started
  try {
    client.proc.stdin!.write('go\n');
    const { localPort } = await client.line<{ localPort: number }>('connected');
    const est = await waitFor('establish', () => late.sockets(client.pid, 'establish')[0]);
    assert.equal(est.sport, localPort);
    assert.equal(est.dport, port);
    assert.equal(est.task.comm, 'node');
    assert.ok(est.task.startTimeNs - start < 10_000_000 && est.task.startTimeNs >= start);
    assert.equal(late.exec(client.pid), undefined, 'no exec record: it ran before');
    await client.exited;
    await waitFor('close', () => late.sockets(client.pid, 'close').find((e) => e.cookie === est.cookie));
  } finally {
    await late.stop();
    server.kill();
  }
});
