// The report as one self-contained HTML page: tables rendered here, every text
// from the events escaped; the charts' data as JSON in a data block, drawn in
// the browser by Chart.js, whose minified build is inlined. Nothing is fetched
// when the page opens, and its Content-Security-Policy says so: no source
// but the page's own inline scripts and style, by hash. Pure: data in, text out.
//
// Text from events (binary paths, args, DNS names, container ids) is chosen by
// whoever runs a process or answers a DNS query. It reaches the page two ways,
// both inert: HTML-escaped text in the tables, and JSON in the data block with
// every <, > and & written as \u escapes (so no "</script>" can end the block);
// Chart.js draws it on a canvas. The CSP stops any script that got in anyway.
import { createHash } from 'node:crypto';
import type { CellKind, ChartSpec, Row, Section } from './sections';
import { type ReportWindow, iso } from './window';

/** Text for HTML element content and quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** JSON that can stand inside a <script> element: no <, >, & and no line separators in it literally. */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** A script's or style's CSP source expression. */
export function cspHash(text: string): string {
  return `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
}

/**
 * A library's minified build made fit to inline: its source-map comment
 * dropped (the map is not in the page), and refused if it holds a sequence that
 * would end or change the script element.
 */
export function inlineScript(code: string, name: string): string {
  const body = code.replace(/\n\/\/# sourceMappingURL=\S+\s*$/, '\n');
  if (/<\/script|<!--|<script/i.test(body)) throw new Error(`${name} cannot be inlined: it contains a "<script", "</script" or "<!--"`);
  return body;
}

export function formatCount(n: number): string {
  return Number.isFinite(n) ? n.toLocaleString('en-US') : '';
}

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
export function formatBytes(n: number): string {
  let v = n;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < BYTE_UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${BYTE_UNITS[u]}`;
}

/** Characters of a long cell (arguments) shown in the table; the whole text is in its tooltip. */
const LONG_CELL = 120;

function cell(value: Row[string] | undefined, kind: CellKind): string {
  if (value === null || value === undefined) return '<td></td>';
  switch (kind) {
    case 'count':
      return `<td class="n">${escapeHtml(formatCount(Number(value)))}</td>`;
    case 'bytes':
      return `<td class="n" title="${escapeHtml(`${formatCount(Number(value))} bytes`)}">${escapeHtml(formatBytes(Number(value)))}</td>`;
    case 'time':
      return `<td class="t">${escapeHtml(String(value))}</td>`;
    case 'id': {
      const s = String(value);
      return `<td class="id" title="${escapeHtml(s)}">${escapeHtml(s.length > 12 ? `${s.slice(0, 12)}…` : s)}</td>`;
    }
    case 'word':
      return `<td class="t">${escapeHtml(String(value))}</td>`;
    case 'long': {
      const s = String(value);
      if (s === '') return '<td class="empty">—</td>';
      const chars = [...s]; // cut between code points, not inside a surrogate pair
      return chars.length > LONG_CELL
        ? `<td title="${escapeHtml(s)}">${escapeHtml(`${chars.slice(0, LONG_CELL).join('')}…`)}</td>`
        : `<td>${escapeHtml(s)}</td>`;
    }
    default: {
      const s = String(value);
      return s === '' ? '<td class="empty">—</td>' : `<td>${escapeHtml(s)}</td>`;
    }
  }
}

export interface SectionResult {
  section: Section;
  sql: string;
  rows: Row[];
  chart?: ChartSpec;
}

export interface PageModel {
  window: ReportWindow;
  generatedAt: Date;
  /** Where the archive was read from (s3://bucket/prefix or a folder). */
  source: string;
  summary: Row;
  extent: Row;
  sections: SectionResult[];
  top: number;
  /** Chart.js's minified UMD build and its version. */
  chartJs: { code: string; version: string };
}

