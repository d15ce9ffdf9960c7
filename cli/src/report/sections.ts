// What a report shows: one SQL query per section over the view netmon_events
// (the one `netmon query` and the shared Athena queries read), the columns of
// its table, and the chart drawn from its rows. Pure: SQL in, rows out.
//
// The SQL is the section's definition. The page prints it, so that an analyst
// can run it again (`netmon query --file`), and the test compares a chart with
// what `netmon query` returns for it. It sticks to functions that DuckDB and
// Athena (Trino) share (count_if, min_by, date_trunc, the to_iso8601 and
// from_iso8601_timestamp of infra/athena), and filters on `dt` as well as on
// the timestamp, so that both read only the window's partitions.
import { type BucketUnit, type ReportWindow, bucketStarts, dateOf, iso } from './window';

export type Cell = string | number | boolean | null;
export type Row = Record<string, Cell>;

/**
 * How a table cell is shown: text (escaped), a count, a byte count, a timestamp,
 * a container id (cut to 12 characters), a word kept on one line (an event
 * type), long text (cut, whole in its tooltip: arguments).
 */
export type CellKind = 'text' | 'count' | 'bytes' | 'time' | 'id' | 'word' | 'long';

export interface TableColumn {
  key: string;
  header: string;
  kind: CellKind;
}

export interface ChartDataset {
  label: string;
  data: number[];
}

/** What the page's script hands to Chart.js: plain data, no code. */
export interface ChartSpec {
  id: string;
  type: 'line' | 'bar';
  /** The x values (a line chart's bucket starts, RFC 3339) or the bars' labels. */
  labels: string[];
  datasets: ChartDataset[];
  /** Bars across the page, labels on the left. */
  horizontal?: boolean;
  stacked?: boolean;
  /** The values are bytes (axis and tooltips in KiB, MiB, …). */
  bytes?: boolean;
  /** The labels are bucket starts of this unit. */
  time?: BucketUnit;
  /** The value axis' title. */
  valueTitle: string;
}

export interface Section {
  id: string;
  title: string;
  /** What the section counts and how, for the reader (plain text). */
  about: string;
  sql(w: ReportWindow, top: number): string;
  columns: TableColumn[];
  chart?(rows: Row[], w: ReportWindow): ChartSpec;
}

export const EVENT_TYPES = ['TcpConnectionEstablish', 'TcpConnectionAccept', 'TcpConnectionClose', 'TcpListen'] as const;
const TYPE_LABELS: Record<string, string> = {
  TcpConnectionEstablish: 'Establish (outgoing connect)',
  TcpConnectionAccept: 'Accept (incoming)',
  TcpConnectionClose: 'Close',
  TcpListen: 'Listen',
};

const q = (s: string) => `'${s.replace(/'/g, "''")}'`;

/** The window's rows: its `dt` partitions (read no others), then the exact times (timestamps compare as text). */
export function windowWhere(w: ReportWindow): string {
  const lastMs = new Date(w.end.getTime() - 1);
  return `dt BETWEEN ${q(dateOf(w.start))} AND ${q(dateOf(lastMs))}\n  AND "timestamp" >= ${q(iso(w.start))} AND "timestamp" < ${q(iso(w.end))}`;
}

const num = (v: Cell | undefined): number => (typeof v === 'number' ? v : typeof v === 'string' && v !== '' ? Number(v) : 0);
const str = (v: Cell | undefined): string => (v === null || v === undefined ? '' : String(v));
/** A binary's label: its path, or a marker for the empty path the spec allows (path unknown). */
export const binaryLabel = (path: Cell | undefined): string => (str(path) === '' ? '(path unknown)' : str(path));

/** Bucket start (as the SQL prints it, with or without Z) in ms since the epoch. */
export function bucketMs(label: Cell | undefined): number {
  const s = str(label).trim().replace(' ', 'T');
  return Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(s) ? s : `${s}Z`);
}

