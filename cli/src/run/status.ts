// The live view's status line, every few seconds: events/s on the events
// topic, what the archiver has not written yet, dead letters, and what the
// sensor lost in the kernel or dropped. Each figure is read where it lives
// (Kafka, the sensor's /metrics); one that cannot be read shows "?".
import type { NativeConsumer, NetmonConfig } from '@netmon/common';

export interface StatusFigures {
  eventsPerS: number;
  archiverWaiting?: number;
  dlq?: number;
  kernelLost?: number;
  sensorDropped?: number;
}

const show = (n: number | undefined) => (n === undefined ? '?' : String(n));

export function formatStatus(f: StatusFigures): string {
  return `── ${f.eventsPerS.toFixed(1)} events/s · archiver: ${show(f.archiverWaiting)} waiting · DLQ ${show(f.dlq)} · kernel lost ${show(f.kernelLost)} · sensor dropped ${show(f.sensorDropped)}`;
}

/** Messages in a topic (sum of its partitions' high watermarks less the low ones). */
export async function topicSize(consumer: NativeConsumer, topic: string): Promise<number> {
  let n = 0;
  for (const p of await consumer.partitions(topic, 2000)) {
    const w = await consumer.watermarks(topic, p, 2000);
    n += w.highOffset - w.lowOffset;
  }
  return n;
}

/** The value of a metric's first series in a Prometheus text exposition, or undefined. */
export function metricValue(text: string, name: string): number | undefined {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

/** The sensor's loss figures from its /metrics on this host. */
export async function sensorLosses(config: NetmonConfig): Promise<{ kernelLost?: number; sensorDropped?: number }> {
  try {
    const res = await fetch(`http://127.0.0.1:${config.sensor.metricsPort}/metrics`, { signal: AbortSignal.timeout(1000) });
    const text = await res.text();
    return { kernelLost: metricValue(text, 'netmon_sensor_lost_kernel'), sensorDropped: metricValue(text, 'netmon_sensor_dropped_total') };
  } catch {
    return {};
  }
}
