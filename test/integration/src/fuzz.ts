// Hostile input for the fuzz test (test/fuzz.test.ts): a seeded mix of bad and
// valid records for the raw and events topics, each with what the pipeline
// must make of it (the dead-letter reason, or the event it becomes), and the
// readers the test checks that with: the dead-letter topic read as
// `netmon tail` reads it, the archive read incrementally, the services'
// counters, the groups' committed offsets.
//
// The expectations come from the contracts, not from the code under test: a
// record written with an older schema (schemas/avro/history/) is expected to
// read as itself plus the current schema's defaults (taken from the .avsc),
// and an event's fields from the raw record as the spec says.
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { messageToJsonLines } from '@netmon/cli';
import {
  type ConnectionEventType,
  type NetworkEvent,
  NativeConsumer,
  type ProcessExec,
  type RawRecord,
  type SecureExecFlag,
  SingleObjectCodec,
  type SocketEvent,
  type SocketEventKind,
  type TaskFacts,
  createLogger,
  createS3Client,
  fingerprint,
  formatAddress,
  networkEventCodec,
  rawRecordCodec,
  readSchema,
} from '@netmon/common';
import { ConfigResourceTypes, type Kafka, type Producer } from 'kafkajs';
import { testConfig } from './topics';

// ---- a seeded random source ---------------------------------------------

/** mulberry32: small, fast, and the same sequence for the same seed on every platform. */
export class Rng {
  private state: number;

  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }

  /** [0, 1) */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  bool(p = 0.5): boolean {
    return this.next() < p;
  }

  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)]!;
  }

  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i += 4) {
      const v = Math.floor(this.next() * 4294967296);
      b[i] = v & 0xff;
      if (i + 1 < n) b[i + 1] = (v >>> 8) & 0xff;
      if (i + 2 < n) b[i + 2] = (v >>> 16) & 0xff;
      if (i + 3 < n) b[i + 3] = v >>> 24;
    }
    return b;
  }

  shuffle<T>(xs: T[]): T[] {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [xs[i], xs[j]] = [xs[j]!, xs[i]!];
    }
    return xs;
  }

  /** Text a hostile process or host could carry: quotes, escapes, control characters, non-ASCII, U+2028, emoji. */
  text(maxPieces: number): string {
    let s = '';
    const n = this.int(0, maxPieces);
    for (let i = 0; i < n; i++) s += this.pick(PIECES);
    return s;
  }
}

/** Pieces of hostile text (a literal "${x}", "%s" and "\\u0041" are text a formatter or a JSON writer must leave alone). */
const PIECES = [
  'a',
  'Z',
  '0',
  ' ',
  '-',
  '/',
  '"',
  "'",
  '\\',
  '\n',
  '\r',
  '\t',
  '\u0000',
  '\u0001',
  '\u001b[31m',
  '\u007f',
  'é',
  'ß',
  '日本',
  '\u2028',
  '\ufeff',
  '😀',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: the text "${x}", not a placeholder
  '${x}',
  '%s',
  '<b>',
  '\\u0041',
];

/** The seed: NETMON_FUZZ_SEED to repeat a run, else a new one. */
export function fuzzSeed(): number {
  const fromEnv = process.env.NETMON_FUZZ_SEED;
  if (fromEnv !== undefined && fromEnv !== '') {
    const n = Number(fromEnv);
    if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`NETMON_FUZZ_SEED=${fromEnv}: expected an integer in [0, 2^32)`);
    return n;
  }
  return Math.floor(Math.random() * 0x100000000);
}

// ---- the contracts, from the .avsc files ----------------------------------

interface AvroField {
  name: string;
  type: unknown;
  default?: unknown;
}

/** The named type `name` (record or enum) anywhere in a schema. */
function named(schema: unknown, name: string): { fields?: AvroField[]; symbols?: string[] } | undefined {
  if (Array.isArray(schema)) {
    for (const s of schema) {
      const found = named(s, name);
      if (found) return found;
    }
    return undefined;
  }
  if (schema === null || typeof schema !== 'object') return undefined;
  const s = schema as { name?: string; type?: unknown; fields?: AvroField[]; items?: unknown };
  if (s.name === name && (s.type === 'record' || s.type === 'enum')) return s as { fields?: AvroField[]; symbols?: string[] };
  for (const f of s.fields ?? []) {
    const found = named(f.type, name);
    if (found) return found;
  }
  if (s.items !== undefined) return named(s.items, name);
  if (typeof s.type === 'object') return named(s.type, name);
  return undefined;
}

