// The one decoder of kernel records (recorded bytes, no kernel needed), and
// the completion of cut paths and args.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { AF_INET, AF_INET6, EXEC, EXIT, ExecFlag, FORK, HDR, Kind, SOCK, TASK, TUPLE, cutUtf8, decodeBatch, limitArgs, payloadJson } from '../src/index';

function record(kind: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  b.writeBigUInt64LE(123_000n, HDR.ts_ns);
  b.writeUInt16LE(kind, HDR.kind);
  b.writeUInt16LE(size, HDR.recsize);
  return b;
}

function task(b: Buffer, at: number, pid: number, startNs: bigint): void {
  b.writeBigUInt64LE(startNs, at + TASK.start_time_ns);
  b.writeUInt32LE(pid, at + TASK.pid);
  b.writeUInt32LE(pid, at + TASK.tid);
  b.writeUInt32LE(0xffffffff, at + TASK.auid);
  b.writeBigUInt64LE(0x1ffffffffffn, at + TASK.cap_effective);
  b.write('srv\0', at + TASK.comm, 'latin1');
  b.write('/system.slice/docker-abc.scope/init.scope\0', at + TASK.cgroup_path, 'latin1');
}

test('a batch of socket, exec, fork and exit records decodes into the raw contract', () => {
  const sock = record(Kind.ACCEPT, SOCK.size);
  task(sock, SOCK.task, 42, 5_000_000_000n);
  const t = SOCK.tuple;
  Buffer.from([127, 0, 0, 1]).copy(sock, t + TUPLE.saddr);
  Buffer.from([127, 0, 0, 2]).copy(sock, t + TUPLE.daddr);
  sock.writeUInt16LE(8080, t + TUPLE.sport);
  sock.writeUInt16LE(40000, t + TUPLE.dport);
  sock.writeUInt16LE(AF_INET, t + TUPLE.family); // an IPv4-mapped socket comes as AF_INET
  sock[t + TUPLE.flags] = 1;
  sock.writeBigUInt64LE(4097n, SOCK.cookie);

  const six = record(Kind.CLOSE, SOCK.size);
  six.writeUInt16LE(AF_INET6, SOCK.tuple + TUPLE.family);
  six[SOCK.tuple + TUPLE.saddr + 15] = 1;

  const exec = record(Kind.EXEC, EXEC.size);
  exec.write('/usr/bin/curl\0', EXEC.path);
  const args = Buffer.from('-6\0google.com\0');
  args.copy(exec, EXEC.args);
  exec.writeUInt16LE(args.length, EXEC.args_len);
  exec.writeUInt32LE(0x1 | 0x8, EXEC.secureexec);

  const fork = record(Kind.FORK, FORK.size);
  task(fork, FORK.task, 43, 6_000_000_000n);
  fork.writeUInt32LE(42, FORK.parent_pid);
  fork.writeBigUInt64LE(5_000_000_000n, FORK.parent_start_time_ns);

  const exit = record(Kind.EXIT, EXIT.size);
  exit.writeUInt32LE(42, EXIT.pid);
  exit.writeUInt32LE(3 << 8, EXIT.exit_code);

  const out = decodeBatch(Buffer.concat([sock, six, exec, fork, exit]), { clockOffsetNs: 1_000_000_000 });
  assert.deepEqual(
    out.map((p) => p.payload.kind),
    ['socket', 'socket', 'exec', 'fork', 'exit'],
  );
  for (const p of out) assert.equal(p.timeUs, 1_000_123);
  const [a, c, e, f, x] = out.map((p) => p.payload);
  assert.ok(a?.kind === 'socket' && c?.kind === 'socket' && e?.kind === 'exec' && f?.kind === 'fork' && x?.kind === 'exit');
  assert.equal(a.value.kind, 'ACCEPT');
  assert.equal(a.value.family, 'INET');
  assert.deepEqual([...a.value.saddr], [127, 0, 0, 1]);
  assert.deepEqual([...a.value.daddr], [127, 0, 0, 2]);
  assert.equal(a.value.sport, 8080);
  assert.equal(a.value.dport, 40000);
  assert.equal(a.value.cookie, 4097);
  assert.deepEqual(a.value.task, {
    pid: 42,
    tid: 42,
    ppid: 0,
    uid: 0,
    euid: 0,
    auid: 4294967295,
    cap_inheritable: 0,
    cap_permitted: 0,
    cap_effective: 0x1ffffffffff,
    comm: 'srv',
    cgroup_id: 0,
    cgroup_path: '/system.slice/docker-abc.scope/init.scope',
    start_time_us: 5_000_000,
    ktime_us: 123,
  });
  assert.equal(c.value.kind, 'CLOSE');
  assert.equal(c.value.family, 'INET6');
  assert.equal(c.value.saddr.length, 16);
  assert.equal(e.value.binary_path, '/usr/bin/curl');
  assert.deepEqual(e.value.args, ['-6', 'google.com']);
  assert.equal(e.value.args_truncated, false);
  assert.deepEqual(e.value.secureexec, ['SETUID', 'FILELESS_EXEC']);
  assert.deepEqual({ pid: f.value.task.pid, parent: f.value.parent_pid, start: f.value.parent_start_time_us }, { pid: 43, parent: 42, start: 5_000_000 });
  assert.deepEqual(x.value, { pid: 42, tid: 0, start_time_us: 0, exit_code: 3 << 8 });

  const json = payloadJson(out[0]!);
  assert.equal(json.record, 'socket');
  assert.equal(json.saddr, '127.0.0.1');
  assert.equal(json.timestamp, '1970-01-01T00:00:01.000Z');
  assert.equal(payloadJson(out[1]!).saddr, '::1');
});

