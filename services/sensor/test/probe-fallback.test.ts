// Kernel tests of the attach-mode fallback. Each failure is forced through
// the loader's test hooks, which make libbpf's own load or attach of that
// mode's programs really fail (a nonexistent BTF attach target, a nonexistent
// kprobe or raw tracepoint), not through a shortcut in the mode choice:
//   NETMON_TEST_BREAK_MODE=mode[:load|:attach],...
//   NETMON_TEST_MISSING_HOOK=section,...   NETMON_TEST_BREAK_LOAD=section,...
// Run as root; skipped only where the kernel refuses BPF, or refuses a mode
// before its break can apply (said with the kernel's reason).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { type ModeAttempt, NetmonProbe, ProbeError, ProbeHookError, ProbeModeUnavailableError, ProbeNoModeError, type TimedPayload } from '../src/index';
import { loadAddon } from '../src/probe/native';
import { bpfUnavailable, waitFor } from './probe-helpers';

const unavailable = bpfUnavailable();
const MODES = ['fentry', 'kprobe', 'tracepoint'] as const;
type Mode = (typeof MODES)[number];
const HOOK_VARS = ['NETMON_TEST_BREAK_MODE', 'NETMON_TEST_MISSING_HOOK', 'NETMON_TEST_BREAK_LOAD'];

/** Runs fn with the loader's test hooks set (the loader reads them on each start). */
function withHooks<T>(env: Record<string, string>, fn: () => T): T {
  const saved = HOOK_VARS.map((k) => [k, process.env[k]] as const);
  for (const k of HOOK_VARS) delete process.env[k];
  Object.assign(process.env, env);
  try {
    return fn();
  } finally {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

function startFailing(env: Record<string, string>, mode: 'auto' | Mode): ProbeError {
  try {
    const probe = withHooks(env, () => NetmonProbe.start({ mode }));
    void probe.stop();
  } catch (err) {
    assert.ok(err instanceof ProbeError, String(err));
    return err;
  }
  assert.fail(`${mode} started with ${JSON.stringify(env)}`);
}

/** The reason line names each failed attempt exactly as `attempts` reports it. */
function assertChain(line: string, attempts: ModeAttempt[]): void {
  assert.doesNotMatch(line, /\n/, 'one line');
  for (const a of attempts) {
    if (a.ok) assert.ok(line.includes(`${a.mode} loaded and attached`), `${a.mode} in: ${line}`);
    else assert.ok(line.includes(`${a.mode} failed (${a.step}: ${a.message})`), `${a.mode} in: ${line}`);
  }
}

/** A connection from this process, and its Establish seen by the probe. */
async function establishSeen(events: TimedPayload[]): Promise<void> {
  const srv = net.createServer((s) => s.destroy());
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve();
    });
    s.on('error', reject);
  });
  await new Promise<void>((r) => srv.close(() => r()));
  await waitFor(`establish to port ${port}`, () =>
    events.find(({ payload: p }) => p.kind === 'socket' && p.value.kind === 'ESTABLISH' && p.value.dport === port && p.value.task.pid === process.pid),
  );
}

const sections = new Set(
  (loadAddon() as unknown as { modeRequirements(): { programs: { section: string }[] } }).modeRequirements().programs.map((p) => p.section),
);

test('auto lists every mode it tried and why each failed, in one line', { skip: unavailable }, async (t) => {
  const probe = withHooks({}, () => NetmonProbe.start({ mode: 'auto' }));
  try {
    assert.match(probe.reason, /^auto: /);
    assert.deepEqual(
      probe.attempts.map((a) => a.mode),
      MODES.slice(0, MODES.indexOf(probe.mode) + 1),
      'modes tried in order, up to the one in use',
    );
    assert.ok(probe.attempts.at(-1)!.ok);
    for (const a of probe.attempts.slice(0, -1)) {
      assert.equal(a.ok, false);
      assert.ok(a.code && a.step && a.message, JSON.stringify(a));
    }
    assertChain(probe.reason, probe.attempts);
    t.diagnostic(`auto -> ${probe.mode}: ${probe.reason}`);
  } finally {
    await probe.stop();
  }
});