export type WriterVersion = 'v0' | 'v1' | 'current';

export interface Writer {
  version: WriterVersion;
  schema: object;
  codec: SingleObjectCodec<unknown>;
}

function writer(stem: string, version: WriterVersion): Writer {
  const schema = readSchema(version === 'current' ? `${stem}.avsc` : `history/${stem}.${version}.avsc`);
  return { version, schema, codec: new SingleObjectCodec<unknown>(schema) };
}

const RAW = { v0: writer('raw-record', 'v0'), v1: writer('raw-record', 'v1'), current: writer('raw-record', 'current') };
const EVENT = { v0: writer('network-event', 'v0'), v1: writer('network-event', 'v1'), current: writer('network-event', 'current') };
const VERSIONS: readonly WriterVersion[] = ['v0', 'v1', 'current'];

/** Every fingerprint a reader knows: a random one must not be one of them. */
const KNOWN_FINGERPRINTS = new Set([...Object.values(RAW), ...Object.values(EVENT)].map((w) => fingerprint(w.schema).toString('hex')));

function symbols(w: Writer, enumName: string): string[] {
  return named(w.schema, enumName)?.symbols ?? [];
}

function fields(w: Writer, recordName: string): AvroField[] {
  return named(w.schema, recordName)?.fields ?? [];
}

/** `value` as written with `old`'s record `recordName`: the fields it has. */
function project<T extends object>(value: T, old: Writer, recordName: string): Partial<T> {
  const out: Record<string, unknown> = {};
  for (const f of fields(old, recordName)) out[f.name] = (value as Record<string, unknown>)[f.name];
  return out as Partial<T>;
}

/** What a reader of the current schema makes of `value` written with `old`: its fields, then the current schema's defaults, in the current order. */
function upgrade<T extends object>(value: Partial<T>, old: Writer, current: Writer, recordName: string): T {
  const had = new Set(fields(old, recordName).map((f) => f.name));
  const out: Record<string, unknown> = {};
  for (const f of fields(current, recordName)) {
    if (had.has(f.name)) out[f.name] = (value as Record<string, unknown>)[f.name];
    else if ('default' in f) out[f.name] = structuredClone(f.default);
    else throw new Error(`${recordName}.${f.name} is new in the current schema and has no default: ${old.version} records cannot be read`);
  }
  return out as T;
}

// ---- the mix ----------------------------------------------------------------

export type TopicAlias = 'raw' | 'events';

export interface Item {
  /** Place in the mix. */
  n: number;
  topic: TopicAlias;
  kind: string;
  partition: number;
  value: Buffer | null;
  /** Bad: the dead-letter reason it must get. */
  reason?: string;
  /** Raw, valid: the events it must become, by `${run_id}/${seq}`. */
  events?: Map<string, NetworkEvent>;
  /** Raw, dead-lettered whole: the runs of its records, none of which may become an event. */
  deadRuns?: string[];
  /** Events, valid: the archived event it must become. Bad but decodable: its cookie, which must not be archived. */
  archived?: NetworkEvent;
  badCookie?: number;
  /** Set once written. */
  offset?: number;
}

export interface MixOptions {
  rawPartitions: number;
  eventsPartitions: number;
  /** host.id of every record of the mix (raw host_id, events host.id): its events are told apart from the sensor's. */
  rawHost: string;
  eventsHost: string;
  /** Records of the mix besides one of each kind. */
  extra: number;
  /** The largest random record (bytes): under every client's message.max.bytes, with room for the dead-letter headers. */
  maxLarge: number;
}

const SECURE_ORDER: readonly SecureExecFlag[] = ['SETUID', 'SETGID', 'FILE_CAPS', 'FILELESS_EXEC'];
const EVENT_TYPE: Record<SocketEventKind, ConnectionEventType> = {
  ESTABLISH: 'TcpConnectionEstablish',
  ACCEPT: 'TcpConnectionAccept',
  CLOSE: 'TcpConnectionClose',
  LISTEN: 'TcpListen',
};
/** Linux errno → outcome of a Close (spec, "Connection facts"). */
const OUTCOME: Record<number, string> = { 111: 'refused', 110: 'timeout', 113: 'unreachable', 101: 'unreachable', 104: 'reset', 32: 'reset' };
const MAX_LONG = 2 ** 52;

