// The deny-filter workload of fidelity test i: a process_filter deny rule whose
// `prefix` is the real front (40 bytes) of a 600+-byte binary path must drop
// that program's events, while the same binary at a short path passes. Used in
// single-host mode and through the pipeline alike:
//   const w = new DenyWorkload(); const skip = w.prepare();   // builds the C client, or says why not
//   config gets w.filterYaml(); await w.startSink() before the sensor
//   await w.run();  await waitUntil(..., () => w.ready(events));  w.check(events) → mismatches
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { NetworkEvent } from '@netmon/common';
import { type Child, startChild } from '../processes';
import { checkAbsent, checkExpect, describeEvent } from './expect';
import { type Logged, exitedWith, logsOf, netprog, waitForLog } from './programs';
import { type LongPathProgram, longPathProgram } from './scenario';

export class DenyWorkload {
  /** A temporary folder of its own (made by prepare, removed by cleanup). */
  dir = '';
  private prog?: LongPathProgram;
  private sink?: { child: Child; port: number };
  private denied?: { child: Child; log: Logged };
  private control?: { child: Child; log: Logged };

  /** Builds the C client into a deep folder; why the workload cannot run here, if it cannot. */
  prepare(): string | undefined {
    this.dir = mkdtempSync(path.join(tmpdir(), 'netmon-fidelity-deny-'));
    const built = longPathProgram(this.dir);
    if ('error' in built) return `cannot build the C client: ${built.error}`;
    this.prog = built;
    return undefined;
  }

  private get program(): LongPathProgram {
    if (!this.prog) throw new Error('DenyWorkload.prepare() first');
    return this.prog;
  }

  /** The first 40 bytes of the long path (ASCII): they name no other program. */
  get prefix(): string {
    return this.program.path.slice(0, 40);
  }

  /** The config section: deny the prefix. */
  filterYaml(): string {
    return `process_filter: { deny_list: true, binary: { prefix: [${JSON.stringify(this.prefix)}] } }`;
  }

  /** A listener both clients connect to (its own events pass the filter). */
  async startSink(): Promise<void> {
    const child = netprog(['serve', '--host', '127.0.0.1']);
    const port = (await waitForLog(child, 'the deny sink to listen', (l) => l.event === 'listening')).port as number;
    this.sink = { child, port };
  }

  /** The long-path client (denied), then the same binary at a short path (control). */
  async run(): Promise<void> {
    const p = this.program;
    if (Buffer.byteLength(p.path) < 600 || p.shortPath.startsWith(this.prefix)) throw new Error('the deny workload is not what it should be');
    const port = this.sink!.port;
    const denied = startChild(p.path, p.args(port));
    await exitedWith(denied, 'the long-path client');
    const control = startChild(p.shortPath, ['127.0.0.1', String(port)]);
    await exitedWith(control, 'the control client');
    const log = (c: Child, what: string) => {
      const l = logsOf(c).find((x) => x.event === 'connect');
      if (!l) throw new Error(`${what} did not log its connection: ${c.stderr()}`);
      return l;
    };
    this.denied = { child: denied, log: log(denied, 'the long-path client') };
    this.control = { child: control, log: log(control, 'the control client') };
  }

  /**
   * The control's Establish and Close are in, and the sink's Accept and Close
   * of the denied client's connection (the denied client's own events, had
   * they passed, came before those): the absence now means something.
   */
  ready(events: readonly NetworkEvent[]): boolean {
    if (!this.denied || !this.control) return false;
    const control = events.filter((e) => e.process.pid === this.control!.child.proc.pid && e.network_event.type !== 'TcpConnectionAccept');
    const sink = events.filter((e) => e.process.pid === this.sink!.child.proc.pid && e.network_event.dport === this.denied!.log.sport);
    return control.length >= 2 && sink.length >= 2;
  }

  check(events: readonly NetworkEvent[]): string[] {
    const denied = this.denied!;
    const control = this.control!;
    const problems = checkAbsent(events, {
      what: `the program under the denied prefix ${this.prefix}…`,
      pid: denied.child.proc.pid!,
      types: ['TcpConnectionEstablish', 'TcpConnectionAccept', 'TcpConnectionClose'],
    });
    problems.push(
      ...checkExpect(events, {
        what: 'the same binary at a short path (not denied)',
        type: 'TcpConnectionEstablish',
        pid: control.child.proc.pid!,
        sport: control.log.sport as number,
        dport: this.sink!.port,
        from: (control.log.start as number) - 1000,
        to: control.log.at + 1000,
        want: { binary_path: this.program.shortPath, saddr: '127.0.0.1', daddr: '127.0.0.1' },
        close: { pid: control.child.proc.pid! },
      }),
    );
    const byPrefix = events.filter((e) => e.process.binary_path.startsWith(this.prefix));
    if (byPrefix.length > 0) {
      problems.push(`events whose binary_path starts with the denied prefix:\n      ${byPrefix.map((e) => describeEvent(e)).join('\n      ')}`);
    }
    if (!this.ready(events)) problems.push("(the control's events or the sink's events of the denied connection never came: the absence proves little)");
    return problems;
  }

  async cleanup(): Promise<void> {
    await this.sink?.child.stop('SIGKILL');
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}
