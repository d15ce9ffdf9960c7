/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Kernel-only helpers of netmon.bpf.c: task facts, socket tuples, paths. */
#ifndef __NETMON_BPF_H
#define __NETMON_BPF_H

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define SOCK_STREAM 1

/* Facts of `task` into `t`; every read is CO-RE and tolerates NULL links. */
static __always_inline void fill_task(struct netmon_task *t, struct task_struct *task)
{
	struct task_struct *leader = BPF_CORE_READ(task, group_leader);
	const struct cred *cred = BPF_CORE_READ(task, real_cred);
	struct kernfs_node *kn = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn);
	const char *cg_name;

	t->start_time_ns = BPF_CORE_READ(leader, start_boottime);
	t->pid = BPF_CORE_READ(task, tgid);
	t->tid = BPF_CORE_READ(task, pid);
	t->ppid = BPF_CORE_READ(task, real_parent, tgid);
	t->uid = BPF_CORE_READ(cred, uid.val);
	t->euid = BPF_CORE_READ(cred, euid.val);
	/* kernel_cap_t is 8 bytes in both its old (u32[2]) and new (u64) forms */
	bpf_core_read(&t->cap_inheritable, 8, &cred->cap_inheritable);
	bpf_core_read(&t->cap_permitted, 8, &cred->cap_permitted);
	bpf_core_read(&t->cap_effective, 8, &cred->cap_effective);
	if (bpf_core_field_exists(task->loginuid))
		t->auid = BPF_CORE_READ(task, loginuid.val);
	else
		t->auid = (__u32)-1;
	BPF_CORE_READ_STR_INTO(&t->comm, task, comm);
	t->cgroup_id = BPF_CORE_READ(kn, id);
	cg_name = BPF_CORE_READ(kn, name);
	if (bpf_probe_read_kernel_str(t->cgroup_name, sizeof(t->cgroup_name), cg_name) < 0)
		t->cgroup_name[0] = '\0';
}

static __always_inline bool ipv6_is_v4mapped(const __u32 *a)
{
	return a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0xffff);
}

/* Local/remote ends of a full socket, read from struct sock. */
static __always_inline void read_sock_tuple(struct netmon_sock_event *e, struct sock *sk)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	e->family = family;
	e->flags = 0;
	if (family == AF_INET6) {
		BPF_CORE_READ_INTO(&e->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&e->daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
		if (ipv6_is_v4mapped((__u32 *)e->daddr))
			e->flags |= NETMON_SOCK_V4MAPPED;
	} else {
		__builtin_memset(e->saddr, 0, sizeof(e->saddr));
		__builtin_memset(e->daddr, 0, sizeof(e->daddr));
		BPF_CORE_READ_INTO((__u32 *)e->saddr, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO((__u32 *)e->daddr, sk, __sk_common.skc_daddr);
	}
	/* inet_sport survives the port release of a socket already in TCP_CLOSE,
	 * skc_num does not: read the former. */
	e->sport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	e->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	e->state = BPF_CORE_READ(sk, __sk_common.skc_state);
}

/*
 * Absolute path of `path` (dentry walk across mounts, like d_path without the
 * helper, which raw tracepoints cannot call). Built backwards in `buf`
 * (2 * NETMON_MAX_PATH bytes) and copied into `out`. Returns 0, or
 * NETMON_EXEC_PATH_TRUNCATED when a component did not fit.
 */
static __always_inline __u8 read_abs_path(char *out, char *buf, const struct path *path)
{
	struct dentry *dentry = BPF_CORE_READ(path, dentry);
	struct vfsmount *vfsmnt = BPF_CORE_READ(path, mnt);
	struct mount *mnt = container_of(vfsmnt, struct mount, mnt);
	__u32 pos = NETMON_MAX_PATH - 1;
	__u8 truncated = NETMON_EXEC_PATH_TRUNCATED;

	buf[NETMON_MAX_PATH - 1] = '\0';
	for (int i = 0; i < NETMON_MAX_PATH_DEPTH; i++) {
		struct dentry *mnt_root = BPF_CORE_READ(vfsmnt, mnt_root);
		struct dentry *parent = BPF_CORE_READ(dentry, d_parent);

		if (dentry == mnt_root) {
			struct mount *mnt_parent = BPF_CORE_READ(mnt, mnt_parent);

			if (mnt == mnt_parent) {
				truncated = 0; /* reached the root of the tree */
				break;
			}
			/* cross to the mount point in the parent mount */
			dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
			mnt = mnt_parent;
			vfsmnt = &mnt->mnt;
			continue;
		}
		__u32 len = BPF_CORE_READ(dentry, d_name.len);
		const unsigned char *name = BPF_CORE_READ(dentry, d_name.name);

		if (len > 255 || len + 1 > pos)
			break;
		pos -= len + 1;
		pos &= NETMON_MAX_PATH - 1;
		buf[pos] = '/';
		bpf_probe_read_kernel(&buf[(pos + 1) & (NETMON_MAX_PATH - 1)], len & 255, name);
		if (dentry == parent) {
			/* a pseudo file (memfd, anon inode) is its own root */
			truncated = 0;
			break;
		}
		dentry = parent;
	}
	if (pos == NETMON_MAX_PATH - 1) {
		out[0] = '/';
		out[1] = '\0';
		return truncated;
	}
	bpf_probe_read_kernel_str(out, NETMON_MAX_PATH, &buf[pos & (NETMON_MAX_PATH - 1)]);
	return truncated;
}

#endif /* __NETMON_BPF_H */