/** A process of the mix: its exec record and the task its sockets carry. */
interface Proc {
  exec: ProcessExec;
  pid: number;
  startUs: number;
}

export class MixBuilder {
  private run = 0;
  private cookie = 1;
  private readonly nowUs = Date.now() * 1000;

  constructor(
    private readonly rng: Rng,
    private readonly o: MixOptions,
  ) {}

  /** One of each kind, then `extra` more picked at random, shuffled. */
  build(): Item[] {
    const { rng } = this;
    const rawKinds = Object.keys(this.rawKinds());
    const eventKinds = Object.keys(this.eventKinds());
    const plan: Array<[TopicAlias, string]> = [
      ...rawKinds.map((k) => ['raw', k] as [TopicAlias, string]),
      ...eventKinds.map((k) => ['events', k] as [TopicAlias, string]),
    ];
    for (let i = 0; i < this.o.extra; i++) plan.push(rng.bool() ? ['raw', rng.pick(rawKinds)] : ['events', rng.pick(eventKinds)]);
    rng.shuffle(plan);
    return plan.map(([topic, kind], n) => {
      const partition = rng.int(0, (topic === 'raw' ? this.o.rawPartitions : this.o.eventsPartitions) - 1);
      const made = topic === 'raw' ? this.rawKinds()[kind]!() : this.eventKinds()[kind]!();
      return { n, topic, kind, partition, ...made };
    });
  }

  // ---- raw ----

  private rawKinds(): Record<string, () => Omit<Item, 'n' | 'topic' | 'kind' | 'partition'>> {
    const { rng } = this;
    return {
      valid: () => this.validRaw(() => 'current'),
      // Older writers, whole messages and one writer per record.
      'old-v0': () => this.validRaw(() => 'v0'),
      'old-v1': () => this.validRaw(() => 'v1'),
      'mixed-writers': () => this.validRaw(() => rng.pick(VERSIONS)),
      random: () => randomBytes(rng, 1, 2000),
      large: () => randomBytes(rng, 100_000, this.o.maxLarge),
      empty: () => ({ value: Buffer.alloc(0), reason: 'empty' }),
      null: () => ({ value: null, reason: 'empty' }),
      // A packed message cut inside its last record: none of its records may pass.
      truncated: () => {
        const { records, runs } = this.rawMessage('current');
        const last = records[records.length - 1]!;
        const cut = rng.int(1, last.length - 1);
        return { value: Buffer.concat([...records.slice(0, -1), last.subarray(0, cut)]), reason: cut < 10 ? 'too-short' : 'corrupt-body', deadRuns: runs };
      },
      // One record of a packed message names a writer schema no reader knows.
      'unknown-fingerprint': () => {
        const { records, runs } = this.rawMessage(rng.pick(VERSIONS));
        const i = rng.int(0, records.length - 1);
        records[i] = withRandomFingerprint(rng, records[i]!);
        return { value: Buffer.concat(records), reason: 'unknown-fingerprint', deadRuns: runs };
      },
      // A valid message followed by garbage.
      'bad-tail': () => {
        const { records, runs } = this.rawMessage('current');
        const tail = rng.bytes(rng.int(1, 40));
        if (tail[0] === 0xc3) tail[0] = 0;
        return { value: Buffer.concat([...records, tail]), reason: tail.length < 10 ? 'too-short' : 'bad-magic', deadRuns: runs };
      },
      // The current header, a random body.
      corrupt: () => corrupt(rng, RAW.current.codec.header, (b) => rawRecordCodec().decodeAll(b)),
      // Decodes, breaks the contract: empty host id, address of the other family's length, port out of range.
      contract: () => {
        const p = this.proc();
        const s = this.socket(p, 'current');
        const r = this.rawRecord(this.o.rawHost, `fuzz-run-${this.rng.seed}-${this.run++}`, 0, { 'netmon.raw.SocketEvent': s });
        const how = rng.int(0, 2);
        if (how === 0) r.host_id = '';
        else if (how === 1) s.saddr = rng.bytes(s.family === 'INET' ? 16 : 4);
        else s.dport = rng.pick([65536, 70000, -1, 2147483647]);
        return { value: RAW.current.codec.encode(r), reason: 'contract', deadRuns: [r.run_id] };
      },
    };
  }

