// remote_name on the real kernel with a real DNS server: dnsmasq answers a
// test name with a CNAME chain to 127.0.0.x on port 53 (loopback, as a local
// stub resolver such as systemd-resolved is reached), a real client (node's
// resolver) resolves it and connects, and the events name what it asked for.
// Single-host mode (`netmon run`), then the pipeline with an enricher restart
// between the answer and the connection (the cache comes back from the
// changelog). Network namespaces are made and removed by the test.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type Server, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { NetworkEvent } from '@netmon/common';
import { type DnsServer, config as dnsmasqConfig, DNSMASQ, startDnsServer } from '../src/dns-server';
import { type Child, EventLines, type Pipeline, readEventsTopic, startChild, startNetmon, startPipeline, stopPipelines, waitUntil } from '../src';

const isRoot = process.getuid?.() === 0;
const rootSkip = isRoot ? false : 'the kernel probes (and port 53, network namespaces) need root';
if (!isRoot) console.log(`# dns names: skipped: ${rootSkip}`);
const CLIENT = path.join(__dirname, '../src/dns-client.js');
const DNS_ADDRESS = '127.0.0.153';
const TARGET = '127.0.0.7';

interface ClientLog {
  pid: number;
  name: string;
  address: string;
  port: number;
  sport: number;
  ok: boolean;
  errno: string;
}

/** Runs the DNS client (in a network namespace when given) and returns what it logged. */
async function client(args: string[], netns?: string): Promise<ClientLog> {
  const child = netns ? startChild('ip', ['netns', 'exec', netns, process.execPath, CLIENT, ...args]) : startChild(process.execPath, [CLIENT, ...args]);
  const code = await child.exited;
  assert.equal(code, 0, `dns-client ${args.join(' ')}: ${child.stderr()}`);
  return JSON.parse(child.stdout().trim()) as ClientLog;
}

const ofPid = (events: readonly NetworkEvent[], pid: number, type: NetworkEvent['network_event']['type']) =>
  events.filter((e) => e.process.pid === pid && e.network_event.type === type);

/** The Establish and Close of a client's one connection, once both are in. */
async function connectionOf(events: () => NetworkEvent[], c: ClientLog): Promise<{ open: NetworkEvent; close: NetworkEvent }> {
  return waitUntil(`the Establish and Close of pid ${c.pid}`, () => {
    const open = ofPid(events(), c.pid, 'TcpConnectionEstablish')[0];
    const close = open && events().find((e) => e.network_event.type === 'TcpConnectionClose' && e.network_event.cookie === open.network_event.cookie);
    return open && close ? { open, close } : undefined;
  });
}

