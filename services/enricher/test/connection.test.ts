// NetworkEvent v2's connection facts, derived from the kernel's facts of a
// Close: outcome, duration, payload bytes; process_key; the Listen type.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NO_SOCKET_FACTS, type SocketEvent, type SocketEventKind } from '@netmon/common';
import { EVENT_TYPE, cachedProcessKey, connectionFacts, formatTimestamp, outcomeOf, processKey } from '../src/lib/event';
import { task } from './helpers';

const NETNS = 4026531840;

function sock(kind: SocketEventKind, facts: Partial<SocketEvent> = {}, ktimeUs = 5_000_000): SocketEvent {
  return {
    kind,
    task: { ...task(42, 1_000_000), ktime_us: ktimeUs },
    family: 'INET',
    saddr: Buffer.from([127, 0, 0, 1]),
    daddr: Buffer.from([127, 0, 0, 1]),
    sport: 40000,
    dport: 80,
    cookie: 7,
    ...NO_SOCKET_FACTS,
    netns: NETNS,
    ...facts,
  };
}

test('outcome of a Close from the handshake and the errno it ended with', () => {
  const cases: Array<[Partial<SocketEvent>, string]> = [
    [{ handshake: true }, 'established'],
    [{ handshake: true, error: 104 }, 'reset'], // ECONNRESET
    [{ handshake: true, error: 32 }, 'reset'], // EPIPE
    [{ handshake: false, error: 111 }, 'refused'],
    [{ handshake: false, error: 110 }, 'timeout'],
    [{ handshake: false, error: 113 }, 'unreachable'],
    [{ handshake: false, error: 101 }, 'unreachable'],
    [{ handshake: false, error: 0, state: 2 }, 'aborted'], // closed in SYN_SENT
    [{ handshake: false, error: 104, state: 7 }, 'aborted'], // tcp_disconnect of a connecting socket
  ];
  for (const [facts, outcome] of cases) assert.equal(outcomeOf(sock('CLOSE', facts)), outcome, JSON.stringify(facts));
});

test('only a Close has an outcome; a record of an older sensor (no facts) has the default ""', () => {
  assert.equal(outcomeOf(sock('ESTABLISH', { handshake: true })), '');
  assert.equal(outcomeOf(sock('ACCEPT', { handshake: true })), '');
  assert.equal(outcomeOf(sock('CLOSE', { ...NO_SOCKET_FACTS })), '');
});

test("a Close's duration and payload bytes; other types carry zeros and their netns", () => {
  const close = sock('CLOSE', { handshake: true, opened_ktime_us: 3_499_600, bytes_acked: 5000, bytes_received: 1 << 20 }, 5_000_000);
  assert.deepEqual(connectionFacts(close, 'api.example.com'), {
    outcome: 'established',
    duration_ms: 1500,
    bytes_sent: 5000,
    bytes_received: 1 << 20,
    remote_name: 'api.example.com',
    netns: NETNS,
  });
  const open = sock('ESTABLISH', { bytes_acked: 9 });
  assert.deepEqual(connectionFacts(open, ''), { outcome: '', duration_ms: 0, bytes_sent: 0, bytes_received: 0, remote_name: '', netns: NETNS });
  // not seen opening and no sensor start known: no duration rather than a wrong one
  assert.equal(connectionFacts(sock('CLOSE', { handshake: true, opened_ktime_us: 0 }), '').duration_ms, 0);
});

test('process_key is host id, pid and start time; the same pid started later is another process', () => {
  const a = sock('ESTABLISH');
  const b = { ...a, task: { ...a.task, start_time_us: a.task.start_time_us + 1 } };
  assert.equal(processKey('h1', a), 'h1:42:1000000');
  assert.notEqual(processKey('h1', a), processKey('h1', b));
  // Kept in the process's table entry: the same key, made again when the start time differs.
  const entry = { key: '', keyStartUs: -1 };
  assert.equal(cachedProcessKey(entry, 'h1', a), 'h1:42:1000000');
  assert.equal(cachedProcessKey(entry, 'h1', a), 'h1:42:1000000');
  assert.equal(cachedProcessKey(entry, 'h1', b), processKey('h1', b));
  assert.equal(cachedProcessKey(null, 'h1', a), processKey('h1', a));
  const big = { ...a, task: { ...a.task, pid: 4194304, start_time_us: 2 ** 53 - 2 } };
  assert.equal(cachedProcessKey(entry, 'h2', big), processKey('h2', big));
});

test('timestamps: RFC 3339 with milliseconds, the same text for a millisecond seen last', () => {
  const t = 1748685951282123;
  assert.equal(formatTimestamp(t), '2025-05-31T10:05:51.282Z');
  assert.equal(formatTimestamp(t + 1), '2025-05-31T10:05:51.282Z');
  assert.equal(formatTimestamp(t + 1000), '2025-05-31T10:05:51.283Z');
  assert.equal(formatTimestamp(t - 282123 + 5000), '2025-05-31T10:05:51.005Z');
  assert.equal(formatTimestamp(t + 1), '2025-05-31T10:05:51.282Z');
  assert.equal(formatTimestamp(0), '1970-01-01T00:00:00.000Z');
  assert.equal(formatTimestamp(-1000), '1969-12-31T23:59:59.999Z');
  assert.equal(formatTimestamp(-1000), '1969-12-31T23:59:59.999Z');
  for (let i = 0; i < 2000; i++) {
    const us = 1748685951282123 + i * 777_777;
    assert.equal(formatTimestamp(us), new Date(Math.floor(us / 1000)).toISOString());
  }
});

test('a LISTEN record is a TcpListen event', () => {
  assert.equal(EVENT_TYPE.LISTEN, 'TcpListen');
});
