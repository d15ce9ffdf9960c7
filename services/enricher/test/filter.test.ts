import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ProcessFilter } from '@netmon/common';
import { type FilterSubject, compileFilter } from '../src/lib';

function filter(over: Partial<Omit<ProcessFilter, 'binary'>> & { binary?: Partial<ProcessFilter['binary']> } = {}): ProcessFilter {
  return {
    denyList: over.denyList ?? false,
    uid: over.uid ?? [],
    euid: over.euid ?? [],
    auid: over.auid ?? [],
    binary: { name: [], path: [], prefix: [], ...over.binary },
  };
}

const curl: FilterSubject = { uid: 1000, euid: 1000, auid: 1000, filename: 'curl', binary_path: '/usr/bin/curl' };
const sudoTool: FilterSubject = { uid: 1000, euid: 0, auid: 1000, filename: 'tool', binary_path: '/usr/local/bin/tool' };
const daemon: FilterSubject = { uid: 0, euid: 0, auid: 4294967295, filename: 'sshd', binary_path: '/usr/sbin/sshd' };
const SUBJECTS = { curl, sudoTool, daemon };

// Each row: the filter's keys, and which subjects MATCH it. The allow list
// keeps exactly the matches; the deny list keeps exactly the others.
const ROWS: Array<[string, Parameters<typeof filter>[0], Array<keyof typeof SUBJECTS>]> = [
  ['no lists: everything matches', {}, ['curl', 'sudoTool', 'daemon']],
  ['uid', { uid: [0] }, ['daemon']],
  ['uid, OR within the list', { uid: [0, 1000] }, ['curl', 'sudoTool', 'daemon']],
  ['euid', { euid: [0] }, ['sudoTool', 'daemon']],
  ['auid', { auid: [1000] }, ['curl', 'sudoTool']],
  ['auid unset', { auid: [4294967295] }, ['daemon']],
  ['binary.name', { binary: { name: ['curl', 'tail'] } }, ['curl']],
  ['binary.path', { binary: { path: ['/usr/sbin/sshd'] } }, ['daemon']],
  ['binary.prefix', { binary: { prefix: ['/usr/local/bin/'] } }, ['sudoTool']],
  ['name OR path OR prefix', { binary: { name: ['curl'], path: ['/usr/sbin/sshd'], prefix: ['/usr/local/'] } }, ['curl', 'sudoTool', 'daemon']],
  ['uid AND euid', { uid: [1000], euid: [0] }, ['sudoTool']],
  ['uid AND euid AND auid', { uid: [1000], euid: [1000], auid: [1000] }, ['curl']],
  ['uid AND binary', { uid: [1000], binary: { path: ['/usr/sbin/sshd'] } }, []],
  ['euid AND (name OR prefix)', { euid: [0], binary: { name: ['sshd'], prefix: ['/usr/local/bin/'] } }, ['sudoTool', 'daemon']],
  ['all keys', { uid: [1000], euid: [0], auid: [1000], binary: { name: ['tool'], path: ['/x'], prefix: ['/opt/'] } }, ['sudoTool']],
  ['name is exact, not a prefix', { binary: { name: ['cur'] } }, []],
  ['path is exact, not a prefix', { binary: { path: ['/usr/bin'] } }, []],
  ['prefix is a string prefix', { binary: { prefix: ['/usr/bin/cu'] } }, ['curl']],
];

for (const [name, keys, matching] of ROWS) {
  test(`filter: ${name}, allow list keeps the matches`, () => {
    const keep = compileFilter(filter({ ...keys, denyList: false }));
    for (const [subject, p] of Object.entries(SUBJECTS)) assert.equal(keep(p), matching.includes(subject as keyof typeof SUBJECTS), subject);
  });
  test(`filter: ${name}, deny list drops the matches`, () => {
    const keep = compileFilter(filter({ ...keys, denyList: true }));
    for (const [subject, p] of Object.entries(SUBJECTS)) assert.equal(keep(p), !matching.includes(subject as keyof typeof SUBJECTS), subject);
  });
}

test('filter: no process_filter section keeps everything', () => {
  const keep = compileFilter(null);
  for (const p of Object.values(SUBJECTS)) assert.equal(keep(p), true);
});