  private validRaw(version: () => WriterVersion): Omit<Item, 'n' | 'topic' | 'kind' | 'partition'> {
    const { records, events } = this.rawMessage(version);
    return { value: Buffer.concat(records), events };
  }

  /** A packed raw message of a new run: an exec record, then 1 to 4 socket records of that process; each record written by `version`. */
  rawMessage(version: WriterVersion | (() => WriterVersion)): { records: Buffer[]; events: Map<string, NetworkEvent>; runs: string[] } {
    const v = typeof version === 'function' ? version : () => version;
    const { rng, o } = this;
    const runId = `fuzz-run-${rng.seed}-${this.run++}`;
    const hostname = rng.text(6);
    const p = this.proc();
    const records: Buffer[] = [];
    const events = new Map<string, NetworkEvent>();
    let seq = 0;
    const execWriter = RAW[v()];
    records.push(execWriter.codec.encode(this.rawRecord(o.rawHost, runId, seq++, { 'netmon.raw.ProcessExec': p.exec }, hostname)));
    const sockets = rng.int(1, 4);
    for (let i = 0; i < sockets; i++) {
      const w = RAW[v()];
      const s = this.socket(p, w.version);
      const written = project(s, w, 'SocketEvent');
      const r = this.rawRecord(o.rawHost, runId, seq++, { 'netmon.raw.SocketEvent': written }, hostname);
      records.push(w.codec.encode(r));
      // What the enricher reads: the record as written, with the current schema's defaults.
      const read = upgrade<SocketEvent>(written, w, RAW.current, 'SocketEvent');
      events.set(`${runId}/${r.seq}`, expectedEvent(r, read, p.exec));
    }
    return { records, events, runs: [runId] };
  }

  private rawRecord(hostId: string, runId: string, seq: number, payload: object, hostname = this.rng.text(6)): RawRecord {
    return { host_id: hostId, hostname, run_id: runId, seq, time_us: this.nowUs + this.rng.int(0, 999_999), payload } as RawRecord;
  }

  private proc(): Proc {
    const { rng } = this;
    const pid = rng.int(2, 4_194_304);
    const startUs = rng.int(1, 2 ** 40);
    const path = `/${rng.text(4)}/${rng.text(3)}`;
    const args = Array.from({ length: rng.int(0, 5) }, () => rng.text(8));
    const exec: ProcessExec = {
      task: this.task(pid, startUs, startUs + rng.int(0, 1_000_000)),
      snapshot: rng.bool(0.2),
      binary_path: path,
      args,
      args_truncated: rng.bool(0.2),
      secureexec: SECURE_ORDER.filter(() => rng.bool(0.2)),
    };
    return { exec, pid, startUs };
  }

  private task(pid: number, startUs: number, ktimeUs: number): TaskFacts {
    const { rng } = this;
    return {
      pid,
      tid: rng.bool(0.7) ? pid : rng.int(2, 4_194_304),
      ppid: rng.int(0, 4_194_304),
      uid: rng.pick([0, 1000, 65534, 4294967295]),
      euid: rng.pick([0, 1000, 65534]),
      auid: rng.pick([4294967295, 1000]),
      cap_inheritable: rng.int(0, MAX_LONG),
      cap_permitted: rng.int(0, MAX_LONG),
      cap_effective: rng.int(0, MAX_LONG),
      comm: rng.text(4),
      cgroup_id: rng.int(1, MAX_LONG),
      cgroup_path: rng.pick(['/', '/system.slice/fuzz.service', `/system.slice/docker-${rng.bytes(32).toString('hex')}.scope`]),
      start_time_us: startUs,
      ktime_us: ktimeUs,
    };
  }

