// The outside programs the stack needs: a Java 17+ runtime and Maven.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { StackError } from './errors';

let javaCache: string | undefined;

/** $JAVA_HOME/bin/java, else `java` on PATH; must be Java 17 or newer (Kafka 4 needs it). */
export function findJava(): string {
  if (javaCache) return javaCache;
  const home = process.env.JAVA_HOME;
  const java = home && fs.existsSync(path.join(home, 'bin', 'java')) ? path.join(home, 'bin', 'java') : 'java';
  const out = spawnSync(java, ['-version'], { encoding: 'utf8' });
  if (out.error || out.status !== 0) {
    throw new StackError(
      'find java',
      `cannot run '${java} -version' (${out.error?.message ?? `exit ${out.status}`}); install a Java 17+ runtime (e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME`,
    );
  }
  const m = /version "(\d+)(?:\.(\d+))?/.exec(out.stderr + out.stdout);
  const major = m ? (m[1] === '1' ? Number(m[2]) : Number(m[1])) : 0;
  if (major < 17) {
    throw new StackError('find java', `${java} is Java ${major || '?'}; Kafka 4 needs Java 17 or newer (set JAVA_HOME)`);
  }
  javaCache = java;
  return java;
}

/** `mvn` on PATH. */
export function findMaven(): string {
  const out = spawnSync('mvn', ['-v'], { encoding: 'utf8' });
  if (out.error || out.status !== 0) {
    throw new StackError('find mvn', `cannot run 'mvn -v' (${out.error?.message ?? `exit ${out.status}`}); install Maven (e.g. apt-get install maven)`);
  }
  return 'mvn';
}
