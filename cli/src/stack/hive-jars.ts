// The class path of Hive's JSON SerDe, the reader infra/athena's table names,
// for the integration test that reads the archive back through it
// (test/integration/java/HiveJsonRead.java and its pom). Fetched from Maven
// Central the way the stack's own jars are (fetch.ts), into
// <stack dir>/jars/hive/; scripts/setup.sh fetches it, so CI has it before the tests.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { StackError } from './errors';
import { type JarSet, classPath, ensureJars } from './fetch';
import { stackLayout } from './layout';
import { findJava } from './tools';

/** Where the Hive reader's pom, jars and fetch log are. */
export function hiveJarSet(stackDir?: string): JarSet {
  const stack = stackLayout(stackDir);
  return {
    name: 'hive',
    pom: path.join(stack.root, 'test', 'integration', 'java', 'pom.xml'),
    jars: path.join(stack.dir, 'jars', 'hive'),
    fetchLog: path.join(stack.logs, 'fetch-hive.log'),
  };
}

export interface HiveClassPath {
  java: string;
  /** `<jars>/*`, for java -cp */
  classPath: string;
}

/** Fetches the jars unless present (12 MB, once per pom content); the java and class path to run the reader with. */
export async function ensureHiveJars(log: (msg: string) => void = (m) => process.stderr.write(`${m}\n`), stackDir?: string): Promise<HiveClassPath> {
  const set = hiveJarSet(stackDir);
  await ensureJars(set, log);
  return { java: findJava(), classPath: classPath(set) };
}

// What Maven's resolver logs when it cannot reach the repository, as opposed to
// an artifact the repository does not have ("Could not find artifact").
const UNREACHABLE =
  /Could not transfer|transfer failed|Unknown ?host|Connection refused|Connect to \S+ .*failed|Network is unreachable|No route to host|timed out/i;

/** The log line that says the repository was unreachable, when that is why `err` (from ensureHiveJars) happened. */
export function unreachableRepository(err: unknown, stackDir?: string): string | undefined {
  if (!(err instanceof StackError) || !err.step.startsWith('fetch ')) return undefined;
  let text: string;
  try {
    text = fs.readFileSync(hiveJarSet(stackDir).fetchLog, 'utf8');
  } catch {
    return undefined;
  }
  return text
    .split('\n')
    .find((line) => UNREACHABLE.test(line))
    ?.trim();
}