for (const broken of ['fentry', 'kprobe'] as const) {
  // Break this mode and every one before it, so that auto reaches it.
  const env = { NETMON_TEST_BREAK_MODE: MODES.slice(0, MODES.indexOf(broken) + 1).join(',') };
  test(`NETMON_TEST_BREAK_MODE=${env.NETMON_TEST_BREAK_MODE}: auto falls back past ${broken} and says why`, { skip: unavailable }, async (t) => {
    const events: TimedPayload[] = [];
    const probe = withHooks(env, () => NetmonProbe.start({ mode: 'auto', onPayloads: (e) => events.push(...e) }));
    try {
      const i = probe.attempts.findIndex((a) => a.mode === broken);
      assert.ok(i >= 0, `${broken} was tried: ${probe.reason}`);
      const a = probe.attempts[i];
      assert.equal(a.ok, false);
      assert.notEqual(probe.mode, broken);
      assert.equal(probe.attempts[i + 1]?.mode, MODES[MODES.indexOf(broken) + 1], 'the next mode is tried next');
      assertChain(probe.reason, probe.attempts);
      await establishSeen(events); // the mode fallen back to works
      t.diagnostic(probe.reason);
      if (a.step === 'probe') {
        // this kernel lacks the mode: it fails its feature probes before the break is reached
        t.skip(`the kernel refuses ${broken} before the break applies: ${a.message}`);
        return;
      }
      assert.match(a.message, new RegExp(`netmon_test_broken_${broken}`), 'the reason names the broken load/attach');
    } finally {
      await probe.stop();
    }
  });
}

for (const step of ['attach', 'load'] as const) {
  test(`every mode broken (tracepoint at ${step}): auto fails with each mode and why`, { skip: unavailable }, (t) => {
    const err = startFailing({ NETMON_TEST_BREAK_MODE: `fentry,kprobe,tracepoint:${step}` }, 'auto');
    assert.ok(err instanceof ProbeNoModeError, `${err.name}: ${err.message}`);
    assert.ok(err instanceof ProbeModeUnavailableError);
    assert.equal(err.code, 'ENOMODE');
    assert.deepEqual(
      err.attempts.map((a) => [a.mode, a.ok]),
      MODES.map((m) => [m, false]),
    );
    assert.match(err.message, /^probe: no attach mode works here: fentry failed \(.+\); kprobe failed \(.+\); tracepoint failed \(.+\)$/);
    assertChain(err.message, err.attempts);
    const tp = err.attempts[2];
    assert.equal(tp.code, 'ENOHOOK');
    assert.equal(tp.step, step);
    assert.match(
      tp.message,
      step === 'attach'
        ? /^attaching raw_tp\/\S+ to netmon_test_broken_tracepoint: the hook does not exist: /
        : /^loading \S+: attach target netmon_test_broken_tracepoint not found in the kernel's BTF: /,
    );
    assert.equal(err.step, step, 'the error carries the last failure');
    t.diagnostic(err.message);
  });
}

test('a forced mode does not fall back: its own failure, clearly', { skip: unavailable }, () => {
  const err = startFailing({ NETMON_TEST_BREAK_MODE: 'tracepoint' }, 'tracepoint');
  assert.ok(err instanceof ProbeHookError, `${err.name}: ${err.message}`);
  assert.equal(err.code, 'ENOHOOK');
  assert.equal(err.step, 'attach');
  assert.match(err.message, /^probe: attaching raw_tp\/\S+ to netmon_test_broken_tracepoint: the hook does not exist: No such file or directory$/);
  assert.deepEqual(
    err.attempts.map((a) => a.mode),
    ['tracepoint'],
  );
  // a forced mode whose break is elsewhere is unaffected
  const probe = withHooks({ NETMON_TEST_BREAK_MODE: 'fentry,kprobe' }, () => NetmonProbe.start({ mode: 'tracepoint' }));
  assert.equal(probe.reason, 'forced by configuration');
  return probe.stop();
});