  /** A socket record of the process, of a kind the writer version knows. */
  private socket(p: Proc, version: WriterVersion): SocketEvent {
    const { rng } = this;
    const family = rng.pick(['INET', 'INET6'] as const);
    const len = family === 'INET' ? 4 : 16;
    const ktime = p.exec.task.ktime_us + rng.int(1, 10_000_000);
    return {
      kind: rng.pick(symbols(RAW[version], 'SocketEventKind')) as SocketEventKind,
      task: { ...this.task(p.pid, p.startUs, ktime) },
      family,
      saddr: rng.bytes(len),
      daddr: rng.bytes(len),
      sport: rng.int(0, 65535),
      dport: rng.int(0, 65535),
      cookie: rng.int(1, MAX_LONG),
      netns: rng.bool(0.8) ? rng.int(4026531840, 4026599999) : 0,
      opened_ktime_us: rng.bool(0.7) ? ktime - rng.int(0, 5_000_000) : 0,
      handshake: rng.bool(),
      error: rng.pick([0, 0, 111, 110, 113, 104, 32]),
      state: rng.int(1, 12),
      bytes_acked: rng.int(0, 2 ** 40),
      bytes_received: rng.int(0, 2 ** 40),
    };
  }

  // ---- events ----

  private eventKinds(): Record<string, () => Omit<Item, 'n' | 'topic' | 'kind' | 'partition'>> {
    const { rng } = this;
    const valid = (w: Writer) => {
      const ev = this.event(w);
      const written = project(ev, w, 'NetworkEvent');
      return { value: w.codec.encode(written), archived: upgrade<NetworkEvent>(written, w, EVENT.current, 'NetworkEvent') };
    };
    return {
      valid: () => valid(EVENT.current),
      'old-v0': () => valid(EVENT.v0),
      'old-v1': () => valid(EVENT.v1),
      random: () => randomBytes(rng, 1, 2000),
      large: () => randomBytes(rng, 100_000, this.o.maxLarge),
      empty: () => ({ value: Buffer.alloc(0), reason: 'too-short' }),
      null: () => ({ value: null, reason: 'too-short' }),
      truncated: () => {
        const w = rng.pick([EVENT.v0, EVENT.v1, EVENT.current]);
        const ev = this.event(w);
        const bytes = w.codec.encode(project(ev, w, 'NetworkEvent'));
        const cut = rng.int(1, bytes.length - 1);
        return { value: bytes.subarray(0, cut), reason: cut < 10 ? 'too-short' : 'corrupt-body', badCookie: ev.network_event.cookie };
      },
      'unknown-fingerprint': () => {
        const ev = this.event(EVENT.current);
        return { value: withRandomFingerprint(rng, EVENT.current.codec.encode(ev)), reason: 'unknown-fingerprint', badCookie: ev.network_event.cookie };
      },
      'trailing-bytes': () => {
        const ev = this.event(EVENT.current);
        return {
          value: Buffer.concat([EVENT.current.codec.encode(ev), rng.bytes(rng.int(1, 20))]),
          reason: 'trailing-bytes',
          badCookie: ev.network_event.cookie,
        };
      },
      corrupt: () => corrupt(rng, EVENT.current.codec.header, (b) => networkEventCodec().decode(b)),
      // Decodes, but its time is no time: no hour partition to put it in.
      'bad-timestamp': () => this.badTime(rng.pick(['', 'not a time', 'yesterday', '\u0000'])),
      // RFC 3339's shape, an impossible date or hour: Athena projects dt as a date and hour as 0-23, so no query would find it archived.
      'impossible-timestamp': () =>
        this.badTime(rng.pick(['2026-13-45T99:99:99.000Z', '2026-11-31T25:61:00Z', '2026-02-30T24:00:00.000Z', '2026-00-00T00:00:00.000Z'])),
    };
  }

  private badTime(timestamp: string): Omit<Item, 'n' | 'topic' | 'kind' | 'partition'> {
    const ev = this.event(EVENT.current);
    ev.timestamp = timestamp;
    return { value: EVENT.current.codec.encode(ev), reason: 'bad-timestamp', badCookie: ev.network_event.cookie };
  }

