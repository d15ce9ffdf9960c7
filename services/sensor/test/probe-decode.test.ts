// Decoder tests: no kernel needed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AF_INET6, EXEC, EXIT, HDR, Kind, SOCK, TASK, decodeBatch, eventToJson } from '../src/index';

const v6 = (s: string): Buffer => {
  const b = Buffer.alloc(16);
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  groups.forEach((g, i) => {
    b.writeUInt16BE(Number.parseInt(g, 16), i * 2);
  });
  return b;
};

test('a batch of socket, exec and exit records decodes', () => {
  const sock = Buffer.alloc(SOCK.size);
  sock.writeBigUInt64LE(123n, HDR.ts_ns);
  sock.writeUInt16LE(Kind.ACCEPT, HDR.kind);
  sock.writeUInt16LE(SOCK.size, HDR.recsize);
  sock.writeUInt32LE(42, SOCK.task + TASK.pid);
  sock.write('srv\0', SOCK.task + TASK.comm, 'latin1');
  sock.write('docker-abc.scope\0', SOCK.task + TASK.cgroup_name, 'latin1');
  sock.writeUInt32LE(0xffffffff, SOCK.task + TASK.auid);
  sock.writeBigUInt64LE(0x1ffffffffffn, SOCK.task + TASK.cap_effective);
  v6('::ffff:7f00:1').copy(sock, SOCK.saddr);
  v6('::ffff:7f00:2').copy(sock, SOCK.daddr);
  sock.writeUInt16LE(8080, SOCK.sport);
  sock.writeUInt16LE(40000, SOCK.dport);
  sock.writeUInt16LE(AF_INET6, SOCK.family);
  sock[SOCK.flags] = 1;
  sock[SOCK.state] = 1;
  sock.writeBigUInt64LE(4097n, SOCK.cookie);

  const exec = Buffer.alloc(EXEC.size);
  exec.writeUInt16LE(Kind.EXEC, HDR.kind);
  exec.writeUInt16LE(EXEC.size, HDR.recsize);
  exec.write('/usr/bin/curl\0', EXEC.path);
  const args = Buffer.from('-6\0google.com\0');
  args.copy(exec, EXEC.args);
  exec.writeUInt16LE(args.length, EXEC.args_len);
  exec.writeUInt32LE(0x1 | 0x8, EXEC.secureexec);

  const exit = Buffer.alloc(EXIT.size);
  exit.writeUInt16LE(Kind.EXIT, HDR.kind);
  exit.writeUInt16LE(EXIT.size, HDR.recsize);
  exit.writeUInt32LE(42, EXIT.pid);
  exit.writeUInt32LE((3 << 8) | 0, EXIT.exit_code);

  const [a, e, x] = decodeBatch(Buffer.concat([sock, exec, exit]));
  assert.equal(a.kind, 'accept');
  if (a.kind !== 'accept') return;
  assert.equal(a.task.pid, 42);
  assert.equal(a.task.comm, 'srv');
  assert.equal(a.task.cgroupName, 'docker-abc.scope');
  assert.equal(a.saddr, '127.0.0.1');
  assert.equal(a.daddr, '127.0.0.2');
  assert.equal(a.v4mapped, true);
  assert.equal(a.family, 6);
  assert.equal(a.state, 'ESTABLISHED');
  assert.equal(a.cookie, 4097);
  const json = eventToJson(a, 0n);
  assert.equal(json.cap_effective, 0x1ffffffffff);
  assert.equal(json.timestamp, '1970-01-01T00:00:00.000Z');
  assert.equal(e.kind, 'exec');
  if (e.kind !== 'exec') return;
  assert.equal(e.binaryPath, '/usr/bin/curl');
  assert.deepEqual(e.args, ['-6', 'google.com']);
  assert.deepEqual(e.secureexec, ['SETUID', 'FILELESS_EXEC']);
  assert.equal(eventToJson(e, 0n).args, '-6 google.com');
  assert.equal(eventToJson(e, 0n).secureexec, 'SETUID | FILELESS_EXEC');
  assert.equal(eventToJson(e, 0n).filename, 'curl');
  assert.deepEqual(x, { kind: 'exit', tsNs: 0, pid: 42, tid: 0, startTimeNs: 0, exitCode: 3, signal: 0 });
});
