// `netmon archiver` and `netmon query` argument parsing (no Kafka, no S3).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { UsageError } from '@netmon/common';
import { ARCHIVER_HELP, QUERY_HELP, parseArchiverArgs, parseQueryArgs, runArchiverCommand, runQueryCommand } from '../src/command';

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

/** Runs fn with process.stderr.write captured. */
async function captureStderr(fn: () => Promise<number>): Promise<{ code: number; text: string }> {
  const write = process.stderr.write;
  let text = '';
  process.stderr.write = ((t: string | Uint8Array) => {
    text += String(t);
    return true;
  }) as typeof process.stderr.write;
  try {
    return { code: await fn(), text };
  } finally {
    process.stderr.write = write;
  }
}

test('archiver: --config FILE and --config=FILE', () => {
  assert.deepEqual(parseArchiverArgs(['--config', 'a.yaml']), { config: 'a.yaml' });
  assert.deepEqual(parseArchiverArgs(['--config=a.yaml']), { config: 'a.yaml' });
  assert.deepEqual(parseArchiverArgs([]), { config: undefined });
});

test('archiver: --help writes the help and returns undefined', () => {
  const out = sink();
  assert.equal(parseArchiverArgs(['--help'], out), undefined);
  assert.equal(out.text, ARCHIVER_HELP);
});

test('archiver: an unknown flag or a positional is a UsageError naming it; the command exits 2 with the help', async () => {
  assert.match(usageError(() => parseArchiverArgs(['--bogus'])).reason, /'--bogus'/);
  assert.match(usageError(() => parseArchiverArgs(['--config'])).reason, /--config/);
  assert.equal(usageError(() => parseArchiverArgs(['extra'])).reason, 'unexpected argument extra');
  const r = await captureStderr(() => runArchiverCommand(['--bogus']));
  assert.equal(r.code, 2);
  assert.match(r.text, /^netmon archiver: Unknown option '--bogus'/);
  assert.ok(r.text.endsWith(`\n\n${ARCHIVER_HELP}`), r.text);
});

test('query: flags in both forms, in any position; defaults', () => {
  const want = { sql: 'SELECT 1', json: true, source: '/tmp/a', config: 'c.yaml' };
  assert.deepEqual(parseQueryArgs(['SELECT 1', '--json', '--source', '/tmp/a', '--config', 'c.yaml']), want);
  assert.deepEqual(parseQueryArgs(['--source=/tmp/a', '--json', '--config=c.yaml', 'SELECT 1']), want);
  assert.deepEqual(parseQueryArgs(['SELECT 1']), { sql: 'SELECT 1', json: false, source: 's3', config: undefined });
});

test('query: --file reads the SQL; --file and SQL together, or no SQL, are usage errors', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'netmon-query-args-'));
  try {
    const file = path.join(dir, 'q.sql');
    writeFileSync(file, 'SELECT 2');
    assert.equal(parseQueryArgs(['--file', file])?.sql, 'SELECT 2');
    assert.equal(parseQueryArgs([`--file=${file}`])?.sql, 'SELECT 2');
    assert.equal(usageError(() => parseQueryArgs(['--file', file, 'SELECT 1'])).reason, 'give the SQL or --file, not both');
    assert.match(usageError(() => parseQueryArgs(['--file', path.join(dir, 'missing.sql')])).reason, /^--file: ENOENT.*missing\.sql/);
    assert.equal(usageError(() => parseQueryArgs([])).reason, 'expected one SQL argument (quote it)');
    assert.equal(usageError(() => parseQueryArgs(['SELECT 1', 'SELECT 2'])).reason, 'expected one SQL argument (quote it)');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('query: --help goes to io.out and exits 0; a bad flag goes to io.err and exits 2', async () => {
  const out = sink();
  const err = sink();
  assert.equal(await runQueryCommand(['--help'], { out, err }), 0);
  assert.equal(out.text, QUERY_HELP);
  assert.equal(err.text, '');

  const out2 = sink();
  const err2 = sink();
  assert.equal(await runQueryCommand(['SELECT 1', '--sauce', 'x'], { out: out2, err: err2 }), 2);
  assert.equal(out2.text, '');
  assert.match(err2.text, /^netmon query: Unknown option '--sauce'/);
  assert.ok(err2.text.endsWith(`\n\n${QUERY_HELP}`), err2.text);

  const err3 = sink();
  assert.equal(await runQueryCommand(['SELECT 1', '--json=yes'], { out: sink(), err: err3 }), 2);
  assert.match(err3.text, /--json/);
});