const STYLE = `
:root { color-scheme: light; --fg: #1d2430; --muted: #5b6575; --line: #d9dee7; --bg: #f6f7f9; --accent: #2f6fdf; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Liberation Sans", sans-serif; color: var(--fg); background: var(--bg); }
header, main, footer { max-width: 1200px; margin: 0 auto; padding: 16px 24px; }
header h1 { margin: 8px 0 4px; font-size: 22px; }
.meta { color: var(--muted); margin: 0; }
.tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(125px, 1fr)); gap: 12px; margin: 16px 0 0; padding: 0; list-style: none; }
.tiles li { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; }
.tiles b { display: block; font-size: 20px; font-variant-numeric: tabular-nums; }
.tiles span { color: var(--muted); font-size: 12px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 4px 20px 16px; margin: 0 0 20px; }
section h2 { font-size: 17px; margin: 14px 0 4px; }
section > p { color: var(--muted); margin: 0 0 12px; max-width: 80em; }
.chart { position: relative; height: 320px; margin: 0 0 12px; }
.table { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; background: var(--bg); position: sticky; top: 0; }
td { overflow-wrap: anywhere; max-width: 36em; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.t, td.id { white-space: nowrap; font-variant-numeric: tabular-nums; }
td.id { font-family: ui-monospace, monospace; }
td.empty { color: var(--muted); }
.none { color: var(--muted); font-style: italic; }
details { margin: 10px 0 0; }
summary { cursor: pointer; color: var(--accent); }
pre { background: var(--bg); border: 1px solid var(--line); border-radius: 4px; padding: 10px; overflow-x: auto; font-size: 12px; }
footer { color: var(--muted); font-size: 12px; }
@media print { .chart { break-inside: avoid; } section { break-inside: avoid-page; } }
`;

/**
 * Draws each chart of the data block with Chart.js. Plain ES2017 for the
 * browser; it reads the data, never builds markup from it (labels go to
 * Chart.js, which draws them on a canvas).
 */
const APP = `
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('netmon-data').textContent);
  var COLORS = ['#2f6fdf', '#e0872b', '#3a9d5d', '#c0392b', '#8e5bd6', '#6b7a8f'];
  var UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  function bytes(n) {
    var v = n, u = 0;
    while (Math.abs(v) >= 1024 && u < UNITS.length - 1) { v /= 1024; u++; }
    return u === 0 ? n + ' B' : v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0) + ' ' + UNITS[u];
  }
  function count(n) { return Number(n).toLocaleString('en-US'); }
  function shortLabel(s) { return s.length > 48 ? '\\u2026' + s.slice(s.length - 47) : s; }
  function timeLabel(s, unit) {
    var t = s.slice(5, 16).replace('T', ' ');
    return unit === 'day' ? s.slice(0, 10) : t;
  }
  Chart.defaults.animation = false;
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.color = '#1d2430';
  var drawn = 0;
  data.charts.forEach(function (c) {
    var canvas = document.getElementById('chart-' + c.id);
    if (!canvas) return;
    var horizontal = !!c.horizontal;
    if (horizontal) canvas.parentNode.style.height = Math.max(160, 60 + 24 * c.labels.length) + 'px';
    var value = c.bytes ? bytes : count;
    var valueAxis = { stacked: !!c.stacked, beginAtZero: true, title: { display: true, text: c.valueTitle },
      ticks: { precision: 0, callback: function (v) { return value(v); } } };
    var labelAxis = { stacked: !!c.stacked, ticks: { autoSkip: !horizontal, maxRotation: 0,
      callback: function (v) { var s = this.getLabelForValue(v); return c.time ? timeLabel(s, c.time) : shortLabel(s); } } };
    new Chart(canvas, {
      type: c.type,
      data: {
        labels: c.labels,
        datasets: c.datasets.map(function (d, i) {
          var color = COLORS[i % COLORS.length];
          return { label: d.label, data: d.data, borderColor: color, backgroundColor: c.type === 'line' ? color : color + 'cc',
            borderWidth: c.type === 'line' ? 2 : 0, pointRadius: c.type === 'line' && c.labels.length > 60 ? 0 : 2, tension: 0 };
        })
      },
      options: {
        indexAxis: horizontal ? 'y' : 'x',
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: 'index', intersect: false },
        scales: horizontal ? { x: valueAxis, y: labelAxis } : { x: labelAxis, y: valueAxis },
        plugins: {
          legend: { display: c.datasets.length > 1 },
          tooltip: { callbacks: {
            title: function (items) { return items.length ? items[0].label : ''; },
            label: function (item) { return item.dataset.label + ': ' + value(item.raw); }
          } }
        }
      }
    });
    drawn++;
  });
  document.body.setAttribute('data-charts', String(drawn));
})();
`;

/** A chart is drawn when it has a value other than 0; otherwise the section says there is nothing. */
const drawable = (c: ChartSpec | undefined): boolean => !!c?.datasets.some((d) => d.data.some((v) => v !== 0));