export const SUMMARY_SQL = (w: ReportWindow) => `SELECT
  count(*) AS events,
  count_if(network_event.type = 'TcpConnectionEstablish') AS outgoing,
  count_if(network_event.type = 'TcpConnectionAccept') AS incoming,
  count_if(network_event.type = 'TcpConnectionClose') AS closes,
  count_if(network_event.type = 'TcpListen') AS listens,
  count_if(network_event.type = 'TcpConnectionClose' AND connection.outcome = 'refused') AS refused,
  count_if(process.container_id <> '' AND network_event.type IN ('TcpConnectionEstablish', 'TcpConnectionAccept')) AS container_connections,
  count(DISTINCT host.id) AS hosts,
  count(DISTINCT process.binary_path) AS binaries,
  min("timestamp") AS first_event,
  max("timestamp") AS last_event
FROM netmon_events
WHERE ${windowWhere(w)}`;

/** How far back the archive goes (what "new" in the new-binaries section is measured against). */
export const EXTENT_SQL = (w: ReportWindow) => `SELECT
  count(*) AS events,
  min("timestamp") AS first_event
FROM netmon_events
WHERE dt <= ${q(dateOf(new Date(w.end.getTime() - 1)))} AND "timestamp" < ${q(iso(w.end))}`;

function barChart(id: string, rows: Row[], label: (r: Row) => string, sets: { key: string; label: string }[], o: Partial<ChartSpec> = {}): ChartSpec {
  return {
    id,
    type: 'bar',
    horizontal: true,
    stacked: sets.length > 1,
    labels: rows.map(label),
    datasets: sets.map((s) => ({ label: s.label, data: rows.map((r) => num(r[s.key])) })),
    valueTitle: 'connections',
    ...o,
  };
}

