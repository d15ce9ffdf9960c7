// The deployment files (infra/k8s, infra/docker-compose.yml, infra/systemd) as
// data: what docs/operations.md promises about them, checked without a cluster.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { type NetmonConfig, parseConfig } from '@netmon/common';
import { parse, parseAllDocuments } from 'yaml';
import { REPO_ROOT, SENSOR_CAPS } from '../src';

// biome-ignore lint/suspicious/noExplicitAny: Kubernetes objects are walked as plain data
type Obj = any;

const NO_ENV = {}; // parseConfig without this process's KAFKA_BROKERS & co.

const K8S = path.join(REPO_ROOT, 'infra/k8s');
const files = readdirSync(K8S).filter((f) => f.endsWith('.yaml'));
const docs: { file: string; obj: Obj }[] = files.flatMap((file) =>
  parseAllDocuments(readFileSync(path.join(K8S, file), 'utf8')).map((d) => {
    assert.deepEqual(d.errors, [], `${file}: ${d.errors.join('; ')}`);
    return { file, obj: d.toJS() as Obj };
  }),
);
const find = (kind: string, name: string): Obj => {
  const d = docs.find((x) => x.obj?.kind === kind && x.obj.metadata?.name === name);
  assert.ok(d, `${kind} ${name} in infra/k8s`);
  return d.obj;
};
const configMap = find('ConfigMap', 'netmon-config');
const clusterConfig: NetmonConfig = parseConfig(configMap.data['netmon.yaml'], 'infra/k8s/configmap.yaml', NO_ENV);
const sensor = find('DaemonSet', 'netmon-sensor');
const deployments = { enricher: find('Deployment', 'netmon-enricher'), archiver: find('Deployment', 'netmon-archiver') };
const ports = { sensor: clusterConfig.sensor.metricsPort, enricher: clusterConfig.enricher.metricsPort, archiver: clusterConfig.archiver.metricsPort };

function metricsPort(container: Obj): number {
  const port = container.ports.find((p: Obj) => p.name === 'metrics');
  assert.ok(port, `${container.name}: a port named metrics`);
  return port.containerPort;
}
function assertHealthProbe(container: Obj, probe: string, path = '/healthz') {
  const p = container[probe];
  assert.ok(p, `${container.name}: ${probe}`);
  assert.equal(p.httpGet.path, path, `${container.name}: ${probe} path`);
  assert.equal(p.httpGet.port, 'metrics', `${container.name}: ${probe} port`);
}
function mount(container: Obj, pod: Obj, mountPath: string): { readOnly: boolean; volume: Obj } {
  const m = container.volumeMounts.find((v: Obj) => v.mountPath === mountPath);
  assert.ok(m, `${container.name}: a mount at ${mountPath}`);
  return { readOnly: m.readOnly === true, volume: pod.volumes.find((v: Obj) => v.name === m.name) };
}
function secretEnv(container: Obj): Record<string, { name: string; key: string; optional: boolean }> {
  return Object.fromEntries(container.env.filter((e: Obj) => e.valueFrom?.secretKeyRef).map((e: Obj) => [e.name, e.valueFrom.secretKeyRef]));
}

