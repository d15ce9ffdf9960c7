// container_id from a task's cgroup path. The runtimes name the cgroup of a
// container after its full 64-hex id, in a few shapes:
//   systemd driver  …/docker-<id>.scope, …/cri-containerd-<id>.scope,
//                   …/crio-<id>.scope, …/libpod-<id>.scope (Podman)
//   cgroupfs        /docker/<id>, /kubepods/burstable/pod<uid>/<id>, …/crio-<id>
//   containerd v1   …/kubepods-…-pod<uid>.slice:cri-containerd:<id>
// Segments are read from the leaf towards the root and the first container
// segment wins, so a process in a sub-cgroup of a container (systemd inside a
// container, Podman's …/libpod-<id>.scope/container) and nested containers
// (docker-in-docker: the innermost) are attributed right. conmon monitors
// (crio-conmon-<id>.scope, libpod-conmon-<id>.scope) run on the host: "".
// Host processes, .service units and slices: "".

const SCOPE = /^(?:docker|cri-containerd|crio|libpod)-([0-9a-f]{64})(?:\.scope)?$/;
const COLON = /:(?:cri-containerd|crio|docker):([0-9a-f]{64})$/;
const BARE = /^([0-9a-f]{64})$/;

/** The full container id of a cgroup path, or "" when it names no container. */
export function containerIdFromCgroup(path: string): string {
  if (path.length < 64) return '';
  let end = path.length;
  while (end > 0) {
    const start = path.lastIndexOf('/', end - 1);
    const segment = path.slice(start + 1, end);
    end = Math.max(start, 0);
    // Cheap pre-check: every container segment is at least 64 characters.
    if (segment.length < 64) continue;
    const m = SCOPE.exec(segment) ?? COLON.exec(segment) ?? BARE.exec(segment);
    if (m) return m[1]!;
  }
  return '';
}

/**
 * containerIdFromCgroup behind a bounded cache: a host has few distinct cgroup
 * paths and every socket record carries one.
 */
export class ContainerIdCache {
  private readonly cache = new Map<string, string>();
  constructor(private readonly max = 10_000) {}

  get(path: string): string {
    let id = this.cache.get(path);
    if (id === undefined) {
      id = containerIdFromCgroup(path);
      if (this.cache.size >= this.max) this.cache.clear();
      this.cache.set(path, id);
    }
    return id;
  }
}
