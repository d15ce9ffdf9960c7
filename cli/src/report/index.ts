// `netmon report`: the archive as one self-contained HTML page for analysts.
export { REPORT_HELP, buildReport, loadChartJs, parseReportArgs, runReportCommand, type ReportArgs, type ReportIo, type ReportResult } from './command';
export { escapeHtml, jsonForScript, pageData, renderPage, type PageModel, type SectionResult } from './page';
export { SECTIONS, SUMMARY_SQL, EXTENT_SQL, windowWhere, type ChartSpec, type Row, type Section } from './sections';
export { parseWindow, parseDuration, bucketStarts, type ReportWindow } from './window';