describe('Kubernetes manifests (infra/k8s)', () => {
  test('every document parses, lives in the netmon namespace, and kustomization.yaml lists every file but the example', () => {
    const kustomization = docs.find((d) => d.obj.kind === 'Kustomization')!.obj;
    assert.deepEqual([...kustomization.resources].sort(), files.filter((f) => f !== 'kustomization.yaml' && !f.includes('example')).sort());
    for (const { file, obj } of docs) {
      if (obj.kind === 'Namespace') assert.equal(obj.metadata.name, 'netmon');
      else if (obj.kind !== 'Kustomization') assert.equal(obj.metadata.namespace, 'netmon', `${file}: ${obj.kind} ${obj.metadata.name}`);
    }
  });

  test("the ConfigMap's netmon.yaml passes the services' config validation", () => {
    assert.equal(clusterConfig.sensor.spoolDir, '/var/lib/netmon/spool');
    assert.deepEqual(ports, { sensor: 9464, enricher: 9465, archiver: 9466 });
    assert.equal(parse(configMap.data['netmon.yaml']).host, undefined, 'host: is added per node by the sensor pod');
  });

  test('sensor: DaemonSet with host PID, not privileged, exactly the documented capabilities', () => {
    const pod = sensor.spec.template.spec;
    assert.equal(pod.hostPID, true);
    assert.notEqual(pod.hostNetwork, true);
    assert.equal(pod.containers.length, 1);
    const c = pod.containers[0];
    const sc = c.securityContext;
    assert.notEqual(sc.privileged, true);
    assert.equal(sc.allowPrivilegeEscalation, false);
    assert.equal(sc.readOnlyRootFilesystem, true);
    assert.deepEqual(sc.capabilities.drop, ['ALL']);
    assert.deepEqual(sc.capabilities.add, SENSOR_CAPS);
    assert.equal(
      pod.tolerations.some((t: Obj) => t.operator === 'Exists' && !t.key),
      true,
      'runs on every node',
    );
  });

  test('sensor: host mounts (BTF, cgroup v2 root, machine-id read-only; the spool read-write)', () => {
    const pod = sensor.spec.template.spec;
    const c = pod.containers[0];
    const expected: [string, string, boolean][] = [
      ['/sys/kernel/btf', '/sys/kernel/btf', true],
      ['/sys/fs/cgroup', '/sys/fs/cgroup', true],
      ['/etc/machine-id', '/etc/machine-id', true],
      [clusterConfig.sensor.spoolDir, '/var/lib/netmon/spool', false],
      ['/sys/fs/bpf', '/sys/fs/bpf', false],
    ];
    for (const [mountPath, hostPath, readOnly] of expected) {
      const m = mount(c, pod, mountPath);
      assert.equal(m.volume.hostPath?.path, hostPath, mountPath);
      assert.equal(m.readOnly, readOnly, `${mountPath} read-only`);
    }
    const hostPaths = pod.volumes.filter((v: Obj) => v.hostPath).map((v: Obj) => v.hostPath.path);
    assert.deepEqual(hostPaths.sort(), ['/etc/machine-id', '/sys/fs/bpf', '/sys/fs/cgroup', '/sys/kernel/btf', '/var/lib/netmon/spool'], 'no other host path');
    // The probes are pinned on the node's bpffs: no blind spot across a pod restart or upgrade.
    assert.ok(clusterConfig.sensor.pinDir.startsWith('/sys/fs/bpf/'), `sensor.pin_dir on bpffs: ${clusterConfig.sensor.pinDir}`);
    // The mounts that must be writable with a read-only root: the spool and the rendered config.
    assert.equal(mount(c, pod, '/run/netmon').volume.emptyDir !== undefined, true);
  });

  test('sensor: metrics port, /readyz and /healthz probes, resources sized for < 150 MB RSS, room to flush on SIGTERM', () => {
    const pod = sensor.spec.template.spec;
    const c = pod.containers[0];
    assert.equal(metricsPort(c), ports.sensor);
    assertHealthProbe(c, 'readinessProbe', '/readyz');
    assertHealthProbe(c, 'livenessProbe');
    assert.ok(c.resources.requests.cpu && c.resources.requests.memory);
    const limitMi = Number.parseInt(c.resources.limits.memory, 10);
    assert.match(c.resources.limits.memory, /^\d+Mi$/);
    assert.ok(limitMi >= 150 + 8 && limitMi <= 512, `memory limit ${limitMi}Mi: above the 150 MB target plus the ring buffer`);
    assert.equal(c.resources.limits.cpu, undefined, 'no CPU limit: throttling makes the kernel drop');
    assert.ok(pod.terminationGracePeriodSeconds >= 20, 'publisher.close waits up to 15 s');
    assert.equal(pod.automountServiceAccountToken, false);
  });

  test("sensor: the start script appends the node's name as host.hostname, and the result is a valid config", () => {
    const c = sensor.spec.template.spec.containers[0];
    assert.deepEqual(c.command, ['tini', '--', '/bin/sh', '-c']);
    const dir = mkdtempSync(path.join(tmpdir(), 'netmon-manifests-'));
    writeFileSync(path.join(dir, 'netmon.yaml'), configMap.data['netmon.yaml']);
    // Run the pod's script with its paths moved to a temp dir and `netmon sensor` replaced by cat.
    const script = (c.args[0] as string)
      .replaceAll('/etc/netmon/', `${dir}/`)
      .replaceAll('/run/netmon/netmon.yaml', `${dir}/rendered.yaml`)
      .replace('exec netmon sensor --config', 'exec cat');
    assert.notEqual(script, c.args[0]);
    const rendered = execFileSync('/bin/sh', ['-c', script], { env: { NODE_NAME: 'node-a.example', PATH: process.env.PATH }, encoding: 'utf8' });
    const config = parseConfig(rendered, 'rendered', NO_ENV);
    assert.equal(config.host.hostname, 'node-a.example');
    assert.equal(config.host.id, '', 'host.id stays /etc/machine-id');
    assert.deepEqual(config.kafka, clusterConfig.kafka);
  });

  for (const [name, d] of Object.entries(deployments)) {
    test(`${name}: Deployment with /healthz probes, resources, graceful stop, PDB, replicas <= partitions`, () => {
      const pod = d.spec.template.spec;
      const c = pod.containers[0];
      assert.deepEqual(c.args, [name, '--config', '/etc/netmon/netmon.yaml']);
      assert.equal(mount(c, pod, '/etc/netmon').volume.configMap?.name, 'netmon-config');
      assert.equal(metricsPort(c), ports[name as 'enricher' | 'archiver']);
      for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) assertHealthProbe(c, probe);
      assert.ok(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory, 'requests and a memory limit');
      assert.equal(c.securityContext.readOnlyRootFilesystem, true);
      assert.deepEqual(c.securityContext.capabilities.drop, ['ALL']);
      assert.equal(c.securityContext.capabilities.add, undefined);
      assert.equal(pod.securityContext.runAsNonRoot, true);
      assert.ok(d.spec.replicas <= clusterConfig.topics.partitions, 'more replicas than partitions sit idle');
      const pdb = find('PodDisruptionBudget', `netmon-${name}`);
      assert.deepEqual(pdb.spec.selector.matchLabels, d.spec.selector.matchLabels);
      assert.deepEqual(d.spec.selector.matchLabels, { 'app.kubernetes.io/name': `netmon-${name}` });
      const heap = /--max-old-space-size=(\d+)/.exec(c.env.find((e: Obj) => e.name === 'NODE_OPTIONS').value)!;
      assert.ok(Number(heap[1]) < Number.parseInt(c.resources.limits.memory, 10) * (c.resources.limits.memory.endsWith('Gi') ? 1024 : 1));
    });
  }

  test('graceful termination outlasts each service’s own shutdown bound', () => {
    assert.ok(deployments.enricher.spec.template.spec.terminationGracePeriodSeconds >= 60, 'enricher: transaction timeout 60 s');
    const archiver = deployments.archiver.spec.template.spec;
    const bound = Number(archiver.containers[0].env.find((e: Obj) => e.name === 'NETMON_ARCHIVER_SHUTDOWN_TIMEOUT_S').value);
    assert.ok(archiver.terminationGracePeriodSeconds > bound);
  });

  test('secrets reach the services as environment variables, optional, from the documented Secrets', () => {
    const examples = docs.filter((d) => d.file === 'secrets.example.yaml').map((d) => d.obj);
    const keysOf = (secret: string) => Object.keys(examples.find((s) => s.metadata.name === secret)?.stringData ?? {});
    const expected: Record<string, Record<string, [string, string]>> = {
      sensor: { NETMON_KAFKA_SASL_USERNAME: ['netmon-kafka', 'username'], NETMON_KAFKA_SASL_PASSWORD: ['netmon-kafka', 'password'] },
      enricher: { NETMON_KAFKA_SASL_USERNAME: ['netmon-kafka', 'username'], NETMON_KAFKA_SASL_PASSWORD: ['netmon-kafka', 'password'] },
      archiver: {
        NETMON_KAFKA_SASL_USERNAME: ['netmon-kafka', 'username'],
        NETMON_KAFKA_SASL_PASSWORD: ['netmon-kafka', 'password'],
        AWS_ACCESS_KEY_ID: ['netmon-s3', 'access-key-id'],
        AWS_SECRET_ACCESS_KEY: ['netmon-s3', 'secret-access-key'],
      },
    };
    const containers = {
      sensor: sensor.spec.template.spec.containers[0],
      ...Object.fromEntries(Object.entries(deployments).map(([n, d]) => [n, d.spec.template.spec.containers[0]])),
    };
    for (const [service, vars] of Object.entries(expected)) {
      const env = secretEnv(containers[service as keyof typeof containers]);
      assert.deepEqual(Object.keys(env).sort(), Object.keys(vars).sort(), service);
      for (const [name, [secret, key]] of Object.entries(vars)) {
        assert.deepEqual(env[name], { name: secret, key, optional: true }, `${service} ${name}`);
        assert.ok(keysOf(secret).includes(key), `secrets.example.yaml: ${secret}.${key}`);
      }
    }
    // No secret in the ConfigMap.
    assert.equal(clusterConfig.kafka.sasl, undefined);
    assert.doesNotMatch(configMap.data['netmon.yaml'], /^\s*password:/m);
  });
});