/** A fake /proc with one process. */
function fakeProc(pid: number, startTicks: number, exe: string, cmdline: string[]): string {
  const proc = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-proc-'));
  fs.mkdirSync(`${proc}/${pid}`);
  fs.writeFileSync(`${proc}/${pid}/stat`, `${pid} (a b) ) S ${Array.from({ length: 18 }, () => '0').join(' ')} ${startTicks} 0 0`);
  fs.symlinkSync(exe, `${proc}/${pid}/exe`);
  fs.writeFileSync(`${proc}/${pid}/cmdline`, `${cmdline.join('\0')}\0`);
  return proc;
}

function cutExec(pid: number, startNs: bigint, flags: number, args: string | Buffer): Buffer {
  const exec = record(Kind.EXEC, EXEC.size);
  task(exec, EXEC.task, pid, startNs);
  exec.write(`/${'d'.repeat(400)}/tail\0`, EXEC.path); // what the kernel kept: the path's end
  const bytes = Buffer.isBuffer(args) ? args : Buffer.from(args);
  bytes.copy(exec, EXEC.args);
  exec.writeUInt16LE(bytes.length, EXEC.args_len);
  exec[EXEC.flags] = flags;
  return exec;
}

test('a path the kernel cut is completed from /proc/PID/exe, or given as "", never shortened', () => {
  const long = `/${'a'.repeat(300)}/${'b'.repeat(300)}/prog`;
  const proc = fakeProc(7, 250, long, ['prog', 'x']);
  const exec = cutExec(7, 2_500_000_000n, ExecFlag.PATH_TRUNCATED, 'x\0');
  const [p] = decodeBatch(exec, { clockOffsetNs: 0, proc });
  assert.ok(p?.payload.kind === 'exec');
  assert.equal(p.payload.value.binary_path, long);
  // Another process now has the pid (start time differs): nothing to complete from.
  const [q] = decodeBatch(cutExec(7, 9_990_000_000n, ExecFlag.PATH_TRUNCATED, 'x\0'), { clockOffsetNs: 0, proc });
  assert.ok(q?.payload.kind === 'exec');
  assert.equal(q.payload.value.binary_path, '');
});

test('args the kernel cut are completed from /proc/PID/cmdline up to max_args_bytes, then marked', () => {
  const whole = Array.from({ length: 100 }, (_, i) => `arg${i}`);
  const proc = fakeProc(8, 100, '/usr/bin/prog', ['prog', ...whole]);
  const exec = cutExec(8, 1_000_000_000n, ExecFlag.ARGS_TRUNCATED, 'arg0\0arg1\0ar');
  const [p] = decodeBatch(exec, { clockOffsetNs: 0, proc, maxArgsBytes: 8192 });
  assert.ok(p?.payload.kind === 'exec');
  assert.deepEqual(p.payload.value.args, whole);
  assert.equal(p.payload.value.args_truncated, false);
  // Gone from /proc: what the kernel had, marked as cut.
  const [q] = decodeBatch(cutExec(9, 1_000_000_000n, ExecFlag.ARGS_TRUNCATED, 'arg0\0arg1\0ar'), { clockOffsetNs: 0, proc, maxArgsBytes: 8192 });
  assert.ok(q?.payload.kind === 'exec');
  assert.deepEqual(q.payload.value.args, ['arg0', 'arg1', 'ar']);
  assert.equal(q.payload.value.args_truncated, true);
});

test('limitArgs: within the bound untouched; past it cut at a character boundary with room for "…"', () => {
  assert.deepEqual(limitArgs(['a', 'bc'], 4, false), { args: ['a', 'bc'], truncated: false });
  const r = limitArgs(['a', 'bc'], 4, true);
  assert.deepEqual(r, { args: ['a'], truncated: true });
  const wide = limitArgs(['x', 'é'.repeat(10)], 12, false); // 1 + 1 + 20 bytes > 12
  assert.equal(wide.truncated, true);
  assert.deepEqual(wide.args, ['x', 'é'.repeat(3)]); // 1 + 1 + 6 = 8 ≤ 12 - 3; a 4th é would split at byte 9
  assert.ok(Buffer.byteLength(wide.args.join(' ')) + 3 <= 12);
  assert.equal(cutUtf8('€€', 4), '€');
  assert.equal(cutUtf8('ab', 5), 'ab');
  // invalid UTF-8 counts as U+FFFD (3 bytes)
  const [bad] = decodeBatch(cutExec(10, 0n, 0, Buffer.from([0x61, 0xff, 0])), { clockOffsetNs: 0, proc: '/nonexistent' });
  assert.ok(bad?.payload.kind === 'exec');
  assert.deepEqual(bad.payload.value.args, ['a\ufffd']);
});
