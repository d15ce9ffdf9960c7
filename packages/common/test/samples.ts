// Typed sample records shared by the tests.
import { NO_SOCKET_FACTS, type RawRecord } from '../src';

export function sampleRaw(seq: number): RawRecord {
  return {
    host_id: '4c4c4544004e3510804bb4c04f4a3332',
    hostname: 'web-17',
    run_id: '0b6f2c1e-6a53-4c6e-9d36-1d0f0f5a7c11',
    seq,
    time_us: 1748685951282000,
    payload: {
      'netmon.raw.SocketEvent': {
        kind: 'ESTABLISH',
        task: {
          pid: 4242,
          tid: 4243,
          ppid: 1,
          uid: 1000,
          euid: 0,
          auid: 4294967295,
          cap_inheritable: 0,
          cap_permitted: 0x1ffffffffff,
          cap_effective: 0x1ffffffffff,
          comm: 'curl',
          cgroup_id: 1234,
          cgroup_path: '/system.slice/docker-abc.scope',
          start_time_us: 987654321,
          ktime_us: 123456789,
        },
        family: 'INET6',
        saddr: Buffer.from('00000000000000000000000000000001', 'hex'),
        daddr: Buffer.from('00000000000000000000000000000001', 'hex'),
        sport: 33340,
        dport: 80,
        cookie: 4109,
        ...NO_SOCKET_FACTS,
      },
    },
  };
}
