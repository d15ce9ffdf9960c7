// The shared flag parser: node's parseArgs behind --help, UsageError and the
// number/validator helpers the commands use.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UsageError, checkedFlag, numberFlag, parseFlags, positiveNumberFlag, stringFlag } from '../src/args';

const USAGE = 'Usage: netmon thing [--name N] [--count C] [--verbose]\n';
const SPEC = { name: { type: 'string' }, count: { type: 'string' }, verbose: { type: 'boolean' } } as const;

function sink(): { write(text: string): boolean; text: string } {
  return {
    text: '',
    write(t: string) {
      this.text += t;
      return true;
    },
  };
}

function usageError(fn: () => unknown): UsageError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof UsageError, `expected a UsageError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a UsageError');
}

test('--flag=value and --flag value give the same value; positionals are kept', () => {
  const a = parseFlags(['--name=x', 'pos', '--verbose'], SPEC, USAGE)!;
  const b = parseFlags(['--name', 'x', 'pos', '--verbose'], SPEC, USAGE)!;
  assert.equal(stringFlag(a, 'name'), 'x');
  assert.equal(stringFlag(b, 'name'), 'x');
  assert.deepEqual(a.positionals, ['pos']);
  assert.deepEqual(b.positionals, ['pos']);
  assert.equal(a.values.verbose, true);
  assert.equal(stringFlag(parseFlags([], SPEC, USAGE)!, 'name'), undefined);
});

test('--help and -h write the usage and return undefined', () => {
  for (const argv of [['--help'], ['-h'], ['--name', 'x', '--help']]) {
    const out = sink();
    assert.equal(parseFlags(argv, SPEC, USAGE, out), undefined);
    assert.equal(out.text, USAGE);
  }
});

test('an unknown flag is a UsageError naming it, with the usage after the reason', () => {
  const err = usageError(() => parseFlags(['--bogus'], SPEC, USAGE));
  assert.match(err.reason, /'--bogus'/);
  assert.doesNotMatch(err.reason, /Usage:/);
  assert.equal(err.message, `${err.reason}\n\n${USAGE}`);
  assert.equal(err.name, 'UsageError');
  assert.match(usageError(() => parseFlags(['--name'], SPEC, USAGE)).reason, /--name/);
});

test('UsageError without usage: message and reason are the same', () => {
  const err = new UsageError('--topic is required');
  assert.equal(err.message, '--topic is required');
  assert.equal(err.reason, '--topic is required');
});

test('numberFlag and positiveNumberFlag name the flag and the value', () => {
  const flags = (count: string) => parseFlags(['--count', count], SPEC, USAGE)!;
  assert.equal(numberFlag(flags('0'), 'count', 5), 0);
  assert.equal(numberFlag(parseFlags([], SPEC, USAGE)!, 'count', 5), 5);
  assert.equal(usageError(() => numberFlag(flags('abc'), 'count', 5)).message, '--count: expected a non-negative number, found "abc"');
  assert.equal(positiveNumberFlag(flags('2.5'), 'count'), 2.5);
  assert.equal(positiveNumberFlag(parseFlags([], SPEC, USAGE)!, 'count'), undefined);
  for (const bad of ['0', 'x', ' ', 'Infinity']) {
    assert.equal(usageError(() => positiveNumberFlag(flags(bad), 'count')).message, `--count: expected a positive number, found "${bad}"`);
  }
});

test('checkedFlag passes the value through the validator and names the flag when it throws', () => {
  const check = (v: string) => {
    if (v !== 'ok') throw new RangeError(`must be ok, got ${v}`);
    return v.toUpperCase();
  };
  assert.equal(checkedFlag(parseFlags(['--name=ok'], SPEC, USAGE)!, 'name', check), 'OK');
  assert.equal(checkedFlag(parseFlags([], SPEC, USAGE)!, 'name', check), undefined);
  const err = usageError(() => checkedFlag(parseFlags(['--name', 'nope'], SPEC, USAGE)!, 'name', check));
  assert.equal(err.message, '--name: must be ok, got nope');
});
