// Prometheus metrics and the /healthz probe on one small HTTP server.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry, collectDefaultMetrics } from 'prom-client';

export function createRegistry(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry, prefix: 'netmon_' });
  return registry;
}

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

/**
 * Serves GET /metrics and GET /healthz on 0.0.0.0:port (0 picks a free port).
 * `healthy` returns undefined when all is well, else the reason (503).
 */
/**
 * /metrics, /healthz (liveness: `healthy` returns a problem, or undefined) and
 * /readyz (readiness: `ready`, else the same as /healthz).
 */
export async function startMetricsServer(
  registry: Registry,
  port: number,
  healthy: () => string | undefined,
  host = '0.0.0.0',
  ready: () => string | undefined = healthy,
): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    if (req.url === '/metrics') {
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (err: Error) => res.writeHead(500).end(err.message),
      );
    } else if (req.url === '/healthz' || req.url === '/readyz') {
      const problem = req.url === '/healthz' ? healthy() : ready();
      res.writeHead(problem ? 503 : 200, { 'content-type': 'text/plain' }).end(problem ? `${problem}\n` : 'ok\n');
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
