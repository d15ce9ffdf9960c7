// CPU time per thread of this process, from /proc (Linux; NaN elsewhere):
// the main (JavaScript) thread apart from librdkafka's (rdk:…), libuv's pool
// (gzip, file system) and V8's helpers.
import { readdirSync, readFileSync } from 'node:fs';

/**
 * CPU seconds of the main (JavaScript) thread, from /proc (Linux): the rest of
 * the process's CPU time is librdkafka's and libuv's threads. NaN elsewhere.
 */
export function mainThreadCpuSeconds(): number {
  return threadCpuSeconds(process.pid);
}

function threadCpuSeconds(tid: number | string): number {
  try {
    // utime and stime: fields 14 and 15, after the command in parentheses
    const fields = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return Number.NaN;
  }
}
const CLOCK_TICKS = 100;

/** CPU seconds per thread name (librdkafka names its threads rdk:main, rdk:broker…), for NETMON_BENCH_ONLY runs. */
export function cpuByThreadName(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const comm = readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim();
      const name = Number(tid) === process.pid ? 'main' : comm.startsWith('rdk:') ? comm.replace(/\d+$/, '#') : `${comm}:${tid}`;
      out[name] = Number(((out[name] ?? 0) + threadCpuSeconds(tid)).toFixed(2));
    } catch {
      // the thread ended
    }
  }
  return out;
}

/**
 * CPU seconds between two cpuByThreadName() readings, summed by kind: main,
 * rdkafka, and other: libuv's pool (gzip, file system, the native clients'
 * calls) and V8's helpers (GC), which Node names alike.
 */
export function threadGroups(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = { main: 0, rdkafka: 0, other: 0 };
  for (const [name, s] of Object.entries(after)) {
    const kind = name === 'main' ? 'main' : name.startsWith('rdk:') ? 'rdkafka' : 'other';
    out[kind] = Number((out[kind]! + s - (before[name] ?? 0)).toFixed(2));
  }
  return out;
}