/** A network namespace with its loopback up and its own dnsmasq on 127.0.0.1:53 answering `name` with TARGET. */
function namespaceWithDns(name: string, answer: string, dir: string): { netns: string; dnsmasq: Child; remove(): Promise<void> } {
  execFileSync('ip', ['netns', 'add', name]);
  execFileSync('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  const conf = path.join(dir, `${name}.conf`);
  writeFileSync(conf, dnsmasqConfig('127.0.0.1', 53, [{ name: answer, addresses: [TARGET], ttl: 60 }]));
  const dnsmasq = startChild('ip', ['netns', 'exec', name, DNSMASQ, '--no-daemon', `--conf-file=${conf}`]);
  return {
    netns: name,
    dnsmasq,
    remove: async () => {
      await dnsmasq.stop('SIGKILL');
      execFileSync('ip', ['netns', 'delete', name]);
    },
  };
}

/** The inode of a network namespace (what `connection.netns` holds). */
function netnsInode(name?: string): number {
  const out = execFileSync(
    name ? 'ip' : 'stat',
    name ? ['netns', 'exec', name, 'stat', '-L', '-c', '%i', '/proc/self/ns/net'] : ['-L', '-c', '%i', '/proc/self/ns/net'],
  );
  return Number(out.toString().trim());
}

describe('DNS names in single-host mode (netmon run), real dnsmasq, real client', { skip: rootSkip }, () => {
  const id = randomBytes(3).toString('hex');
  let dir: string;
  let dns: DnsServer;
  let server: Server;
  let port: number;
  let run: Child;
  let lines: EventLines;
  const namespaces: Array<{ remove(): Promise<void> }> = [];

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'netmon-dns-it-'));
    server = createServer((s) => s.resume().on('end', () => s.end()));
    await new Promise<void>((r) => server.listen(0, TARGET, r));
    port = (server.address() as { port: number }).port;
    dns = await startDnsServer({
      address: DNS_ADDRESS,
      port: 53,
      records: [
        { name: 'app.test', cnames: ['edge.test', 'origin.test'], addresses: [TARGET], ttl: 60 },
        { name: 'brief.test', addresses: ['127.0.0.8'], ttl: 1 },
      ],
    });
    const configFile = path.join(dir, 'netmon.yaml');
    writeFileSync(configFile, 'kafka: { brokers: [127.0.0.1:1] }\n');
    run = startNetmon(['run', '--config', configFile]);
    lines = new EventLines(run);
    await waitUntil('netmon run to attach its probes', () => run.stderr().includes('probes attached') || run.proc.exitCode !== null, 60_000);
    assert.equal(run.proc.exitCode, null, run.stderr());
    assert.doesNotMatch(run.stderr(), /cgroup_skb\/ingress skipped/, 'the DNS program loaded');
  });
  after(async () => {
    await run?.stop();
    await dns?.stop();
    server?.close();
    for (const ns of namespaces) await ns.remove();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a connection to a resolved name carries the name asked for (before the CNAMEs) on its Establish and Close', async () => {
    const c = await client(['--server', DNS_ADDRESS, '--name', 'app.test', '--port', String(port)]);
    assert.equal(c.address, TARGET);
    assert.ok(c.ok, c.errno);
    const { open, close } = await connectionOf(() => lines.events(), c);
    assert.equal(open.connection.remote_name, 'app.test');
    assert.equal(close.connection.remote_name, 'app.test');
    assert.equal(close.connection.outcome, 'established');
    assert.equal(open.connection.netns, netnsInode());
  });

  test('a literal-address connection to an address no answer gave carries ""', async () => {
    const c = await client(['--literal', '127.0.0.9', '--port', String(port)]);
    const { open } = await connectionOf(() => lines.events(), c);
    assert.equal(open.connection.remote_name, '');
  });

  test('an answer whose TTL expired is not used', async () => {
    const c = await client(['--server', DNS_ADDRESS, '--name', 'brief.test', '--port', String(port), '--wait-ms', '1500']);
    assert.equal(c.address, '127.0.0.8');
    const { open } = await connectionOf(() => lines.events(), c);
    assert.equal(open.connection.remote_name, '', 'the 1 s TTL ran out before the connect');
  });

  test('the same address answered with different names in two network namespaces: each its own name', async () => {
    const a = namespaceWithDns(`netmon-dns-a-${id}`, 'alpha.test', dir);
    namespaces.push(a);
    const b = namespaceWithDns(`netmon-dns-b-${id}`, 'beta.test', dir);
    namespaces.push(b);
    // nothing listens on TARGET in the namespaces: a refused connect is still a named connection
    const ca = await client(['--server', '127.0.0.1', '--name', 'alpha.test', '--port', '9'], a.netns);
    const cb = await client(['--server', '127.0.0.1', '--name', 'beta.test', '--port', '9'], b.netns);
    const ea = await connectionOf(() => lines.events(), ca);
    const eb = await connectionOf(() => lines.events(), cb);
    assert.equal(ea.open.connection.remote_name, 'alpha.test');
    assert.equal(eb.open.connection.remote_name, 'beta.test');
    assert.equal(ea.close.connection.outcome, 'refused');
    assert.equal(ea.open.connection.netns, netnsInode(a.netns));
    assert.equal(eb.open.connection.netns, netnsInode(b.netns));
    assert.notEqual(ea.open.connection.netns, eb.open.connection.netns);
  });
});

describe('DNS names through the pipeline: an enricher restart after the answer keeps the cache', { skip: rootSkip }, () => {
  let p: Pipeline;
  let dns: DnsServer;
  let server: Server;
  let port: number;

  before(async () => {
    server = createServer((s) => s.resume().on('end', () => s.end()));
    await new Promise<void>((r) => server.listen(0, TARGET, r));
    port = (server.address() as { port: number }).port;
    dns = await startDnsServer({ address: DNS_ADDRESS, port: 53, records: [{ name: 'kept.test', cnames: ['cdn.test'], addresses: [TARGET], ttl: 300 }] });
    p = await startPipeline();
  });
  after(async () => {
    await stopPipelines();
    await dns?.stop();
    server?.close();
  });

  test('named before the restart, and named after it with no new answer (the name comes from the changelog)', async () => {
    const first = await client(['--server', DNS_ADDRESS, '--name', 'kept.test', '--port', String(port)]);
    // its events on the events topic: the enricher has committed past the answer
    let events = await readEventsTopic(p, (evs) => ofPid(evs, first.pid, 'TcpConnectionClose').length > 0);
    assert.equal(ofPid(events, first.pid, 'TcpConnectionEstablish')[0]?.connection.remote_name, 'kept.test');
    const enricher = p.children.get('enricher')!;
    assert.equal(await enricher.stop('SIGTERM'), 0, enricher.stderr().slice(-2000));
    await p.start('enricher');
    // the same address again, without asking DNS: only the restored cache can name it
    const second = await client(['--literal', TARGET, '--port', String(port)]);
    events = await readEventsTopic(p, (evs) => ofPid(evs, second.pid, 'TcpConnectionClose').length > 0);
    const open = ofPid(events, second.pid, 'TcpConnectionEstablish')[0];
    assert.equal(open?.connection.remote_name, 'kept.test', JSON.stringify(open));
  });
});