describe('Docker Compose (infra/docker-compose.yml)', () => {
  const compose = parse(readFileSync(path.join(REPO_ROOT, 'infra/docker-compose.yml'), 'utf8'), { merge: true });

  test('the three services run `netmon <service> --config`, with a config that validates', () => {
    for (const name of ['sensor', 'enricher', 'archiver']) {
      assert.deepEqual(compose.services[name].command, [name, '--config', '/etc/netmon/netmon.yaml'], name);
      assert.equal(compose.services[name].configs[0].target, '/etc/netmon/netmon.yaml');
    }
    const config = parseConfig(compose.configs['netmon.yaml'].content, 'docker-compose.yml', NO_ENV);
    assert.deepEqual(config.kafka.brokers, ['kafka:19092']);
    assert.equal(config.s3.endpoint, 'http://s3:80');
  });

  test('the sensor shares the host PID namespace and mounts BTF, cgroup and machine-id', () => {
    const s = compose.services.sensor;
    assert.equal(s.pid, 'host');
    for (const m of ['/sys/kernel/btf:/sys/kernel/btf:ro', '/sys/fs/cgroup:/sys/fs/cgroup:ro', '/etc/machine-id:/etc/machine-id:ro'])
      assert.ok(s.volumes.includes(m), m);
  });
});

