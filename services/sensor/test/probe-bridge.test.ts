// Kernel tests of the bridge: privileges, attach modes, start/stop cycles,
// lost counters, argument validation.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import {
  NetmonProbe,
  ProbeArgumentError,
  ProbeModeUnavailableError,
  type TimedPayload,
  decodeBatch,
  runProbeCommand,
  validateRingBufferBytes,
} from '../src/index';
import { bpfUnavailable, resourceCounts, waitFor } from './probe-helpers';

const unavailable = bpfUnavailable();

/** One connection from this process to a server in this process. */
async function selfConnect(host = '127.0.0.1'): Promise<number> {
  const srv = net.createServer((s) => s.destroy());
  await new Promise<void>((r) => srv.listen(0, host, r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((resolve, reject) => {
    const s = net.connect({ host, port }, () => {
      s.destroy();
      resolve();
    });
    s.on('error', reject);
  });
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

const isEstablish =
  (port: number) =>
  ({ payload: p }: TimedPayload) =>
    p.kind === 'socket' && p.value.kind === 'ESTABLISH' && p.value.dport === port && p.value.task.pid === process.pid;

test('options are validated before anything is loaded', () => {
  for (const bad of [0, 1000, 4096 * 3, 2 ** 31, -4096, 1.5, Number.NaN]) {
    assert.throws(() => validateRingBufferBytes(bad), ProbeArgumentError, String(bad));
  }
  assert.equal(validateRingBufferBytes(4096), 4096);
  assert.equal(validateRingBufferBytes(1 << 24), 1 << 24);
  assert.throws(() => NetmonProbe.start({ mode: 'uprobe' as never }), ProbeArgumentError);
  assert.throws(() => NetmonProbe.start({ ringBufferBytes: 12345 }), /power of 2 multiple of the page size/);
});

test('started without privileges it fails with the clear error', { skip: unavailable }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'netmon-unpriv-'));
  const script = path.join(dir, 'unpriv.js');
  const index = path.resolve(__dirname, '..', 'src', 'index.js');
  fs.writeFileSync(
    script,
    `const { NetmonProbe } = require(${JSON.stringify(index)});
require(${JSON.stringify(path.resolve(__dirname, '..', '..', 'native', 'build', 'Release', 'netmon.node'))});
process.setgroups([]); process.setgid(65534); process.setuid(65534);
try { NetmonProbe.start({ mode: 'tracepoint' }); console.log(JSON.stringify({ ok: true })); process.exit(0); }
catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message, cause: e.cause && e.cause.message })); }
`,
  );
  const r = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, string>;
  assert.equal(out.name, 'ProbePermissionError');
  assert.equal(out.code, 'EPRIV');
  // every capability it lacks is named, each with what it is for
  assert.match(out.message, /missing CAP_BPF \(to load the programs and maps\), CAP_PERFMON \(.*\), CAP_NET_ADMIN \(.*\) \(uid 65534, not root\)/);
  assert.ok(out.cause, 'native cause kept');
});

test('forced modes the kernel lacks fail with a clear error; the others work', { skip: unavailable }, async (t) => {
  for (const mode of ['fentry', 'kprobe', 'tracepoint'] as const) {
    let probe: NetmonProbe | undefined;
    try {
      probe = NetmonProbe.start({ mode });
    } catch (err) {
      assert.notEqual(mode, 'tracepoint', `tracepoint mode must work: ${(err as Error).message}`);
      assert.ok(err instanceof ProbeModeUnavailableError, `${mode}: ${(err as Error).message}`);
      assert.equal(err.code, 'EMODE');
      assert.match(err.message, mode === 'fentry' ? /kernel lacks fentry: / : /kernel lacks kprobes: /);
      t.diagnostic(`${mode}: ${err.message}`);
      continue;
    }
    assert.equal(probe.mode, mode);
    assert.match(probe.reason, /^forced by configuration/); // optional programs skipped are named after it
    await probe.stop();
    t.diagnostic(`${mode}: available`);
  }
});