  /** A NetworkEvent with hostile text, its connection type one `w` knows; its cookie is unique in the mix. */
  event(w: Writer = EVENT.current): NetworkEvent {
    const { rng } = this;
    return {
      type: 'NetworkEvent',
      process: {
        pid: rng.int(1, 4_194_304),
        tid: rng.int(1, 4_194_304),
        ppid: rng.int(0, 4_194_304),
        uid: rng.pick([0, 1000, 4294967295]),
        euid: rng.pick([0, 1000]),
        auid: rng.pick([4294967295, 1000]),
        cap_inheritable: rng.int(0, MAX_LONG),
        cap_permitted: rng.int(0, MAX_LONG),
        cap_effective: rng.int(0, MAX_LONG),
        secureexec: rng.pick(['', 'SETUID', 'SETUID | SETGID']),
        filename: rng.text(4),
        binary_path: rng.text(8),
        args: rng.text(rng.bool(0.1) ? 4000 : 12),
        container_id: rng.pick(['', rng.bytes(32).toString('hex')]),
      },
      network_event: {
        type: rng.pick(symbols(w, 'ConnectionEventType')) as ConnectionEventType,
        saddr: rng.pick(['10.0.0.1', '::1', rng.text(3)]),
        daddr: rng.pick(['192.0.2.7', '2001:db8::1', rng.text(3)]),
        sport: rng.int(0, 65535),
        dport: rng.int(0, 65535),
        cookie: this.cookie++,
      },
      timestamp: new Date(Math.floor(this.nowUs / 1000) - rng.int(0, 999)).toISOString(),
      host: { hostname: rng.text(6), id: this.o.eventsHost },
      source: { run_id: `fuzz-events-${rng.seed}`, seq: rng.int(0, MAX_LONG) },
      connection: {
        outcome: rng.pick(['', 'established', 'refused', 'reset']) as NetworkEvent['connection']['outcome'],
        duration_ms: rng.int(0, 1e9),
        bytes_sent: rng.int(0, 2 ** 40),
        bytes_received: rng.int(0, 2 ** 40),
        remote_name: rng.text(5),
        netns: rng.int(0, 2 ** 32),
      },
      process_key: rng.text(6),
    };
  }
}

/** `lo` to `hi` random bytes; never the single-object magic. */
function randomBytes(rng: Rng, lo: number, hi: number): { value: Buffer; reason: string } {
  const n = rng.int(lo, hi);
  const value = rng.bytes(n);
  if (value[0] === 0xc3) value[0] = 0;
  return { value, reason: n < 10 ? 'too-short' : 'bad-magic' };
}

/** A header, then random bytes; the reason is what the contract's reader says (a body that happens to decode is drawn again). */
function corrupt(rng: Rng, header: Buffer, decode: (b: Buffer) => unknown): { value: Buffer; reason: string } {
  for (;;) {
    const value = Buffer.concat([header, rng.bytes(rng.int(1, 300))]);
    try {
      decode(value);
    } catch (err) {
      return { value, reason: (err as { reason?: string }).reason ?? 'error' };
    }
  }
}

function withRandomFingerprint(rng: Rng, record: Buffer): Buffer {
  const out = Buffer.from(record);
  do rng.bytes(8).copy(out, 2);
  while (KNOWN_FINGERPRINTS.has(out.subarray(2, 10).toString('hex')));
  return out;
}

/** The NetworkEvent of a socket record whose process's exec record came first (shared/spec/netmon.md). */
function expectedEvent(r: RawRecord, s: SocketEvent, exec: ProcessExec): NetworkEvent {
  const t = s.task;
  const slash = exec.binary_path.lastIndexOf('/');
  const container = /docker-([0-9a-f]{64})\.scope$/.exec(t.cgroup_path)?.[1] ?? '';
  const close = s.kind === 'CLOSE';
  let outcome = '';
  if (close && s.netns !== 0) {
    const byError = OUTCOME[s.error];
    if (s.handshake) outcome = byError === 'reset' ? 'reset' : 'established';
    else outcome = byError && byError !== 'reset' ? byError : 'aborted';
  }
  return {
    type: 'NetworkEvent',
    process: {
      pid: t.pid,
      tid: t.tid,
      ppid: t.ppid,
      uid: t.uid,
      euid: t.euid,
      auid: t.auid,
      cap_inheritable: t.cap_inheritable,
      cap_permitted: t.cap_permitted,
      cap_effective: t.cap_effective,
      secureexec: exec.secureexec.join(' | '),
      filename: exec.binary_path.slice(slash + 1),
      binary_path: exec.binary_path,
      args: exec.args.join(' ') + (exec.args_truncated ? '\u2026' : ''),
      container_id: container,
    },
    network_event: {
      type: EVENT_TYPE[s.kind],
      saddr: formatAddress(s.saddr),
      daddr: formatAddress(s.daddr),
      sport: s.sport,
      dport: s.dport,
      cookie: s.cookie,
    },
    timestamp: new Date(Math.floor(r.time_us / 1000)).toISOString(),
    host: { hostname: r.hostname, id: r.host_id },
    source: { run_id: r.run_id, seq: r.seq },
    connection: {
      outcome: outcome as NetworkEvent['connection']['outcome'],
      duration_ms: close && s.opened_ktime_us > 0 ? Math.max(0, Math.round((t.ktime_us - s.opened_ktime_us) / 1000)) : 0,
      bytes_sent: close ? s.bytes_acked : 0,
      bytes_received: close ? s.bytes_received : 0,
      remote_name: '',
      netns: s.netns,
    },
    process_key: `${r.host_id}:${t.pid}:${t.start_time_us}`,
  };
}