test('a missing hook of an optional program (io_uring_complete) is skipped and said so', { skip: unavailable }, async (t) => {
  if (!sections.has('raw_tp/io_uring_complete')) {
    t.skip('the object has no raw_tp/io_uring_complete program');
    return;
  }
  const env = { NETMON_TEST_MISSING_HOOK: 'raw_tp/io_uring_complete' };
  const events: TimedPayload[] = [];
  const probe = withHooks(env, () => NetmonProbe.start({ mode: 'tracepoint', onPayloads: (e) => events.push(...e) }));
  try {
    assert.equal(probe.mode, 'tracepoint');
    assert.match(
      probe.reason,
      /^forced by configuration \(raw_tp\/io_uring_complete skipped: no tracepoint netmon_test_missing_io_uring_complete in this kernel .*, as in kernels built without CONFIG_IO_URING; io_uring accepts are not reported\)$/,
    );
    await establishSeen(events);
  } finally {
    await probe.stop();
  }
  const auto = withHooks(env, () => NetmonProbe.start({ mode: 'auto' }));
  try {
    assert.match(auto.reason, /tracepoint loaded and attached \(raw_tp\/io_uring_complete skipped: no tracepoint /);
    assertChain(auto.reason, auto.attempts);
    t.diagnostic(auto.reason);
  } finally {
    await auto.stop();
  }
});

test('an optional program that fails to load is dropped and the object loaded without it', { skip: unavailable }, async (t) => {
  if (!sections.has('raw_tp/io_uring_complete')) {
    t.skip('the object has no raw_tp/io_uring_complete program');
    return;
  }
  const events: TimedPayload[] = [];
  const probe = withHooks({ NETMON_TEST_BREAK_LOAD: 'raw_tp/io_uring_complete' }, () =>
    NetmonProbe.start({ mode: 'tracepoint', onPayloads: (e) => events.push(...e) }),
  );
  try {
    assert.match(
      probe.reason,
      /^forced by configuration \(raw_tp\/io_uring_complete skipped: loading the object with it failed \(.*netmon_test_broken_load.*\)/,
    );
    await establishSeen(events);
    t.diagnostic(probe.reason);
  } finally {
    await probe.stop();
  }
});

test('a missing hook of a required program fails its mode', { skip: unavailable }, () => {
  const err = startFailing({ NETMON_TEST_MISSING_HOOK: 'raw_tp/sys_exit' }, 'tracepoint');
  assert.equal(err.code, 'ENOHOOK');
  assert.match(err.message, /attaching raw_tp\/sys_exit to netmon_test_missing_sys_exit: the hook does not exist/);
});

test('netmon probe logs the chain in one stderr line, and fails with it when nothing is left', { skip: unavailable }, () => {
  const index = path.resolve(__dirname, '..', 'src', 'index.js');
  const run = (env: Record<string, string>) =>
    spawnSync(
      process.execPath,
      ['-e', `require(${JSON.stringify(index)}).runProbeCommand(process.argv.slice(1)).then((c) => process.exit(c));`, '--', '--duration', '0.2'],
      {
        encoding: 'utf8',
        timeout: 20_000,
        env: { ...process.env, ...env },
      },
    );
  const ok = run({ NETMON_TEST_BREAK_MODE: 'fentry,kprobe' });
  assert.equal(ok.status, 0, ok.stderr);
  const line = ok.stderr.split('\n').find((l) => l.startsWith('netmon probe: mode '));
  assert.ok(line, ok.stderr);
  assert.match(line, /^netmon probe: mode tracepoint \(auto: fentry failed \(.+\); kprobe failed \(.+\); tracepoint loaded and attached\)$/);

  const none = run({ NETMON_TEST_BREAK_MODE: 'fentry,kprobe,tracepoint' });
  assert.equal(none.status, 1, none.stderr);
  assert.match(
    none.stderr,
    /^netmon probe: probe: no attach mode works here: fentry failed \(.+\); kprobe failed \(.+\); tracepoint failed \(attach: .*netmon_test_broken_tracepoint.*\)\n$/,
  );
});
