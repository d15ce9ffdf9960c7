// The archive read as Athena reads it: the table of infra/athena (its SerDe
// class and columns, parsed from the DDL) and the real Hive JSON SerDe, run over
// the archived objects by java/HiveJsonRead.java with the jars of java/pom.xml.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { type HiveClassPath, ensureHiveJars, unreachableRepository } from '@netmon/cli';
import { REPO_ROOT } from './processes';

export const ATHENA_EVENTS_DDL = path.join(REPO_ROOT, 'infra', 'athena', 'network_events.sql');
const READER = path.join(REPO_ROOT, 'test', 'integration', 'java', 'HiveJsonRead.java');

export interface HiveTable {
  serde: string;
  /** The data columns (partition columns are not in the objects): name and Hive type, as written. */
  columns: { name: string; type: string }[];
}

/** Splits at the commas outside <...> (struct fields hold commas). */
function topLevelFields(list: string): string[] {
  const fields: string[] = [];
  let depth = 0;
  let field = '';
  for (const c of list) {
    if (c === ',' && depth === 0) {
      fields.push(field.trim());
      field = '';
      continue;
    }
    if (c === '<') depth++;
    if (c === '>') depth--;
    field += c;
  }
  return [...fields, field.trim()].filter(Boolean);
}

/** The SerDe and data columns of a CREATE EXTERNAL TABLE of infra/athena. */
export function hiveTable(ddlFile = ATHENA_EVENTS_DDL): HiveTable {
  const ddl = readFileSync(ddlFile, 'utf8').replace(/--[^\n]*/g, '');
  const serde = /ROW FORMAT SERDE\s+'([^']+)'/i.exec(ddl)?.[1];
  const list = /CREATE EXTERNAL TABLE[^(]*\(([\s\S]*?)\)\s*PARTITIONED BY/i.exec(ddl)?.[1];
  if (!serde || !list) throw new Error(`${ddlFile}: no ROW FORMAT SERDE or no column list before PARTITIONED BY`);
  // The reader hands the SerDe the columns only; a property would change how it reads.
  if (/SERDEPROPERTIES/i.test(ddl)) throw new Error(`${ddlFile}: SERDEPROPERTIES, which HiveJsonRead does not pass on`);
  const columns = topLevelFields(list).map((field) => {
    const m = /^`([^`]+)`\s+(\S[\s\S]*)$/.exec(field);
    if (!m) throw new Error(`${ddlFile}: cannot read the column ${JSON.stringify(field)}`);
    return { name: m[1]!, type: m[2]!.replace(/\s+/g, '') };
  });
  return { serde, columns };
}

/** One line of a file as the SerDe read it: its row, or why it refused it. */
export interface HiveLine {
  file: string;
  line: number;
  row?: Record<string, unknown>;
  error?: string;
}

/**
 * The jars (fetched when missing). Undefined, with the reason, only when the
 * Maven repository cannot be reached: any other failure throws.
 */
export async function hiveClassPath(): Promise<HiveClassPath | { unreachable: string }> {
  try {
    return await ensureHiveJars(() => undefined);
  } catch (err) {
    const line = unreachableRepository(err);
    if (line) return { unreachable: `the Maven repository is unreachable, so Hive's JsonSerDe cannot be fetched: ${line}` };
    throw err;
  }
}

/** Every line of `files` (.json.gz or plain NDJSON) through the table's SerDe, in order. */
export async function hiveRead(files: string[], table: HiveTable, cp: HiveClassPath): Promise<HiveLine[]> {
  const { stdout } = await promisify(execFile)(
    cp.java,
    [
      // Hive 3's StringInternUtils reaches into java.net.URI, closed since Java 16
      '--add-opens',
      'java.base/java.net=ALL-UNNAMED',
      '-cp',
      cp.classPath,
      READER,
      table.serde,
      table.columns.map((c) => c.name).join(','),
      table.columns.map((c) => c.type).join(':'),
      ...files,
    ],
    { maxBuffer: 1 << 30, encoding: 'utf8' },
  );
  return stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as HiveLine);
}