/** A systemd unit as { section: { key: [values] } } (keys may repeat). */
function parseUnit(text: string): Record<string, Record<string, string[]>> {
  const out: Record<string, Record<string, string[]>> = {};
  let section: Record<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = out[header[1]!] ??= {};
      continue;
    }
    const eq = line.indexOf('=');
    assert.ok(section && eq > 0, `not a key=value line in a section: ${line}`);
    const key = line.slice(0, eq);
    section[key] = [...(section[key] ?? []), line.slice(eq + 1)];
  }
  return out;
}

describe('systemd units (infra/systemd)', () => {
  const SYSTEMD = path.join(REPO_ROOT, 'infra/systemd');
  const unit = (name: string) => parseUnit(readFileSync(path.join(SYSTEMD, `netmon-${name}.service`), 'utf8'));
  const one = (u: ReturnType<typeof unit>, key: string) => {
    const v = u.Service?.[key];
    assert.equal(v?.length, 1, `exactly one ${key}`);
    return v[0]!;
  };

  for (const name of ['sensor', 'enricher', 'archiver']) {
    test(`netmon-${name}.service: sections, command, restart and stop settings`, () => {
      const u = unit(name);
      assert.deepEqual(Object.keys(u), ['Unit', 'Service', 'Install']);
      assert.equal(one(u, 'ExecStart'), `/usr/local/bin/netmon ${name} --config /etc/netmon/netmon.yaml`);
      assert.equal(one(u, 'Restart'), 'always');
      assert.equal(one(u, 'KillSignal'), 'SIGTERM');
      assert.equal(one(u, 'ProtectSystem'), 'strict');
      assert.ok(Number(one(u, 'TimeoutStopSec')) >= 30);
      assert.deepEqual(u.Install?.WantedBy, ['multi-user.target']);
    });
  }

  test('the sensor runs as a fixed non-root user with exactly the documented capabilities; spool and pin dirs writable', () => {
    const u = unit('sensor');
    const caps = SENSOR_CAPS.map((c) => `CAP_${c}`);
    assert.equal(u.Service?.DynamicUser, undefined, 'a fixed uid: pinned probes are adopted by the same uid only');
    assert.equal(one(u, 'User'), 'netmon-sensor');
    assert.equal(one(u, 'NoNewPrivileges'), 'yes');
    assert.deepEqual(one(u, 'CapabilityBoundingSet').split(/\s+/), caps);
    assert.deepEqual(one(u, 'AmbientCapabilities').split(/\s+/), caps);
    assert.ok(clusterConfig.sensor.spoolDir.startsWith('/var/lib/netmon/'));
    const example = parseConfig(readFileSync(path.join(REPO_ROOT, 'docs/netmon.example.yaml'), 'utf8'), 'docs/netmon.example.yaml', NO_ENV);
    const pinDir = example.sensor.pinDir;
    assert.ok(pinDir.startsWith('/sys/fs/bpf/'), `the example config pins: ${pinDir}`);
    assert.deepEqual(one(u, 'ReadWritePaths').split(/\s+/), ['/var/lib/netmon', pinDir]);
    assert.equal(one(u, 'ExecStartPre'), `+/usr/bin/install -d -m 0700 -o netmon-sensor -g netmon-sensor ${pinDir}`);
  });

  test('enricher and archiver: DynamicUser, no capabilities; stop timeout above the archiver’s bound', () => {
    for (const name of ['enricher', 'archiver']) {
      const u = unit(name);
      assert.equal(one(u, 'DynamicUser'), 'yes');
      assert.equal(one(u, 'CapabilityBoundingSet'), '');
    }
    const archiver = unit('archiver');
    const bound = /NETMON_ARCHIVER_SHUTDOWN_TIMEOUT_S=(\d+)/.exec(one(archiver, 'Environment'))!;
    assert.ok(Number(one(archiver, 'TimeoutStopSec')) > Number(bound[1]));
  });

  const analyze = spawnSync('systemd-analyze', ['--version']).status === 0;
  test('systemd-analyze verify accepts the units', { skip: analyze ? false : 'no systemd-analyze' }, () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'netmon-units-'));
    const names = ['sensor', 'enricher', 'archiver'].map((n) => `netmon-${n}.service`);
    for (const n of names) {
      // verify wants ExecStart to exist: point it at this checkout's bin/netmon.js.
      const text = readFileSync(path.join(SYSTEMD, n), 'utf8').replaceAll('/usr/local/bin/netmon', path.join(REPO_ROOT, 'bin/netmon.js'));
      writeFileSync(path.join(dir, n), text);
    }
    const r = spawnSync('systemd-analyze', ['verify', '--man=no', ...names.map((n) => path.join(dir, n))], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr.trim(), '', r.stderr);
  });
});

describe('docs/operations.md', () => {
  test('documents the same sensor capabilities as the manifests and the unit', () => {
    const ops = readFileSync(path.join(REPO_ROOT, 'docs/operations.md'), 'utf8');
    const documented = /<!-- sensor-capabilities -->\s*`([^`]+)`/.exec(ops);
    assert.ok(documented, 'the marked capability list in docs/operations.md');
    assert.deepEqual(
      documented[1]!.split(/\s+/),
      SENSOR_CAPS.map((c) => `CAP_${c}`),
    );
  });
});