/**
 * A 47-byte raw record that claims an args array of `count` items and holds
 * none: the current header, a ProcessExec whose args count is `count`, then
 * nothing. A reader must refuse it as corrupt without building the array.
 */
export function hugeArrayRecord(count: number): Buffer {
  const zigzag = (v: number): number[] => {
    let x = v >= 0 ? 2 * v : -2 * v - 1;
    const out: number[] = [];
    do {
      let b = x % 128;
      x = Math.floor(x / 128);
      if (x > 0) b |= 0x80;
      out.push(b);
    } while (x > 0);
    return out;
  };
  const str = (s: string) => [...zigzag(Buffer.byteLength(s)), ...Buffer.from(s)];
  // host_id, hostname, run_id, seq, time_us, payload branch 1 (ProcessExec)
  const body = [...str('fuzz-huge'), ...str('h'), ...str('r'), ...zigzag(0), ...zigzag(0), ...zigzag(1)];
  // TaskFacts: pid tid ppid uid euid auid cap×3 comm cgroup_id cgroup_path start ktime
  body.push(...zigzag(1), ...zigzag(1), ...zigzag(1), 0, 0, 0, 0, 0, 0, ...str('x'), 0, ...str('/'), 0, 0);
  // snapshot, binary_path, then the args count and no item
  body.push(0, ...str('/bin/x'), ...zigzag(count));
  return Buffer.concat([RAW.current.codec.header, Buffer.from(body)]);
}

/** Encodes an event with the current writer. */
export const encodeEvent = (ev: NetworkEvent): Buffer => EVENT.current.codec.encode(ev);

export const sha = (b: Buffer | null): string =>
  createHash('sha256')
    .update(b ?? Buffer.alloc(0))
    .digest('hex')
    .slice(0, 16);

// ---- readers ----------------------------------------------------------------

/** A dead letter as `netmon tail --topic dlq` prints it. */
export interface DeadLetter {
  reason: string;
  detail: string;
  source: { topic: string; partition: number; offset: string };
  value_base64: string;
  /** Present when the value was cut to fit the DLQ: the original's length. */
  original_bytes?: number;
  /** The test's own barrier record (see DlqReader.barrier). */
  barrier?: string;
}

const BARRIER_HEADER = 'netmon-fuzz-barrier';

/**
 * Reads the dead-letter topic from its start as `netmon tail` does (librdkafka,
 * read committed, messageToJsonLines), in the background, until closed.
 */
export class DlqReader {
  readonly letters: DeadLetter[] = [];
  private running = true;
  private loop: Promise<void> | undefined;
  private failure: unknown;

  private constructor(private readonly consumer: NativeConsumer) {}

  static async open(topic: string, groupId: string): Promise<DlqReader> {
    const consumer = await NativeConsumer.connect(testConfig().kafka, createLogger('fuzz-dlq', 'silent'), {
      clientSuffix: 'fuzz-dlq',
      groupId,
      readCommitted: true,
      fromBeginning: true,
    });
    consumer.subscribe([topic]);
    const reader = new DlqReader(consumer);
    reader.loop = reader.run();
    return reader;
  }

