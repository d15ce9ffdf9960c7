import assert from 'node:assert/strict';
import { test } from 'node:test';
import { containerIdFromCgroup } from '../src/lib';

const ID = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const ID2 = '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08';

// Real shapes of cgroup v2 (and v1 where the runtime still writes them) paths,
// as /proc/PID/cgroup shows them on hosts with each runtime.
const TABLE: Array<[string, string, string]> = [
  // Docker
  ['docker, systemd driver', `/system.slice/docker-${ID}.scope`, ID],
  ['docker, cgroupfs driver', `/docker/${ID}`, ID],
  ['docker, leaf name only', `docker-${ID}.scope`, ID],
  ['docker, systemd inside the container', `/system.slice/docker-${ID}.scope/system.slice/nginx.service`, ID],
  ['docker, init.scope inside the container', `/system.slice/docker-${ID}.scope/init.scope`, ID],
  ['docker-in-docker: the innermost', `/docker/${ID2}/docker/${ID}`, ID],
  ['the docker daemon itself', '/system.slice/docker.service', ''],
  ['containerd daemon', '/system.slice/containerd.service', ''],
  // containerd / CRI
  ['cri-containerd, systemd driver', `/system.slice/cri-containerd-${ID}.scope`, ID],
  [
    'kubepods burstable, systemd driver',
    `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0c3b5a0e_1b51_4a36_b1d9_3f9b1a3c8d4e.slice/cri-containerd-${ID}.scope`,
    ID,
  ],
  ['kubepods besteffort, systemd driver', `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1d2e.slice/cri-containerd-${ID}.scope`, ID],
  ['kubepods guaranteed, systemd driver', `/kubepods.slice/kubepods-pod7a1b2c3d_4e5f.slice/cri-containerd-${ID}.scope`, ID],
  ['containerd v1 colon form', `/kubepods-burstable-pod0c3b5a0e_1b51.slice:cri-containerd:${ID}`, ID],
  ['kubepods burstable, cgroupfs driver', `/kubepods/burstable/pod0c3b5a0e-1b51-4a36-b1d9-3f9b1a3c8d4e/${ID}`, ID],
  ['kubepods guaranteed, cgroupfs driver', `/kubepods/pod0c3b5a0e-1b51-4a36-b1d9-3f9b1a3c8d4e/${ID}`, ID],
  ['the pod slice itself (no container)', '/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0c3b5a0e_1b51_4a36_b1d9_3f9b1a3c8d4e.slice', ''],
  ['kubelet', '/system.slice/kubelet.service', ''],
  // CRI-O
  ['cri-o, systemd driver', `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1d2e.slice/crio-${ID}.scope`, ID],
  ['cri-o, cgroupfs driver', `/kubepods/besteffort/pod1d2e/crio-${ID}`, ID],
  ['cri-o conmon (host side)', `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1d2e.slice/crio-conmon-${ID}.scope`, ''],
  ['cri-o daemon', '/system.slice/crio.service', ''],
  // Podman
  ['podman rootful', `/machine.slice/libpod-${ID}.scope`, ID],
  ['podman rootful, container sub-cgroup', `/machine.slice/libpod-${ID}.scope/container`, ID],
  ['podman rootless', `/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-${ID}.scope`, ID],
  ['podman conmon (host side)', `/machine.slice/libpod-conmon-${ID}.scope`, ''],
  ['podman cgroupfs', `/libpod_parent/libpod-${ID}`, ID],
  // cgroupfs, generic
  ['cgroupfs bare id', `/${ID}`, ID],
  // Host processes
  ['root cgroup', '/', ''],
  ['empty path', '', ''],
  ['systemd service', '/system.slice/sshd.service', ''],
  ['user session', '/user.slice/user-1000.slice/session-3.scope', ''],
  ['user service', '/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-firefox-1234.scope', ''],
  ['init', '/init.scope', ''],
  // Not a full id
  ['short docker id', '/system.slice/docker-abc.scope', ''],
  ['63 hex digits', `/docker/${ID.slice(1)}`, ''],
  ['uppercase hex is not an id', `/docker/${ID.toUpperCase()}`, ''],
  ['65 hex digits', `/docker/${ID}0`, ''],
];

for (const [name, path, want] of TABLE) {
  test(`container id: ${name}`, () => {
    assert.equal(containerIdFromCgroup(path), want, path);
  });
}
