// Fault drills, the fast ones (the long ones are `npm run bench -- drills`):
// under a steady load of real connections whose generator logs each one,
// kill -9 the enricher, then the archiver, and restart each. The archive must
// then hold every logged connection's events exactly once.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { type LoggedConnection, archived, eventsOf, startPipeline, startTraffic, stopPipelines, waitUntil } from '../src';

after(stopPipelines);
const isRoot = process.getuid?.() === 0;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('fault drills (fast)', { skip: isRoot ? false : 'the kernel probes need root' }, () => {
  test('kill -9 the enricher, then the archiver, restart each: every logged connection archived exactly once', async () => {
    const p = await startPipeline();
    const traffic = startTraffic(300, 50); // ~20 s of connections
    await sleep(4000);
    p.children.get('enricher')!.proc.kill('SIGKILL');
    await p.children.get('enricher')!.exited;
    await sleep(1000);
    await p.start('enricher');
    await sleep(4000);
    p.children.get('archiver')!.proc.kill('SIGKILL');
    await p.children.get('archiver')!.exited;
    await sleep(1000);
    await p.start('archiver');
    assert.equal(await traffic.exited, 0);
    const logged = traffic
      .stdout()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as LoggedConnection);
    assert.equal(logged.length, 300);
    const pid = logged[0]!.pid;
    const expected = logged.length * 4;
    const mine = await waitUntil(
      'every logged connection archived',
      async () => {
        const events = (await archived(p)).filter((e) => e.process.pid === pid && e.network_event.dport !== 0);
        return events.length >= expected ? events : undefined;
      },
      120_000,
      2000,
    );
    // Exactly once: every (run, seq) once, and four events per connection.
    assert.equal(new Set(mine.map((e) => `${e.source.run_id}/${e.source.seq}`)).size, mine.length, 'no event twice');
    for (const c of logged) {
      const of = eventsOf(mine, c);
      assert.deepEqual(
        of.map((e) => e.network_event.type).sort(),
        ['TcpConnectionAccept', 'TcpConnectionClose', 'TcpConnectionClose', 'TcpConnectionEstablish'],
        `port ${c.sport}`,
      );
    }
    assert.equal(mine.length, expected);
  });
});
