// End to end on this host: the real sensor, enricher and archiver as separate
// `netmon` processes, the real broker and S3 server, real programs making
// connections (curl, python's HTTP server, netcat). The archived gzip NDJSON
// is read back from S3 and checked field by field.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, realpathSync, rmdirSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import type { NetworkEvent } from '@netmon/common';
import { archived, startChild, startPipeline, stopPipelines, waitUntil } from '../src';
import { freePort, listeningPorts } from '../src/prometheus';

const isRoot = process.getuid?.() === 0;
const which = (cmd: string) => {
  try {
    return execFileSync('sh', ['-c', `command -v ${cmd}`])
      .toString()
      .trim();
  } catch {
    return '';
  }
};
const CURL = which('curl');
const NC = which('nc');
after(stopPipelines);

const SPEC_KEYS = ['type', 'process', 'network_event', 'timestamp', 'host', 'source', 'connection', 'process_key'];
const PROCESS_KEYS = [
  'pid',
  'tid',
  'ppid',
  'uid',
  'euid',
  'auid',
  'cap_inheritable',
  'cap_permitted',
  'cap_effective',
  'secureexec',
  'filename',
  'binary_path',
  'args',
  'container_id',
];

function assertSpecShape(e: NetworkEvent) {
  assert.deepEqual(Object.keys(e), SPEC_KEYS);
  assert.deepEqual(Object.keys(e.process), PROCESS_KEYS);
  assert.deepEqual(Object.keys(e.network_event), ['type', 'saddr', 'daddr', 'sport', 'dport', 'cookie']);
  assert.match(e.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.ok(Math.abs(Date.parse(e.timestamp) - Date.now()) < 10 * 60_000, 'a timestamp of now');
  assert.equal(e.host.hostname.length > 0 && e.host.id.length > 0, true);
}

const ofPid = (events: NetworkEvent[], pid: number) => events.filter((e) => e.process.pid === pid);

describe('end to end (real kernel, broker, S3, programs)', { skip: isRoot ? false : 'the kernel probes need root' }, () => {
  test('curl fetches from a python HTTP server over IPv6 ::1: Establish, Accept, both Closes, archived', {
    skip: CURL ? false : 'curl is not installed',
  }, async () => {
    const p = await startPipeline();
    const server = startChild('python3', ['-m', 'http.server', '--bind', '::1', '0'], {});
    await waitUntil('the HTTP server to listen', () => /port (\d+)/.exec(server.stdout() + server.stderr())?.[1], 20_000);
    const port = Number(/port (\d+)/.exec(server.stdout() + server.stderr())![1]);
    const client = startChild(CURL, ['-6', '-s', '-o', '/dev/null', `http://[::1]:${port}/`], {});
    assert.equal(await client.exited, 0);
    const clientPid = client.proc.pid!;
    const serverPid = server.proc.pid!;
    const events = await waitUntil(
      'the four events archived',
      async () => {
        const all = await archived(p);
        const mine = [...ofPid(all, clientPid), ...ofPid(all, serverPid).filter((e) => e.network_event.sport === port && e.network_event.dport !== 0)];
        return mine.length >= 4 ? all : undefined;
      },
      60_000,
      1000,
    );
    await server.stop('SIGKILL');
    const fromCurl = ofPid(events, clientPid);
    const establish = fromCurl.find((e) => e.network_event.type === 'TcpConnectionEstablish');
    const curlClose = fromCurl.find((e) => e.network_event.type === 'TcpConnectionClose');
    assert.ok(establish && curlClose, JSON.stringify(fromCurl));
    for (const e of events) assertSpecShape(e);
    // curl inherits this process's credentials, login uid and capabilities.
    const status = readFileSync('/proc/self/status', 'utf8');
    const caps = (name: string) => Number.parseInt(new RegExp(`^${name}:\\s*([0-9a-f]+)`, 'm').exec(status)![1]!, 16);
    assert.deepEqual(establish.process, {
      pid: clientPid,
      tid: clientPid,
      ppid: process.pid,
      uid: process.getuid!(),
      euid: process.geteuid!(),
      auid: Number(readFileSync('/proc/self/loginuid', 'utf8')),
      cap_inheritable: caps('CapInh'),
      cap_permitted: caps('CapPrm'),
      cap_effective: caps('CapEff'),
      secureexec: '',
      filename: 'curl',
      binary_path: realpathSync(CURL),
      args: `-6 -s -o /dev/null http://[::1]:${port}/`,
      container_id: '',
    });
    const client4 = establish.network_event;
    assert.equal(client4.saddr, '::1');
    assert.equal(client4.daddr, '::1');
    assert.equal(client4.dport, port);
    const accept = ofPid(events, serverPid).find((e) => e.network_event.type === 'TcpConnectionAccept' && e.network_event.dport === client4.sport);
    assert.ok(accept, 'the server accepted the connection');
    assert.deepEqual([accept.network_event.saddr, accept.network_event.sport, accept.network_event.daddr], ['::1', port, '::1']);
    assert.equal(accept.process.filename.startsWith('python3'), true);
    assert.equal(curlClose.network_event.cookie, client4.cookie, 'the client Close pairs with its Establish');
    assert.equal(curlClose.network_event.sport, client4.sport, 'the real local port on Close');
    const serverClose = ofPid(events, serverPid).find(
      (e) => e.network_event.type === 'TcpConnectionClose' && e.network_event.cookie === accept.network_event.cookie,
    );
    assert.ok(serverClose, 'the server Close pairs with its Accept');
    assert.equal(new Set(events.map((e) => `${e.source.run_id}/${e.source.seq}`)).size, events.length, 'no event twice');
  });

  test('a netcat listener and a client over IPv4, with process_filter binary.name: [nc]', { skip: NC ? false : 'netcat is not installed' }, async () => {
    const p = await startPipeline('process_filter: { binary: { name: [nc.openbsd, nc] } }');
    const port = await freePort();
    const listener = startChild(NC, ['-l', '127.0.0.1', String(port)], {});
    // Listening, seen in /proc (a probe connection would be the one nc accepts): half a second's sleep was not always enough in CI.
    await waitUntil(
      'netcat to listen',
      () => {
        if (listener.proc.exitCode !== null) throw new Error(`nc -l exited ${listener.proc.exitCode}: ${listener.stderr()}`);
        return listeningPorts(listener.proc.pid!).includes(port);
      },
      10_000,
    );
    const client = startChild('sh', ['-c', `echo hello | ${NC} -N 127.0.0.1 ${port}`], {});
    await client.exited;
    await waitUntil('the listener to get the line', () => listener.stdout().includes('hello'), 10_000);
    await listener.stop();
    const events = await waitUntil(
      'netcat events archived',
      async () => {
        const all = await archived(p);
        return all.filter((e) => e.network_event.type === 'TcpConnectionAccept').length >= 1 && all.length >= 4 ? all : undefined;
      },
      60_000,
      1000,
    );
    for (const e of events) {
      assertSpecShape(e);
      assert.match(e.process.filename, /^nc/, 'only netcat passes the filter');
    }
    const accept = events.find((e) => e.network_event.type === 'TcpConnectionAccept')!;
    assert.deepEqual([accept.network_event.saddr, accept.network_event.sport, accept.network_event.daddr], ['127.0.0.1', port, '127.0.0.1']);
    assert.equal(accept.process.pid, listener.proc.pid);
    const establish = events.find((e) => e.network_event.type === 'TcpConnectionEstablish' && e.network_event.dport === port)!;
    assert.ok(establish, 'the client connect');
    assert.equal(establish.network_event.sport, accept.network_event.dport, 'four-tuples agree from both sides');
  });

  test('a deny list drops the named program and keeps the rest', { skip: CURL ? false : 'curl is not installed' }, async () => {
    const p = await startPipeline('process_filter: { deny_list: true, binary: { name: [curl] } }');
    const server = startChild('python3', ['-m', 'http.server', '--bind', '127.0.0.1', '0'], {});
    await waitUntil('the HTTP server to listen', () => /port (\d+)/.exec(server.stdout() + server.stderr())?.[1], 20_000);
    const port = Number(/port (\d+)/.exec(server.stdout() + server.stderr())![1]);
    const client = startChild(CURL, ['-s', '-o', '/dev/null', `http://127.0.0.1:${port}/`], {});
    assert.equal(await client.exited, 0);
    const events = await waitUntil(
      'the server side archived',
      async () => {
        const all = await archived(p);
        return ofPid(all, server.proc.pid!).some((e) => e.network_event.type === 'TcpConnectionAccept') ? all : undefined;
      },
      60_000,
      1000,
    );
    await server.stop('SIGKILL');
    assert.equal(ofPid(events, client.proc.pid!).length, 0, 'curl is denied');
    assert.ok(events.every((e) => e.process.filename !== 'curl'));
  });

  test('a process in a container-like cgroup gets its container id', async (t) => {
    const id = randomUUID().replace(/-/g, '') + randomUUID().replace(/-/g, '');
    // The cgroup v2 hierarchy (pure at /sys/fs/cgroup, or hybrid at .../unified): the kernel side reads the task's v2 cgroup.
    const v2 = readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .map((l) => l.split(' '))
      .find((f) => f[2] === 'cgroup2')?.[1];
    if (!v2) {
      t.skip('no cgroup v2 hierarchy is mounted');
      return;
    }
    const cgroup = `${v2}/docker-${id}.scope`;
    try {
      mkdirSync(cgroup);
    } catch (err) {
      t.skip(`the kernel refuses a new cgroup here: ${(err as Error).message}`);
      return;
    }
    const p = await startPipeline();
    try {
      // A shell moves itself into the cgroup, then execs a connecting python.
      const script = `echo $$ > ${cgroup}/cgroup.procs && exec python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(); c=socket.create_connection(s.getsockname()); a,_=s.accept(); c.close(); a.close()"`;
      const child = startChild('sh', ['-c', script], {});
      assert.equal(await child.exited, 0, child.stderr());
      const events = await waitUntil(
        'the contained process archived',
        async () => {
          const mine = ofPid(await archived(p), child.proc.pid!);
          return mine.length >= 3 ? mine : undefined;
        },
        60_000,
        1000,
      );
      for (const e of events) assert.equal(e.process.container_id, id);
    } finally {
      rmdirSync(cgroup);
    }
  });
});