  private async run(): Promise<void> {
    while (this.running) {
      try {
        for (const m of await this.consumer.consume(500)) {
          const headers = (m.headers ?? []) as Array<Record<string, Buffer | string>>;
          const barrier = headers.find((h) => BARRIER_HEADER in h)?.[BARRIER_HEADER];
          const [line] = messageToJsonLines('dlq', m.value ?? Buffer.alloc(0), headers);
          const letter = JSON.parse(line!) as DeadLetter;
          if (barrier !== undefined) letter.barrier = String(barrier);
          this.letters.push(letter);
        }
      } catch (err) {
        this.failure = err;
        return;
      }
    }
  }

  /**
   * Writes a barrier record to the dead-letter topic and resolves once it is
   * read back. Called after the services committed past the records, so that
   * every dead letter of them is in the topic: a read-committed reader that
   * reaches the barrier has read all of them (offsets before it are decided).
   */
  async barrier(producer: Producer, topic: string, token: string, timeoutMs: number): Promise<void> {
    await producer.send({ topic, messages: [{ value: Buffer.from(token), headers: { [BARRIER_HEADER]: token } }] });
    const deadline = Date.now() + timeoutMs;
    while (!this.letters.some((l) => l.barrier === token)) {
      if (this.failure) throw this.failure;
      if (Date.now() > deadline) throw new Error(`the dead-letter barrier ${token} was not read back within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async close(): Promise<void> {
    this.running = false;
    await this.loop;
    await this.consumer.disconnect();
  }
}

/** The archive's events, read object by object as they appear (objects are immutable once named). */
export class ArchiveReader {
  private readonly s3 = createS3Client(testConfig().s3);
  private readonly bucket = testConfig().s3.bucket;
  private readonly seen = new Set<string>();
  readonly events: Array<{ key: string; event: NetworkEvent }> = [];

  constructor(private readonly prefix: string) {}

  async refresh(): Promise<void> {
    let token: string | undefined;
    do {
      const listed = await this.s3.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: `${this.prefix}/dt=`, ContinuationToken: token }));
      for (const o of listed.Contents ?? []) {
        if (!o.Key?.endsWith('.json.gz') || this.seen.has(o.Key)) continue;
        const got = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: o.Key }));
        const text = gunzipSync(Buffer.from(await got.Body!.transformToByteArray())).toString();
        for (const line of text.split('\n')) if (line) this.events.push({ key: o.Key, event: JSON.parse(line) as NetworkEvent });
        this.seen.add(o.Key);
      }
      token = listed.NextContinuationToken;
    } while (token);
  }
}

/** A counter's samples by its one label, from a service's /metrics. */
export async function counterByLabel(port: number, metric: string, label: string): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const out = new Map<string, number>();
  const re = new RegExp(`^${metric}\\{(?:[^}]*,)?${label}="([^"]*)"[^}]*\\} (\\S+)$`, 'gm');
  for (const m of text.matchAll(re)) out.set(m[1]!, Number(m[2]));
  return out;
}

/** The group's committed offset per partition of the topic (-1: none). */
export async function committedOffsets(kafka: Kafka, groupId: string, topic: string): Promise<Map<number, number>> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const [t] = await admin.fetchOffsets({ groupId, topics: [topic] });
    return new Map((t?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]));
  } finally {
    await admin.disconnect();
  }
}

/** The topic's next offset per partition. */
export async function highWatermarks(kafka: Kafka, topic: string): Promise<Map<number, number>> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    return new Map((await admin.fetchTopicOffsets(topic)).map((o) => [o.partition, Number(o.high)]));
  } finally {
    await admin.disconnect();
  }
}

/** max.message.bytes of each topic and the broker's message.max.bytes. */
export async function messageLimits(kafka: Kafka, topics: string[]): Promise<{ broker: number; topics: Map<string, number> }> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const { brokers } = await admin.describeCluster();
    const res = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [
        { type: ConfigResourceTypes.BROKER, name: String(brokers[0]!.nodeId), configNames: ['message.max.bytes'] },
        ...topics.map((name) => ({ type: ConfigResourceTypes.TOPIC, name, configNames: ['max.message.bytes'] })),
      ],
    });
    const value = (name: string, key: string) =>
      Number(res.resources.find((r) => r.resourceName === name)?.configEntries.find((e) => e.configName === key)?.configValue);
    return { broker: value(String(brokers[0]!.nodeId), 'message.max.bytes'), topics: new Map(topics.map((t) => [t, value(t, 'max.message.bytes')])) };
  } finally {
    await admin.disconnect();
  }
}