export const SECTIONS: Section[] = [
  {
    id: 'timeline',
    title: 'Connections over time',
    about:
      'Events per type in each time bucket (UTC). An Establish is a connect() the kernel accepted, an Accept an incoming connection taken by a process, a Close the end of either, a Listen a socket put into the listening state.',
    sql: (w) => `SELECT
  to_iso8601(date_trunc('${w.unit}', from_iso8601_timestamp("timestamp"))) AS bucket,
  network_event.type AS type,
  count(*) AS events
FROM netmon_events
WHERE ${windowWhere(w)}
GROUP BY 1, 2
ORDER BY 1, 2`,
    columns: [],
    chart: (rows, w) => {
      const starts = bucketStarts(w);
      const index = new Map(starts.map((t, i) => [t, i]));
      const types = [...EVENT_TYPES, ...new Set(rows.map((r) => str(r.type)).filter((t) => !(EVENT_TYPES as readonly string[]).includes(t)))];
      const data = new Map(types.map((t) => [t, starts.map(() => 0)]));
      for (const r of rows) {
        const i = index.get(bucketMs(r.bucket));
        if (i !== undefined) data.get(str(r.type))![i]! += num(r.events);
      }
      return {
        id: 'timeline',
        type: 'line',
        time: w.unit,
        labels: starts.map((t) => new Date(t).toISOString()),
        datasets: types.map((t) => ({ label: TYPE_LABELS[t] ?? t, data: data.get(t)! })),
        valueTitle: `events per ${w.unit}`,
      };
    },
  },
  {
    id: 'binaries',
    title: 'Top binaries',
    about:
      'The executables with the most connections in the window: outgoing connects (Establish) and accepted connections (Accept), so each connection counts once; Listens beside them.',
    sql: (w, top) => `SELECT
  process.binary_path AS binary_path,
  count_if(network_event.type = 'TcpConnectionEstablish') AS outgoing,
  count_if(network_event.type = 'TcpConnectionAccept') AS incoming,
  count_if(network_event.type = 'TcpListen') AS listens,
  count(DISTINCT host.id) AS hosts
FROM netmon_events
WHERE ${windowWhere(w)}
GROUP BY process.binary_path
ORDER BY count_if(network_event.type IN ('TcpConnectionEstablish', 'TcpConnectionAccept')) DESC, listens DESC, binary_path
LIMIT ${top}`,
    columns: [
      { key: 'binary_path', header: 'binary', kind: 'text' },
      { key: 'outgoing', header: 'outgoing', kind: 'count' },
      { key: 'incoming', header: 'incoming', kind: 'count' },
      { key: 'listens', header: 'listens', kind: 'count' },
      { key: 'hosts', header: 'hosts', kind: 'count' },
    ],
    chart: (rows) =>
      barChart('binaries', rows, (r) => binaryLabel(r.binary_path), [
        { key: 'outgoing', label: 'outgoing' },
        { key: 'incoming', label: 'incoming' },
      ]),
  },
  {
    id: 'remotes',
    title: 'Top remote addresses',
    about:
      'The addresses most connected to (outgoing connects), with the DNS name the host resolved to reach each (connection.remote_name; empty for literal addresses, DNS over TLS or HTTPS, and events from before NetworkEvent v2). An address reached under two names has a row per name.',
    sql: (w, top) => `SELECT
  network_event.daddr AS remote_addr,
  connection.remote_name AS remote_name,
  count(*) AS connections,
  count(DISTINCT network_event.dport) AS ports,
  count(DISTINCT process.binary_path) AS binaries,
  count(DISTINCT host.id) AS hosts
FROM netmon_events
WHERE ${windowWhere(w)}
  AND network_event.type = 'TcpConnectionEstablish'
GROUP BY network_event.daddr, connection.remote_name
ORDER BY connections DESC, remote_addr, remote_name
LIMIT ${top}`,
    columns: [
      { key: 'remote_addr', header: 'address', kind: 'text' },
      { key: 'remote_name', header: 'DNS name', kind: 'text' },
      { key: 'connections', header: 'connections', kind: 'count' },
      { key: 'ports', header: 'ports', kind: 'count' },
      { key: 'binaries', header: 'binaries', kind: 'count' },
      { key: 'hosts', header: 'hosts', kind: 'count' },
    ],
    chart: (rows) =>
      barChart('remotes', rows, (r) => (str(r.remote_name) ? `${str(r.remote_name)} (${str(r.remote_addr)})` : str(r.remote_addr)), [
        { key: 'connections', label: 'connections' },
      ]),
  },
  {
    id: 'new-binaries',
    title: 'New binaries talking to the network',
    about:
      'Executables whose first event in the archive falls in the window: none of their events came before it, as far back as the archive goes (see its first event above). With the first host, event and remote address seen.',
    sql: (w) => `SELECT
  process.binary_path AS binary_path,
  min("timestamp") AS first_seen,
  min_by(host.hostname, "timestamp") AS first_host,
  min_by(network_event.type, "timestamp") AS first_type,
  min_by(network_event.daddr, "timestamp") AS first_remote,
  min_by(process.args, "timestamp") AS first_args,
  count(*) AS events,
  count(DISTINCT host.id) AS hosts
FROM netmon_events
WHERE dt <= ${q(dateOf(new Date(w.end.getTime() - 1)))} AND "timestamp" < ${q(iso(w.end))}
GROUP BY process.binary_path
HAVING min("timestamp") >= ${q(iso(w.start))}
ORDER BY first_seen, binary_path
LIMIT 200`,
    columns: [
      { key: 'first_seen', header: 'first seen', kind: 'time' },
      { key: 'binary_path', header: 'binary', kind: 'text' },
      { key: 'first_host', header: 'first host', kind: 'text' },
      { key: 'first_type', header: 'first event', kind: 'word' },
      { key: 'first_remote', header: 'first remote', kind: 'text' },
      { key: 'first_args', header: 'args', kind: 'long' },
      { key: 'events', header: 'events', kind: 'count' },
      { key: 'hosts', header: 'hosts', kind: 'count' },
    ],
  },
  {
    id: 'containers',
    title: 'Connections from containers',
    about:
      'Connections (outgoing and incoming) and listens of processes in containers (process.container_id, the full id from the cgroup path), per container.',
    sql: (w, top) => `SELECT
  process.container_id AS container_id,
  max(host.hostname) AS hostname,
  count_if(network_event.type = 'TcpConnectionEstablish') AS outgoing,
  count_if(network_event.type = 'TcpConnectionAccept') AS incoming,
  count_if(network_event.type = 'TcpListen') AS listens,
  count(DISTINCT process.binary_path) AS binaries,
  min_by(process.binary_path, "timestamp") AS first_binary,
  max("timestamp") AS last_seen
FROM netmon_events
WHERE ${windowWhere(w)}
  AND process.container_id <> ''
GROUP BY process.container_id
ORDER BY count_if(network_event.type IN ('TcpConnectionEstablish', 'TcpConnectionAccept')) DESC, listens DESC, container_id
LIMIT ${top}`,
    columns: [
      { key: 'container_id', header: 'container', kind: 'id' },
      { key: 'hostname', header: 'host', kind: 'text' },
      { key: 'outgoing', header: 'outgoing', kind: 'count' },
      { key: 'incoming', header: 'incoming', kind: 'count' },
      { key: 'listens', header: 'listens', kind: 'count' },
      { key: 'binaries', header: 'binaries', kind: 'count' },
      { key: 'first_binary', header: 'first binary', kind: 'text' },
      { key: 'last_seen', header: 'last seen', kind: 'time' },
    ],
    chart: (rows) =>
      barChart('containers', rows, (r) => `${str(r.hostname)} ${str(r.container_id).slice(0, 12)}`, [
        { key: 'outgoing', label: 'outgoing' },
        { key: 'incoming', label: 'incoming' },
      ]),
  },
  {
    id: 'refused',
    title: 'Refused connects',
    about:
      "Connects answered with a reset (a Close with connection.outcome 'refused'): nothing listens there. Many of them from one binary is a scan, a misconfiguration or a service that is down.",
    sql: (w, top) => `SELECT
  process.binary_path AS binary_path,
  network_event.daddr AS remote_addr,
  network_event.dport AS remote_port,
  connection.remote_name AS remote_name,
  count(*) AS refused,
  count(DISTINCT host.id) AS hosts,
  max("timestamp") AS last_seen
FROM netmon_events
WHERE ${windowWhere(w)}
  AND network_event.type = 'TcpConnectionClose'
  AND connection.outcome = 'refused'
GROUP BY process.binary_path, network_event.daddr, network_event.dport, connection.remote_name
ORDER BY refused DESC, binary_path, remote_addr, remote_port
LIMIT ${top}`,
    columns: [
      { key: 'binary_path', header: 'binary', kind: 'text' },
      { key: 'remote_addr', header: 'address', kind: 'text' },
      { key: 'remote_port', header: 'port', kind: 'text' },
      { key: 'remote_name', header: 'DNS name', kind: 'text' },
      { key: 'refused', header: 'refused', kind: 'count' },
      { key: 'hosts', header: 'hosts', kind: 'count' },
      { key: 'last_seen', header: 'last seen', kind: 'time' },
    ],
    chart: (rows) =>
      barChart('refused', rows, (r) => `${binaryLabel(r.binary_path)} → ${str(r.remote_name) || str(r.remote_addr)}:${str(r.remote_port)}`, [
        { key: 'refused', label: 'refused connects' },
      ]),
  },
  {
    id: 'bytes',
    title: 'Bytes per binary',
    about:
      'Payload bytes of the connections that closed in the window (connection.bytes_sent and bytes_received of each Close, NetworkEvent v2), per binary of the closing process. Events from before v2 carry 0.',
    sql: (w, top) => `SELECT
  process.binary_path AS binary_path,
  CAST(sum(connection.bytes_sent) AS BIGINT) AS bytes_sent,
  CAST(sum(connection.bytes_received) AS BIGINT) AS bytes_received,
  count(*) AS closes
FROM netmon_events
WHERE ${windowWhere(w)}
  AND network_event.type = 'TcpConnectionClose'
GROUP BY process.binary_path
HAVING sum(connection.bytes_sent) + sum(connection.bytes_received) > 0
ORDER BY sum(connection.bytes_sent) + sum(connection.bytes_received) DESC, binary_path
LIMIT ${top}`,
    columns: [
      { key: 'binary_path', header: 'binary', kind: 'text' },
      { key: 'bytes_sent', header: 'sent', kind: 'bytes' },
      { key: 'bytes_received', header: 'received', kind: 'bytes' },
      { key: 'closes', header: 'connections closed', kind: 'count' },
    ],
    chart: (rows) =>
      barChart(
        'bytes',
        rows,
        (r) => binaryLabel(r.binary_path),
        [
          { key: 'bytes_sent', label: 'sent' },
          { key: 'bytes_received', label: 'received' },
        ],
        { bytes: true, valueTitle: 'bytes' },
      ),
  },
];
