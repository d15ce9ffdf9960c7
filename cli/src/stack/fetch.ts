// Fetches a service's jars from Maven Central with `mvn dependency:copy-dependencies`
// into <stack dir>/jars/<service>/, once per pom content. ~/.m2 is Maven's own cache,
// so a second clone on the same machine downloads nothing.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { StackError, tailOf } from './errors';
import type { ServiceLayout } from './layout';
import { findMaven } from './tools';

const MARKER = '.netmon-fetched';

/** What fetching needs of a service (or of any other class path, as the Hive reader's): its name, pom, jars folder and log. */
export type JarSet = Pick<ServiceLayout, 'pom' | 'jars' | 'fetchLog'> & { name: string };

function pomHash(pom: string): string {
  return createHash('sha256').update(fs.readFileSync(pom)).digest('hex');
}

/** True when the jars of this pom are already in place. */
export function jarsPresent(svc: JarSet): boolean {
  try {
    return fs.readFileSync(path.join(svc.jars, MARKER), 'utf8').trim() === pomHash(svc.pom);
  } catch {
    return false;
  }
}

/** Makes sure <jars>/ holds the runtime class path of svc.pom; shows progress while fetching. */
export async function ensureJars(svc: JarSet, log: (msg: string) => void): Promise<void> {
  if (jarsPresent(svc)) return;
  const mvn = findMaven();
  const tmp = `${svc.jars}.tmp`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(path.dirname(svc.fetchLog), { recursive: true });
  const logFd = fs.openSync(svc.fetchLog, 'w');
  const args = ['-B', '-f', svc.pom, 'dependency:copy-dependencies', `-DoutputDirectory=${tmp}`, '-DincludeScope=runtime'];
  log(`${svc.name}: fetching jars with mvn (${path.relative(process.cwd(), svc.pom) || svc.pom}); cached in ~/.m2 after the first time`);
  const started = Date.now();
  let downloads = 0;
  let lastFile = '';
  const ticker = setInterval(() => {
    log(`${svc.name}: fetching... ${downloads} files downloaded (${Math.round((Date.now() - started) / 1000)} s)${lastFile ? `, last ${lastFile}` : ''}`);
  }, 5_000);
  try {
    const code = await new Promise<number>((resolve, reject) => {
      const child = spawn(mvn, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let partial = '';
      const onData = (chunk: Buffer) => {
        fs.writeSync(logFd, chunk);
        const lines = (partial + chunk.toString('utf8')).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) {
          const m = /Downloaded from [^:]+: (\S+) \(([^)]*)\)/.exec(line);
          if (!m) continue;
          downloads++;
          lastFile = `${path.basename(m[1]!)} (${m[2]!.split(' at ')[0]})`;
        }
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.once('error', reject);
      child.once('close', (c) => resolve(c ?? 1));
    });
    if (code !== 0) {
      throw new StackError(`fetch ${svc.name} jars`, `mvn exited with ${code}${tailOf(svc.fetchLog)}`, svc.fetchLog);
    }
  } finally {
    clearInterval(ticker);
    fs.closeSync(logFd);
  }
  fs.writeFileSync(path.join(tmp, MARKER), `${pomHash(svc.pom)}\n`);
  fs.rmSync(svc.jars, { recursive: true, force: true });
  fs.renameSync(tmp, svc.jars);
  const count = fs.readdirSync(svc.jars).filter((f) => f.endsWith('.jar')).length;
  log(
    `${svc.name}: ${count} jars in ${svc.jars} (${Math.round((Date.now() - started) / 1000)} s${downloads ? `, ${downloads} files downloaded` : ', all from ~/.m2'})`,
  );
}

/** The java class path of a fetched service. */
export function classPath(svc: JarSet): string {
  return path.join(svc.jars, '*');
}