function table(r: SectionResult): string {
  const cols = r.section.columns;
  if (cols.length === 0) return '';
  if (r.rows.length === 0) return '<p class="none">No events of this kind in the window.</p>';
  const head = `<tr>${cols.map((c) => `<th scope="col">${escapeHtml(c.header)}</th>`).join('')}</tr>`;
  const body = r.rows.map((row) => `<tr>${cols.map((c) => cell(row[c.key], c.kind)).join('')}</tr>`).join('\n');
  return `<div class="table"><table id="table-${r.section.id}">\n<thead>${head}</thead>\n<tbody>\n${body}\n</tbody></table></div>`;
}

function sectionHtml(r: SectionResult, top: number): string {
  const s = r.section;
  const hasData = drawable(r.chart);
  const chart = r.chart && hasData ? `<div class="chart"><canvas id="chart-${s.id}" role="img" aria-label="${escapeHtml(s.title)}"></canvas></div>` : '';
  const none = r.chart && !hasData && s.columns.length === 0 ? '<p class="none">No events in the window.</p>' : '';
  const limited = s.columns.length > 0 && r.rows.length >= top && /LIMIT \d+\s*$/.test(r.sql) ? ` Showing the first ${r.rows.length}.` : '';
  return `<section id="${s.id}">
<h2>${escapeHtml(s.title)}</h2>
<p>${escapeHtml(s.about + limited)}</p>
${chart}${none}${table(r)}
<details><summary>SQL</summary><pre>${escapeHtml(`-- ./bin/netmon.js query --file <this query>.sql\n${r.sql}`)}</pre></details>
</section>`;
}

const n = (v: Row[string] | undefined): number => (typeof v === 'number' ? v : Number(v ?? 0));

function tiles(summary: Row): string {
  const items: [string, Row[string] | undefined][] = [
    ['events', summary.events],
    ['outgoing connects', summary.outgoing],
    ['incoming connections', summary.incoming],
    ['listens', summary.listens],
    ['refused connects', summary.refused],
    ['connections from containers', summary.container_connections],
    ['hosts', summary.hosts],
    ['binaries', summary.binaries],
  ];
  return `<ul class="tiles">${items.map(([label, v]) => `<li><b>${escapeHtml(formatCount(n(v)))}</b><span>${escapeHtml(label)}</span></li>`).join('')}</ul>`;
}

/** The chart data the page embeds, as the browser receives it. */
export function pageData(m: PageModel): { window: { start: string; end: string; unit: string }; charts: ChartSpec[] } {
  return {
    window: { start: iso(m.window.start), end: iso(m.window.end), unit: m.window.unit },
    charts: m.sections.flatMap((r) => (drawable(r.chart) ? [r.chart!] : [])),
  };
}

export function renderPage(m: PageModel): string {
  const chartJs = inlineScript(m.chartJs.code, 'Chart.js');
  const data = jsonForScript(pageData(m));
  const csp = [
    "default-src 'none'",
    `script-src ${cspHash(chartJs)} ${cspHash(APP)}`,
    `style-src ${cspHash(STYLE)}`,
    'img-src data:',
    "base-uri 'none'",
    "form-action 'none'",
  ].join('; ');
  const first = m.extent.first_event ? String(m.extent.first_event) : undefined;
  const archiveNote = first
    ? `The archive's first event before the window's end: ${first} (${formatCount(n(m.extent.events))} events up to then).`
    : 'The archive holds no events up to the window’s end.';
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${escapeHtml(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Netmon report ${escapeHtml(iso(m.window.start))} – ${escapeHtml(iso(m.window.end))}</title>
<style>${STYLE}</style>
</head>
<body>
<header>
<h1>Netmon report</h1>
<p class="meta">From ${escapeHtml(iso(m.window.start))} to ${escapeHtml(iso(m.window.end))} (UTC), read from ${escapeHtml(m.source)}; generated ${escapeHtml(iso(m.generatedAt))}.</p>
<p class="meta">${escapeHtml(archiveNote)}</p>
${tiles(m.summary)}
</header>
<main>
${m.sections.map((r) => sectionHtml(r, m.top)).join('\n')}
</main>
<footer>
<p>Every section's SQL runs unchanged in <code>./bin/netmon.js query</code> (DuckDB, view netmon_events). Charts drawn by Chart.js ${escapeHtml(m.chartJs.version)} (MIT License, © Chart.js Contributors), included in this page.</p>
</footer>
<script type="application/json" id="netmon-data">${data}</script>
<script>${chartJs}</script>
<script>${APP}</script>
</body>
</html>
`;
}
