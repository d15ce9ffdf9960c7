/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Kernel-only helpers of netmon.bpf.c: task facts, socket tuples, paths. */
#ifndef __NETMON_BPF_H
#define __NETMON_BPF_H

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define SOCK_STREAM 1
#define ECONNRESET 104

/* struct kernfs_node's parent link was renamed in 6.15; both flavours. */
struct kernfs_node___parent {
	struct kernfs_node *parent;
} __attribute__((preserve_access_index));
struct kernfs_node___rcu_parent {
	struct kernfs_node *__parent;
} __attribute__((preserve_access_index));

static __always_inline struct kernfs_node *kernfs_parent(struct kernfs_node *kn)
{
	struct kernfs_node___parent *old = (void *)kn;
	struct kernfs_node___rcu_parent *new = (void *)kn;

	if (bpf_core_field_exists(old->parent))
		return BPF_CORE_READ(old, parent);
	return BPF_CORE_READ(new, __parent);
}

/*
 * The cgroup v2 path of `kn` into `out` (NETMON_MAX_CGROUP_PATH bytes), built
 * backwards in `buf` (2 * NETMON_MAX_CGROUP_PATH bytes, plus as much again
 * as scratch for measuring names). Leaf-most directories win when the path
 * does not fit: they name the container.
 */
static __always_inline void read_cgroup_path(char *out, char *buf, struct kernfs_node *kn)
{
	const __u32 end = NETMON_MAX_CGROUP_PATH - 1, mask = 2 * NETMON_MAX_CGROUP_PATH - 1;
	char *measure = buf + 2 * NETMON_MAX_CGROUP_PATH;
	__u32 pos = end;

	buf[end] = '\0';
	for (int i = 0; i < NETMON_MAX_CGROUP_DEPTH && kn; i++) {
		struct kernfs_node *parent = kernfs_parent(kn);
		const char *name = BPF_CORE_READ(kn, name);
		long n;

		if (!parent)
			break; /* the root's name is "" */
		n = bpf_probe_read_kernel_str(measure, NETMON_MAX_CGROUP_PATH, name);
		if (n <= 1 || (__u32)n > pos)
			break; /* unreadable, or no room left */
		pos -= n;  /* n counts the NUL: room for the leading '/' */
		buf[pos & mask] = '/';
		bpf_probe_read_kernel_str(&buf[(pos + 1) & mask], n & (NETMON_MAX_CGROUP_PATH - 1), name);
		/* the NUL just written sits where the child's '/' was */
		if (pos + n < end)
			buf[(pos + n) & mask] = '/';
		kn = parent;
	}
	if (pos == end) {
		out[0] = '/';
		out[1] = '\0';
		return;
	}
	bpf_probe_read_kernel_str(out, NETMON_MAX_CGROUP_PATH, &buf[pos & mask]);
}

/* Facts of `task` into `t`; every read is CO-RE and tolerates NULL links.
 * `buf` is scratch for the cgroup path (3 * NETMON_MAX_CGROUP_PATH bytes). */
static __always_inline void fill_task(struct netmon_task *t, struct task_struct *task, char *buf)
{
	struct task_struct *leader = BPF_CORE_READ(task, group_leader);
	const struct cred *cred = BPF_CORE_READ(task, real_cred);
	struct kernfs_node *kn = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn);

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
	read_cgroup_path(t->cgroup_path, buf, kn);
}

static __always_inline bool ipv6_is_v4mapped(const __u8 *a)
{
	const __u32 *w = (const __u32 *)a;

	return w[0] == 0 && w[1] == 0 && w[2] == bpf_htonl(0xffff);
}

/* An AF_INET6 socket talking IPv4 (::ffff:a.b.c.d, a dual-stack server's
 * IPv4 client, an IPv6 client dialling an IPv4 peer) is reported as IPv4. */
static __always_inline void unmap_v4(struct netmon_tuple *t)
{
	__u32 *s = (__u32 *)t->saddr, *d = (__u32 *)t->daddr;

	if (t->family != AF_INET6 || !ipv6_is_v4mapped(t->daddr))
		return;
	t->family = AF_INET;
	t->flags |= NETMON_SOCK_V4MAPPED;
	s[0] = ipv6_is_v4mapped(t->saddr) ? s[3] : 0;
	d[0] = d[3];
	s[1] = s[2] = s[3] = 0;
	d[1] = d[2] = d[3] = 0;
}

/* Local/remote ends of a full socket, read from struct sock. */
static __always_inline void read_sock_tuple(struct netmon_tuple *t, struct sock *sk)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	t->family = family;
	t->flags = 0;
	if (family == AF_INET6) {
		BPF_CORE_READ_INTO(&t->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&t->daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	} else {
		__builtin_memset(t->saddr, 0, sizeof(t->saddr));
		__builtin_memset(t->daddr, 0, sizeof(t->daddr));
		BPF_CORE_READ_INTO((__u32 *)t->saddr, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO((__u32 *)t->daddr, sk, __sk_common.skc_daddr);
	}
	/* inet_sport survives the port release of a socket already in TCP_CLOSE,
	 * skc_num does not: read the former. */
	t->sport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	t->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	t->state = BPF_CORE_READ(sk, __sk_common.skc_state);
	unmap_v4(t);
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
