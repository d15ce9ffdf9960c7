// The live view's line per event: a Close shows how it went, how long and
// what it carried, a named remote shows its name, a Listen its local end.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_CONNECTION_FACTS, type NetworkEvent } from '@netmon/common';
import { formatBytes, formatEvent } from '../src/run/view';

function event(type: NetworkEvent['network_event']['type'], connection: Partial<NetworkEvent['connection']> = {}): NetworkEvent {
  return {
    type: 'NetworkEvent',
    process: {
      pid: 42,
      tid: 42,
      ppid: 1,
      uid: 0,
      euid: 0,
      auid: 0,
      cap_inheritable: 0,
      cap_permitted: 0,
      cap_effective: 0,
      secureexec: '',
      filename: 'curl',
      binary_path: '/usr/bin/curl',
      args: '',
      container_id: '',
    },
    network_event: { type, saddr: '10.0.0.1', daddr: '93.184.216.34', sport: 40000, dport: 443, cookie: 1 },
    timestamp: '2026-11-29T10:05:51.282Z',
    host: { hostname: 'h', id: 'h' },
    source: { run_id: 'r', seq: 1 },
    connection: { ...DEFAULT_CONNECTION_FACTS, ...connection },
    process_key: 'h:42:1',
  };
}

test('a Close line shows outcome, duration and bytes; the name goes with the remote address', () => {
  const line = formatEvent(
    event('TcpConnectionClose', { outcome: 'established', duration_ms: 1834, bytes_sent: 5120, bytes_received: 1048576, remote_name: 'example.com' }),
  );
  assert.equal(line, '10:05:51.282  close    curl[42]                 10.0.0.1:40000 → example.com (93.184.216.34:443)  established 1.8 s ↑5.1 kB ↓1.0 MB');
});

test('a connect without a name shows the address only; a refused close says so', () => {
  assert.match(formatEvent(event('TcpConnectionEstablish')), /→ 93\.184\.216\.34:443$/);
  assert.match(formatEvent(event('TcpConnectionClose', { outcome: 'refused', duration_ms: 2 })), /refused 2 ms ↑0 B ↓0 B$/);
});

test('a Listen line shows the listening end only', () => {
  assert.equal(formatEvent(event('TcpListen')), '10:05:51.282  listen   curl[42]                 10.0.0.1:40000');
});

test('bytes in decimal units', () => {
  assert.deepEqual([0, 999, 1000, 1536, 1e6, 2.5e9].map(formatBytes), ['0 B', '999 B', '1.0 kB', '1.5 kB', '1.0 MB', '2.5 GB']);
});
