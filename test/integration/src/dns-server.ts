// A real DNS server for tests: dnsmasq (Debian package dnsmasq-base) as a
// child, answering only the records it is given (no upstream, no hosts file),
// over UDP and TCP, logging each query to its stderr. No root needed: the port
// is above 1024, there is no pid file and no daemon.
//   const dns = await startDnsServer({ address: '127.0.0.53', records: [
//     { name: 'app.test', cnames: ['edge.test'], addresses: ['127.0.0.7', 'fd00::7'], ttl: 60 },
//   ] });
//   ... dns.address, dns.port ...
//   await dns.stop();
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, isIP } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { type Child, startChild } from './processes';
import { waitUntil } from './wait';

export const DNSMASQ = '/usr/sbin/dnsmasq';
export const DEFAULT_TTL = 60;

export interface DnsRecord {
  /** The name asked for. */
  name: string;
  /** The CNAME chain after `name`, in order: name -> cnames[0] -> ...; the last holds the addresses. */
  cnames?: string[];
  /** IPv4 and IPv6 addresses (A and AAAA records) of the chain's end. */
  addresses: string[];
  /** TTL (s) of every record of the chain; DEFAULT_TTL when left out (dnsmasq's own default, 0, would name nothing). */
  ttl?: number;
}

export interface DnsServerOptions {
  /** A local address to listen on, e.g. 127.0.0.53 (dnsmasq binds only it). */
  address: string;
  /** UDP and TCP port; a free one when left out. */
  port?: number;
  records: DnsRecord[];
}

export interface DnsServer {
  address: string;
  port: number;
  /** dnsmasq's log so far: a line per query and per answer. */
  log(): string;
  /** Stops dnsmasq and removes its configuration. */
  stop(): Promise<void>;
}

/** Starts dnsmasq and resolves once it answers. */
export async function startDnsServer(options: DnsServerOptions): Promise<DnsServer> {
  if (!existsSync(DNSMASQ)) throw new Error(`${DNSMASQ} is missing: apt-get install dnsmasq-base (see .ci/apt-packages.txt)`);
  if (isIP(options.address) === 0) throw new Error(`not an IP address: ${options.address}`);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'netmon-dns-'));
  try {
    // A port we pick may be taken before dnsmasq binds it: then another one.
    for (let attempt = 1; ; attempt++) {
      const port = options.port ?? (await freePort(options.address));
      const conf = path.join(dir, 'dnsmasq.conf');
      const probe = `p${randomBytes(8).toString('hex')}.netmon-probe.invalid`;
      await writeFile(conf, `${config(options.address, port, options.records)}txt-record=${probe},ready\n`);
      const child = startChild(DNSMASQ, ['--no-daemon', `--conf-file=${conf}`]);
      let state: string;
      try {
        state = await waitUntil(`dnsmasq to answer on ${options.address}:${port}`, () => started(child, options.address, port, probe), 10_000);
      } catch (err) {
        state = String(err);
      }
      if (state === 'answering') return server(options.address, port, child, dir);
      await child.stop('SIGKILL');
      if (options.port === undefined && attempt < 3 && /Address already in use/.test(child.stderr())) continue;
      throw new Error(`dnsmasq did not start (${state}):\n${child.stderr()}`);
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

function server(address: string, port: number, child: Child, dir: string): DnsServer {
  return {
    address,
    port,
    log: () => child.stderr(),
    stop: async () => {
      await child.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

const NAME = /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/;

/** The configuration file: the listener, no other source of answers, then the records. */
export function config(address: string, port: number, records: readonly DnsRecord[]): string {
  const lines = [
    `listen-address=${address}`,
    `port=${port}`,
    'bind-interfaces', // only this address: servers on other 127.0.0.x addresses may share the port
    'no-resolv', // no upstream: names it is not given are refused, never asked elsewhere
    'no-hosts',
    'no-poll',
    'pid-file=',
    'log-queries',
    'log-facility=-', // stderr
  ];
  for (const r of records) {
    const chain = [r.name, ...(r.cnames ?? [])];
    for (const n of chain) if (!NAME.test(n)) throw new Error(`not a DNS name: ${JSON.stringify(n)}`);
    for (const a of r.addresses) if (isIP(a) === 0) throw new Error(`not an IP address: ${JSON.stringify(a)}`);
    const ttl = r.ttl ?? DEFAULT_TTL;
    if (!(Number.isInteger(ttl) && ttl >= 0)) throw new Error(`not a TTL: ${ttl}`);
    for (let i = 1; i < chain.length; i++) lines.push(`cname=${chain[i - 1]},${chain[i]},${ttl}`);
    // One address per line: a host-record takes at most one of each family.
    for (const a of r.addresses) lines.push(`host-record=${chain[chain.length - 1]},${a},${ttl}`);
  }
  return `${lines.join('\n')}\n`;
}

/**
 * 'answering' once this dnsmasq answers: its own TXT record, which no other
 * server on the address knows (and which no connection will be named after);
 * 'exited' if it ended.
 */
async function started(child: Child, address: string, port: number, probe: string): Promise<string | undefined> {
  if (child.proc.exitCode !== null || child.proc.signalCode !== null) return 'exited';
  const resolver = new Resolver({ timeout: 200, tries: 1 });
  resolver.setServers([isIP(address) === 6 ? `[${address}]:${port}` : `${address}:${port}`]);
  const txt = await resolver.resolveTxt(probe).catch(() => []);
  return txt.flat().includes('ready') ? 'answering' : undefined;
}

/** A port free for both UDP and TCP on `address`. */
async function freePort(address: string): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    const udp = dgram.createSocket(isIP(address) === 6 ? 'udp6' : 'udp4');
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(0, address, resolve);
    });
    const port = udp.address().port;
    const tcp = createServer();
    const free = await new Promise<boolean>((resolve) => {
      tcp.once('error', () => resolve(false));
      tcp.listen(port, address, () => resolve(true));
    });
    await new Promise<void>((resolve) => udp.close(() => resolve()));
    if (free) await new Promise<void>((resolve) => tcp.close(() => resolve()));
    if (free) return port;
    if (attempt === 10) throw new Error(`no port free for both UDP and TCP on ${address}`);
  }
}
