// `netmon stack` argument parsing: pure, nothing is started or stopped.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UsageError } from '@netmon/common';
import { STACK_HELP, parseStackArgs, runStackCommand } from '../src/stack/command';

function usageError(fn: () => unknown): UsageError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof UsageError, `expected a UsageError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a UsageError');
}

/** Runs fn with process.stdout and process.stderr captured. */
async function capture<T>(fn: () => Promise<T> | T): Promise<{ result: T; out: string; err: string }> {
  const writes = { out: process.stdout.write, err: process.stderr.write };
  const text = { out: '', err: '' };
  process.stdout.write = ((t: string | Uint8Array) => {
    text.out += String(t);
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((t: string | Uint8Array) => {
    text.err += String(t);
    return true;
  }) as typeof process.stderr.write;
  try {
    return { result: await fn(), ...text };
  } finally {
    process.stdout.write = writes.out;
    process.stderr.write = writes.err;
  }
}

test('stack: command, --json and --dir in both forms, flags before or after the command', () => {
  const want = { command: 'status', dir: '/tmp/s', json: true };
  assert.deepEqual(parseStackArgs(['status', '--json', '--dir', '/tmp/s']), want);
  assert.deepEqual(parseStackArgs(['--dir=/tmp/s', '--json', 'status']), want);
  assert.deepEqual(parseStackArgs(['up']), { command: 'up', dir: undefined, json: false });
  assert.deepEqual(parseStackArgs([]), { command: undefined, dir: undefined, json: false });
});

test('stack: --help and -h print the help and return undefined; the command exits 0', async () => {
  for (const argv of [['--help'], ['-h'], ['status', '--help']]) {
    const r = await capture(() => parseStackArgs(argv));
    assert.equal(r.result, undefined);
    assert.equal(r.out, STACK_HELP);
  }
  const r = await capture(() => runStackCommand(['--help']));
  assert.deepEqual(r, { result: 0, out: STACK_HELP, err: '' });
});

test('stack: no command prints the help and exits 2', async () => {
  const r = await capture(() => runStackCommand([]));
  assert.deepEqual(r, { result: 2, out: STACK_HELP, err: '' });
});

test('stack: an unknown flag, a missing --dir value or an extra argument is a UsageError naming it', () => {
  assert.match(usageError(() => parseStackArgs(['status', '--bogus'])).reason, /'--bogus'/);
  assert.match(usageError(() => parseStackArgs(['status', '--dir'])).reason, /--dir/);
  assert.equal(usageError(() => parseStackArgs(['status', '--dir', ''])).reason, '--dir needs a directory');
  assert.equal(usageError(() => parseStackArgs(['status', 'extra'])).reason, 'unexpected argument extra');
});

test('stack: usage errors exit 2 with one line on stderr', async () => {
  const r = await capture(() => runStackCommand(['status', '--bogus']));
  assert.equal(r.result, 2);
  assert.equal(r.out, '');
  assert.match(r.err, /^netmon stack: Unknown option '--bogus'.* \(see: netmon stack --help\)\n$/);
  const u = await capture(() => runStackCommand(['frobnicate']));
  assert.equal(u.result, 2);
  assert.equal(u.err, "netmon stack: unknown command 'frobnicate' (see: netmon stack --help)\n");
});
