// Where everything lives: the infra/stack/ sources in the repository, and the state
// directory ($NETMON_STACK_DIR, default <repo root>/.stack/) with jars, data, logs, pids.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DEFAULT_BROKERS, DEFAULT_S3 } from '@netmon/common';

export type ServiceName = 'kafka' | 's3';

export interface ServiceLayout {
  name: ServiceName;
  /** The pom that names the jars, in infra/stack/. */
  pom: string;
  /** Where the jars are copied: the class path is `<jars>/*`. */
  jars: string;
  /** Rendered configuration file. */
  config: string;
  data: string;
  log: string;
  fetchLog: string;
  pidFile: string;
  /** host:port (Kafka) or URL (S3) it serves. */
  address: string;
  host: string;
  port: number;
}

export interface StackLayout {
  root: string;
  dir: string;
  infra: string;
  logs: string;
  run: string;
  lockFile: string;
  kafka: ServiceLayout & { controllerPort: number; log4j: string; log4jTools: string; template: string };
  s3: ServiceLayout & { logback: string; template: string };
}

/** The repository root: the nearest ancestor of this file that holds infra/stack/. */
export function repoRoot(from = __dirname): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'infra', 'stack', 'kafka', 'pom.xml'))) return dir;
    if (path.dirname(dir) === dir) {
      throw new Error(`cannot find the Netmon repository (infra/stack/kafka/pom.xml) above ${from}`);
    }
  }
}

function hostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i), port: Number(address.slice(i + 1)) };
}

export function stackLayout(dir?: string): StackLayout {
  const root = repoRoot();
  const stateDir = path.resolve(dir ?? process.env.NETMON_STACK_DIR ?? path.join(root, '.stack'));
  const infra = path.join(root, 'infra', 'stack');
  const logs = path.join(stateDir, 'logs');
  const run = path.join(stateDir, 'run');
  const broker = hostPort(DEFAULT_BROKERS[0]!);
  const s3Url = new URL(DEFAULT_S3.endpoint);
  return {
    root,
    dir: stateDir,
    infra,
    logs,
    run,
    lockFile: path.join(run, 'stack.lock'),
    kafka: {
      name: 'kafka',
      pom: path.join(infra, 'kafka', 'pom.xml'),
      log4j: path.join(infra, 'kafka', 'log4j2.xml'),
      log4jTools: path.join(infra, 'kafka', 'log4j2-tools.xml'),
      template: path.join(infra, 'kafka', 'server.properties'),
      jars: path.join(stateDir, 'jars', 'kafka'),
      config: path.join(stateDir, 'kafka', 'server.properties'),
      data: path.join(stateDir, 'kafka', 'data'),
      log: path.join(logs, 'kafka.log'),
      fetchLog: path.join(logs, 'fetch-kafka.log'),
      pidFile: path.join(run, 'kafka.pid'),
      address: `${broker.host}:${broker.port}`,
      host: broker.host,
      port: broker.port,
      controllerPort: broker.port + 1,
    },
    s3: {
      name: 's3',
      pom: path.join(infra, 's3proxy', 'pom.xml'),
      logback: path.join(infra, 's3proxy', 'logback.xml'),
      template: path.join(infra, 's3proxy', 's3proxy.properties'),
      jars: path.join(stateDir, 'jars', 's3proxy'),
      config: path.join(stateDir, 's3', 's3proxy.properties'),
      data: path.join(stateDir, 's3', 'data'),
      log: path.join(logs, 's3.log'),
      fetchLog: path.join(logs, 'fetch-s3proxy.log'),
      pidFile: path.join(run, 's3.pid'),
      address: DEFAULT_S3.endpoint,
      host: s3Url.hostname,
      port: Number(s3Url.port || 80),
    },
  };
}

/** Renders a template file: every ${NAME} must be in vars. */
export function renderTemplate(file: string, vars: Record<string, string | number>): string {
  const text = fs.readFileSync(file, 'utf8');
  return text.replace(/\$\{([A-Z_]+)\}/g, (_, name: string) => {
    const value = vars[name];
    if (value === undefined) throw new Error(`${file}: unknown placeholder \${${name}}`);
    return String(value);
  });
}

/** Writes a file only when its content changes (keeps mtimes quiet). */
export function writeIfChanged(file: string, content: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  try {
    if (fs.readFileSync(file, 'utf8') === content) return;
  } catch {
    // absent: write it
  }
  fs.writeFileSync(file, content);
}