test('auto picks a mode that works, by feature probing, and says why', { skip: unavailable }, async (t) => {
  const events: TimedPayload[] = [];
  const probe = NetmonProbe.start({ mode: 'auto', onPayloads: (e) => events.push(...e) });
  try {
    assert.ok(['fentry', 'kprobe', 'tracepoint'].includes(probe.mode));
    assert.match(probe.reason, /^auto: /);
    t.diagnostic(`auto -> ${probe.mode}: ${probe.reason}`);
    const port = await selfConnect();
    await waitFor('establish in auto mode', () => events.find(isEstablish(port)));
    assert.equal(probe.lost().total, 0);
  } finally {
    await probe.stop();
  }
});

test('onRecords alone borrows each batch: valid during the call, detached after it', { skip: unavailable }, async () => {
  const lent: Buffer[] = [];
  const events: TimedPayload[] = [];
  const probe = NetmonProbe.start({
    mode: 'tracepoint',
    onRecords: (batch, decode) => {
      assert.ok(batch.length > 0, 'a batch has records during the call');
      lent.push(batch);
      events.push(...decodeBatch(batch, decode));
    },
  });
  try {
    const port = await selfConnect();
    await waitFor('establish through onRecords', () => events.find(isEstablish(port)));
    assert.deepEqual(
      lent.map((b) => b.length),
      lent.map(() => 0),
      'every batch kept past its call is detached',
    );
  } finally {
    await probe.stop();
  }
});

test('the bridge survives 20 start/stop cycles without leaking fds or threads', { skip: unavailable }, async () => {
  const cycle = async () => {
    const events: TimedPayload[] = [];
    const probe = NetmonProbe.start({ mode: 'tracepoint', ringBufferBytes: 1 << 20, onPayloads: (e) => events.push(...e) });
    const port = await selfConnect();
    await waitFor('establish', () => events.find(isEstablish(port)));
    const stopped = probe.stop();
    assert.equal(probe.stop(), stopped, 'stop() is idempotent');
    await stopped;
    probe.stop(); // after close: still a no-op
    assert.equal(probe.lost().total, 0, 'lost counters readable after stop');
  };
  await cycle(); // warm-up: libuv and V8 threads, the addon itself
  const before = resourceCounts();
  for (let i = 0; i < 20; i++) await cycle();
  const afterCycles = await waitFor('fds and threads back to the baseline', () => {
    const now = resourceCounts();
    return now.fds <= before.fds && now.threads <= before.threads ? now : undefined;
  }).catch(() => resourceCounts());
  assert.deepEqual(afterCycles, before);
});

test('nothing is delivered after stop; the rest of the ring is drained first', { skip: unavailable }, async () => {
  const events: TimedPayload[] = [];
  const probe = NetmonProbe.start({ mode: 'tracepoint', onPayloads: (e) => events.push(...e) });
  const port = await selfConnect();
  await probe.stop();
  assert.ok(events.find(isEstablish(port)), 'events before stop are delivered');
  const n = events.length;
  await selfConnect();
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(events.length, n);
});

test('netmon probe prints JSON lines and the chosen mode', { skip: unavailable }, async () => {
  // Run the command in a child so its stdout can be read.
  const index = path.resolve(__dirname, '..', 'src', 'index.js');
  const r = spawnSync(
    process.execPath,
    [
      '-e',
      `require(${JSON.stringify(index)}).runProbeCommand(process.argv.slice(1)).then((c) => process.exit(c));
       setTimeout(() => { const s = require('net').createServer((c) => c.destroy()).listen(0, '127.0.0.1', () => {
         const c = require('net').connect(s.address().port, '127.0.0.1', () => { c.destroy(); s.close(); }); }); }, 300);`,
      '--',
      '--mode',
      'tracepoint',
      '--duration',
      '1',
    ],
    { encoding: 'utf8', timeout: 20_000 },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /mode tracepoint \(forced by configuration\)/);
  const lines = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  // The raw contract's payloads, as the sensor publishes them.
  const est = lines.find((l) => l.record === 'socket' && l.kind === 'ESTABLISH' && (l.task as { pid: number }).pid === r.pid);
  assert.ok(est, 'establish line of the child');
  assert.match(String(est.timestamp), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.equal(est.family, 'INET');
  assert.equal(est.saddr, '127.0.0.1');
  assert.equal(typeof est.cookie, 'number');
  assert.equal(await runProbeCommand(['--mode', 'bogus']), 2);
  assert.equal(await runProbeCommand(['--ring-buffer-bytes', '1000']), 2);
});
