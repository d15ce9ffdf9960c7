// `netmon probe` argument parsing: pure, no kernel (the probe is never started).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UsageError } from '@netmon/common';
import { parseProbeArgs, runProbeCommand } from '../src/probe/command';
import { DEFAULT_RING_BUFFER_BYTES } from '../src/probe/probe';

function usageError(fn: () => unknown): UsageError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof UsageError, `expected a UsageError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a UsageError');
}

/** Runs fn with one of process's streams captured. */
async function capture<T>(stream: NodeJS.WriteStream, fn: () => Promise<T> | T): Promise<{ result: T; text: string }> {
  const write = stream.write;
  let text = '';
  stream.write = ((t: string | Uint8Array) => {
    text += String(t);
    return true;
  }) as typeof stream.write;
  try {
    return { result: await fn(), text };
  } finally {
    stream.write = write;
  }
}

test('probe: defaults', () => {
  assert.deepEqual(parseProbeArgs([]), { mode: 'auto', durationS: undefined, ringBufferBytes: DEFAULT_RING_BUFFER_BYTES });
});

test('probe: --flag value and --flag=value', () => {
  const want = { mode: 'tracepoint', durationS: 1.5, ringBufferBytes: 65536 };
  assert.deepEqual(parseProbeArgs(['--mode', 'tracepoint', '--duration', '1.5', '--ring-buffer-bytes', '65536']), want);
  assert.deepEqual(parseProbeArgs(['--mode=tracepoint', '--duration=1.5', '--ring-buffer-bytes=65536']), want);
});

test('probe: --help and -h print the usage and return undefined; the command exits 0', async () => {
  for (const argv of [['--help'], ['-h']]) {
    const r = await capture(process.stdout, () => parseProbeArgs(argv));
    assert.equal(r.result, undefined);
    assert.match(r.text, /^usage: netmon probe \[--mode auto\|fentry\|kprobe\|tracepoint\]/);
  }
  const r = await capture(process.stdout, () => runProbeCommand(['--help']));
  assert.equal(r.result, 0);
  assert.match(r.text, /--ring-buffer-bytes N/);
});

test('probe: an unknown flag or argument is a UsageError naming it', () => {
  assert.match(usageError(() => parseProbeArgs(['--bogus'])).reason, /'--bogus'/);
  assert.match(usageError(() => parseProbeArgs(['--mode'])).reason, /--mode/);
  assert.equal(usageError(() => parseProbeArgs(['extra'])).reason, 'unknown argument extra');
});

test('probe: bad values name the flag and the value (validateMode, validateRingBufferBytes)', () => {
  assert.match(
    usageError(() => parseProbeArgs(['--mode', 'bogus'])).reason,
    /^--mode: .*attach mode must be one of auto, fentry, kprobe, tracepoint, got bogus$/,
  );
  assert.match(usageError(() => parseProbeArgs(['--ring-buffer-bytes=1000'])).reason, /^--ring-buffer-bytes: .*power of 2 .*got 1000$/);
  assert.match(usageError(() => parseProbeArgs(['--ring-buffer-bytes', 'lots'])).reason, /^--ring-buffer-bytes: .*got lots$/);
  assert.match(usageError(() => parseProbeArgs(['--ring-buffer-bytes', '1e6'])).reason, /^--ring-buffer-bytes: .*got 1e6$/);
  for (const bad of ['0', 'soon', '']) {
    assert.equal(usageError(() => parseProbeArgs([`--duration=${bad}`])).reason, `--duration: expected a positive number, found "${bad}"`);
  }
});

test('probe: usage errors exit 2 with the reason and the usage on stderr', async () => {
  for (const argv of [['--mode', 'bogus'], ['--ring-buffer-bytes', '1000'], ['--duration', 'x'], ['--bogus']]) {
    const r = await capture(process.stderr, () => runProbeCommand(argv));
    assert.equal(r.result, 2, argv.join(' '));
    assert.match(r.text, new RegExp(`^netmon probe: .*${argv[0]}.*\nusage: netmon probe `));
  }
});
