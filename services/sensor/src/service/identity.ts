// Who this host is: /etc/machine-id and the host name, unless configured.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

export interface HostIdentity {
  id: string;
  hostname: string;
}

export function hostIdentity(configured: { id: string; hostname: string }, machineIdFile = '/etc/machine-id'): HostIdentity {
  let id = configured.id;
  if (!id) {
    try {
      id = readFileSync(machineIdFile, 'utf8').trim();
    } catch (err) {
      throw new Error(`host id: ${machineIdFile} is unreadable (${(err as NodeJS.ErrnoException).code}); set host.id in the config`);
    }
    if (!id) throw new Error(`host id: ${machineIdFile} is empty; set host.id in the config`);
  }
  return { id, hostname: configured.hostname || hostname() };
}
