// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Netmon kernel side: TCP Establish / Accept / Close with the facts of the
 * task in context, plus exec and exit records, into one ring buffer.
 *
 * Three attach modes (the loader enables only the programs of the chosen one,
 * plus the exec/exit raw tracepoints every mode uses):
 *   fentry:     fexit tcp_v4_connect / tcp_v6_connect / inet_csk_accept,
 *               fentry tcp_close.
 *   kprobe:     the same functions through kprobes / kretprobes.
 *   tracepoint: for kernels without either (no CONFIG_KPROBES, tracing
 *               programs refused):
 *     Establish  sockops BPF_SOCK_OPS_TCP_CONNECT_CB: runs in tcp_connect(),
 *                in the connecting task, after the source port is chosen and
 *                just before the SYN is sent.
 *     Accept     raw_tp sys_exit of accept/accept4: the returned fd is looked
 *                up in the task's fd table (as Falco's modern probe does).
 *     Close      cgroup/sock_release: inet_release() just before tcp_close(),
 *                in the task dropping the last reference of the socket file.
 *   Cookies: sockops (connect and passive-established callbacks) and
 *   sock_release call bpf_get_socket_cookie(), which assigns the cookie, so
 *   every later read of sk->skc_cookie agrees.
 *
 * Per-socket state (every mode): the sockops callbacks, attached in every
 * mode, remember each connecting or accepted socket's tuple by cookie in
 * `conns`. A Close is emitted only for a socket found there, with that tuple
 * (a failed connect's socket has its addresses cleared by then), or for a
 * connected socket older than the sensor; listeners, bound-only and unused
 * sockets close silently.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "netmon.h"
#include "netmon.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Settings the loader writes between open and load. */
const volatile __u32 netmon_mode = NETMON_MODE_TRACEPOINT; /* enum netmon_mode */
const volatile __s32 nr_accept = -1;			   /* __NR_accept of the arch */
const volatile __s32 nr_accept4 = -1;			   /* __NR_accept4 of the arch */
const volatile __s32 nr_listen = -1;			   /* __NR_listen of the arch */
/* Wake the consumer only once this much is waiting (it also polls on a short
 * timer): one wake-up per batch instead of one per record under load. */
const volatile __u64 wakeup_bytes = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20); /* resized by the loader */
} events SEC(".maps");

/* Failed ring buffer reserves, per CPU, indexed by enum netmon_kind. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NETMON_KIND_MAX);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

/* kprobe mode: the socket argument between entry and return, by thread. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct sock *);
} connecting SEC(".maps");

/* Scratch for building paths backwards, one per CPU. */
struct scratch {
	char buf[NETMON_MAX_PATH * 2]; /* also holds read_cgroup_path's 3 * 256 */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch_map SEC(".maps");

/* Sockets seen connecting or accepted, by cookie, until their close. */
struct conn {
	struct netmon_tuple tuple;
	__u64 start_ns;	  /* when the connect or the handshake of the accept happened */
	__u16 err;	  /* sk_err when the socket reached TCP_CLOSE (the process may clear it later) */
	__u8 handshake;	  /* the handshake completed */
	__u8 _pad0[5];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NETMON_MAX_CONNS);
	__type(key, __u64);
	__type(value, struct conn);
} conns SEC(".maps");

static __always_inline char *scratch_buf(void)
{
	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&scratch_map, &zero);

	return s ? s->buf : NULL;
}

static __always_inline void count_lost(__u32 kind)
{
	__u64 *n = bpf_map_lookup_elem(&lost, &kind);

	if (n)
		*n += 1; /* per-CPU slot: no atomics needed */
}

static __always_inline void *reserve(__u32 kind, __u32 size)
{
	struct netmon_hdr *h = bpf_ringbuf_reserve(&events, size, 0);

	if (!h) {
		count_lost(kind);
		return NULL;
	}
	h->ts_ns = bpf_ktime_get_boot_ns();
	h->kind = kind;
	h->size = size;
	h->_pad0 = 0;
	return h;
}

static __always_inline void submit(void *e)
{
	__u64 flags = 0;

	if (wakeup_bytes)
		flags = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes ?
				BPF_RB_FORCE_WAKEUP :
				BPF_RB_NO_WAKEUP;
	bpf_ringbuf_submit(e, flags);
}

static __always_inline bool is_tcp(struct sock *sk)
{
	return BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol) == IPPROTO_TCP &&
	       BPF_CORE_READ_BITFIELD_PROBED(sk, sk_type) == SOCK_STREAM;
}

static __always_inline __u64 sk_cookie(struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
}

static __always_inline __u32 sk_netns(struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

/* The facts of a Close start at open_ns: zero them, and give the netns. */
static __always_inline void clear_facts(struct netmon_sock_event *e, struct sock *sk)
{
	e->open_ns = 0;
	e->bytes_acked = 0;
	e->bytes_received = 0;
	e->netns = sk ? sk_netns(sk) : 0;
	e->err = 0;
	e->_pad0 = 0;
}

/*
 * What the connection carried, read at the process's close (before
 * tcp_close() sends our FIN). tcp_sock's bytes_acked and bytes_received
 * follow the sequence numbers, which also count the SYN of a connect and
 * each FIN: take those out, so that both ends report payload bytes.
 * bytes_sent counts the payload transmitted (retransmissions included, no
 * SYN or FIN), so no more payload than that can have been acknowledged:
 * right also for a connection older than the sensor, whose side is unknown.
 */
static __always_inline void read_payload_bytes(struct netmon_sock_event *e, struct sock *sk, __u8 state)
{
	struct tcp_sock *tp = (struct tcp_sock *)sk;
	__u64 acked = BPF_CORE_READ(tp, bytes_acked);
	__u64 received = BPF_CORE_READ(tp, bytes_received);
	__u64 sent = BPF_CORE_READ(tp, bytes_sent);

	if (acked > sent)
		acked = sent;
	if ((state == TCP_CLOSE_WAIT || state == TCP_CLOSING || state == TCP_LAST_ACK) && received)
		received--; /* the peer's FIN */
	e->bytes_acked = acked;
	e->bytes_received = received;
}

/* SO_LINGER with a zero timeout: the process's close() resets the connection. */
static __always_inline bool closes_with_reset(struct sock *sk)
{
	unsigned long flags = BPF_CORE_READ(sk, __sk_common.skc_flags);

	return (flags & (1UL << bpf_core_enum_value(enum sock_flags, SOCK_LINGER))) &&
	       BPF_CORE_READ(sk, sk_lingertime) == 0;
}

/* Establish/Accept/Listen of a struct sock, for the fentry, kprobe, sys_exit
 * and io_uring paths. */
static __always_inline int emit_sock(__u32 kind, struct sock *sk, __u64 cookie)
{
	struct netmon_sock_event *e;
	char *buf = scratch_buf();

	if (!sk || !buf || !is_tcp(sk))
		return 0;
	e = reserve(kind, sizeof(*e));
	if (!e)
		return 0;
	fill_task(&e->task, (struct task_struct *)bpf_get_current_task(), buf);
	e->cookie = cookie;
	read_sock_tuple(&e->tuple, sk);
	clear_facts(e, sk);
	submit(e);
	return 0;
}

/*
 * Close of a TCP socket, in every mode: only for a socket that connected or
 * was accepted (found in `conns`, whose tuple it carries: a failed connect's
 * socket has its addresses cleared by now), or that was connected before
 * the sensor started (it still has a peer). Listeners, bound-only and unused
 * sockets are not connections: nothing.
 */
static __always_inline int emit_close(struct sock *sk, __u64 cookie)
{
	struct netmon_sock_event *e;
	struct conn *c = bpf_map_lookup_elem(&conns, &cookie);
	__u8 state = BPF_CORE_READ(sk, __sk_common.skc_state);
	char *buf = scratch_buf();

	if (!buf)
		return 0;
	if (!c && (state == TCP_LISTEN || BPF_CORE_READ(sk, __sk_common.skc_dport) == 0))
		return 0;
	e = reserve(NETMON_KIND_CLOSE, sizeof(*e));
	if (e) {
		fill_task(&e->task, (struct task_struct *)bpf_get_current_task(), buf);
		e->cookie = cookie;
		clear_facts(e, sk);
		if (c) {
			e->tuple = c->tuple;
			e->tuple.state = state;
			e->open_ns = c->start_ns;
			e->err = c->err;
			if (c->handshake)
				e->tuple.flags |= NETMON_SOCK_HANDSHAKE;
		} else {
			/* connected before the sensor: it has a peer, so it had a handshake
			 * unless it is still (or was only ever) connecting */
			read_sock_tuple(&e->tuple, sk);
			e->tuple.flags |= NETMON_SOCK_UNTRACKED;
			if (state != TCP_SYN_SENT && state != TCP_CLOSE)
				e->tuple.flags |= NETMON_SOCK_HANDSHAKE;
			e->err = BPF_CORE_READ(sk, sk_err);
		}
		read_payload_bytes(e, sk, state);
		if (!e->err && (e->tuple.flags & NETMON_SOCK_HANDSHAKE) && state != TCP_CLOSE && closes_with_reset(sk))
			e->err = ECONNRESET;
		submit(e);
	}
	if (c)
		bpf_map_delete_elem(&conns, &cookie);
	return 0;
}

/* The socket behind file descriptor `fd` of the current task, or NULL. */
static __always_inline struct sock *sock_of_fd(long fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds, *file;
	struct socket *sock;

	if (!fdt || fd < 0 || fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
		return NULL;
	sock = BPF_CORE_READ(file, private_data);
	return BPF_CORE_READ(sock, sk);
}

/* ---- tracepoint mode ------------------------------------------------- */

/* The tuple of a socket in a sockops callback (addresses before IPv4
 * unmapping: tcp_v6_connect() of a mapped address sets the v6 source only
 * after tcp_connect(), so a mapped connect takes the IPv4 fields). */
static __always_inline void skops_tuple(struct netmon_tuple *t, struct bpf_sock_ops *skops)
{
	__u32 *s = (__u32 *)t->saddr, *d = (__u32 *)t->daddr;

	__builtin_memset(t, 0, sizeof(*t));
	t->family = skops->family;
	t->state = skops->state;
	t->sport = skops->local_port;		    /* host order */
	t->dport = bpf_ntohl(skops->remote_port); /* network order, in the high half */
	if (t->family == AF_INET6) {
		d[0] = skops->remote_ip6[0];
		d[1] = skops->remote_ip6[1];
		d[2] = skops->remote_ip6[2];
		d[3] = skops->remote_ip6[3];
		if (ipv6_is_v4mapped(t->daddr)) {
			t->family = AF_INET;
			t->flags = NETMON_SOCK_V4MAPPED;
			s[0] = skops->local_ip4;
			d[0] = skops->remote_ip4;
			d[1] = d[2] = d[3] = 0;
		} else {
			s[0] = skops->local_ip6[0];
			s[1] = skops->local_ip6[1];
			s[2] = skops->local_ip6[2];
			s[3] = skops->local_ip6[3];
		}
	} else {
		s[0] = skops->local_ip4;
		d[0] = skops->remote_ip4;
	}
}

SEC("sockops")
int netmon_sockops(struct bpf_sock_ops *skops)
{
	struct netmon_sock_event *e;
	struct bpf_sock *bsk;
	struct conn c = {};
	__u32 op = skops->op;
	char *buf;
	__u64 cookie;

	if (op != BPF_SOCK_OPS_TCP_CONNECT_CB && op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;
	/* assigns the cookie if the socket has none yet */
	cookie = bpf_get_socket_cookie(skops);
	skops_tuple(&c.tuple, skops);
	c.start_ns = bpf_ktime_get_boot_ns();
	c.handshake = op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB;
	bpf_map_update_elem(&conns, &cookie, &c, BPF_ANY);
	if (op != BPF_SOCK_OPS_TCP_CONNECT_CB || netmon_mode != NETMON_MODE_TRACEPOINT)
		return 1;

	buf = scratch_buf();
	if (!buf)
		return 1;
	e = reserve(NETMON_KIND_ESTABLISH, sizeof(*e));
	if (!e)
		return 1;
	fill_task(&e->task, (struct task_struct *)bpf_get_current_task(), buf);
	e->cookie = cookie;
	e->tuple = c.tuple;
	bsk = skops->sk;
	clear_facts(e, bsk ? (struct sock *)bpf_skc_to_tcp_sock(bsk) : NULL);
	submit(e);
	return 1;
}

SEC("raw_tp/sys_exit")
int netmon_sys_exit(struct bpf_raw_tracepoint_args *ctx)
{
	struct pt_regs *regs = (struct pt_regs *)ctx->args[0];
	long ret = (long)ctx->args[1];
	struct sock *sk;
	long nr;

#if defined(__TARGET_ARCH_x86)
	nr = BPF_CORE_READ(regs, orig_ax);
#elif defined(__TARGET_ARCH_arm64)
	nr = BPF_CORE_READ((struct user_pt_regs *)regs, syscallno);
#else
#error "netmon: syscall number of pt_regs unknown for this architecture"
#endif
	if (ret < 0)
		return 0;
	if (nr == nr_listen) {
		/* listen(fd, backlog) succeeded: the socket is listening, its port bound */
		sk = sock_of_fd(PT_REGS_PARM1_CORE_SYSCALL(regs));
		return emit_sock(NETMON_KIND_LISTEN, sk, sk_cookie(sk));
	}
	if (nr != nr_accept && nr != nr_accept4)
		return 0;
	sk = sock_of_fd(ret);
	return emit_sock(NETMON_KIND_ACCEPT, sk, sk_cookie(sk));
}

/*
 * Every TCP state change, in every mode: the facts a Close reports that the
 * socket no longer shows when the process closes it. A connect's handshake
 * completes (SYN_SENT -> ESTABLISHED); a connection reaches TCP_CLOSE with
 * sk_err set by the kernel (refused, timed out, unreachable, reset), which a
 * later connect() or read() of the process clears.
 */
SEC("raw_tp/inet_sock_set_state")
int netmon_sock_set_state(struct bpf_raw_tracepoint_args *ctx)
{
	struct sock *sk = (struct sock *)ctx->args[0];
	int oldstate = (int)ctx->args[1], newstate = (int)ctx->args[2];
	struct conn *c;
	__u64 cookie;

	if (newstate != TCP_ESTABLISHED && newstate != TCP_CLOSE)
		return 0;
	if (!is_tcp(sk))
		return 0;
	cookie = sk_cookie(sk);
	c = cookie ? bpf_map_lookup_elem(&conns, &cookie) : NULL;
	if (!c)
		return 0;
	if (newstate == TCP_ESTABLISHED && oldstate == TCP_SYN_SENT)
		c->handshake = 1;
	else if (newstate == TCP_CLOSE && !c->err)
		c->err = BPF_CORE_READ(sk, sk_err);
	return 0;
}

/* io_uring's accept (IORING_OP_ACCEPT) never returns through sys_exit: its
 * completion carries the new fd, installed in the submitting task's table.
 * Multishot accepts post their extra completions without the request, and a
 * fixed-file accept's result is a slot, not an fd: neither is seen here. */
#define IORING_OP_ACCEPT 13

SEC("raw_tp/io_uring_complete")
int netmon_io_uring_complete(struct bpf_raw_tracepoint_args *ctx)
{
	struct io_kiocb *req = (struct io_kiocb *)ctx->args[1];
	struct sock *sk;
	long fd;

	if (!req || BPF_CORE_READ(req, opcode) != IORING_OP_ACCEPT)
		return 0;
	/* 5.19+ keep the result in req->cqe; older kernels pass it as args[3] */
	if (bpf_core_field_exists(req->cqe))
		fd = BPF_CORE_READ(req, cqe.res);
	else
		fd = (int)ctx->args[3];
	sk = sock_of_fd(fd);
	return emit_sock(NETMON_KIND_ACCEPT, sk, sk_cookie(sk));
}

/* Every TCP socket gets its cookie when it is made (getting it assigns it):
 * a listener's cookie is read from the socket later, where no helper can
 * assign one. */
SEC("cgroup/sock_create")
int netmon_sock_create(struct bpf_sock *ctx)
{
	if (ctx->protocol == IPPROTO_TCP && ctx->type == SOCK_STREAM)
		bpf_get_socket_cookie(ctx);
	return 1;
}

SEC("cgroup/sock_release")
int netmon_sock_release(struct bpf_sock *ctx)
{
	/* This hook's context is the struct sock itself; its source fields are
	 * not readable through bpf_sock here, so read the socket (CO-RE). */
	if (ctx->protocol != IPPROTO_TCP || ctx->type != SOCK_STREAM ||
	    (ctx->family != AF_INET && ctx->family != AF_INET6))
		return 1;
	emit_close((struct sock *)ctx, bpf_get_socket_cookie(ctx));
	return 1;
}

/* ---- DNS answers (every mode) ------------------------------------------ */

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

/* The network namespace of a packet's receiving socket (or device). */
static __always_inline __u32 skb_netns(struct __sk_buff *ctx)
{
	struct sk_buff *skb = bpf_cast_to_kern_ctx(ctx);
	struct sock *sk = BPF_CORE_READ(skb, sk);

	if (sk)
		return sk_netns(sk);
	return BPF_CORE_READ(skb, dev, nd_net.net, ns.inum);
}

/*
 * Every packet delivered to a socket on the host passes here (attached to the
 * cgroup v2 root, loopback included, so a local stub resolver such as
 * systemd-resolved on 127.0.0.53 is seen). DNS responses, UDP or TCP from
 * port 53, are copied for the enricher, which parses them: nothing untrusted
 * is parsed in the kernel or the privileged sensor. Never drops a packet.
 */
SEC("cgroup_skb/ingress")
int netmon_dns_ingress(struct __sk_buff *skb)
{
	struct netmon_dns_event *e;
	__u32 l4, payload;
	__u64 len;
	__u8 proto;
	__u16 sport;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)))
			return 1;
		if (ip.frag_off & bpf_htons(0x1fff)) /* a later fragment: no header */
			return 1;
		proto = ip.protocol;
		l4 = ip.ihl * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;

		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)))
			return 1;
		proto = ip6.nexthdr; /* extension headers: not DNS as resolvers send it */
		l4 = sizeof(ip6);
	} else {
		return 1;
	}
	if (proto == IPPROTO_UDP) {
		struct udphdr udp;

		if (bpf_skb_load_bytes(skb, l4, &udp, sizeof(udp)))
			return 1;
		sport = udp.source;
		payload = l4 + sizeof(udp);
	} else if (proto == IPPROTO_TCP) {
		struct tcphdr tcp;

		if (bpf_skb_load_bytes(skb, l4, &tcp, sizeof(tcp)))
			return 1;
		sport = tcp.source;
		payload = l4 + tcp.doff * 4;
	} else {
		return 1;
	}
	if (sport != bpf_htons(53) || skb->len <= payload)
		return 1;
	e = reserve(NETMON_KIND_DNS, sizeof(*e));
	if (!e)
		return 1;
	len = skb->len - payload;
	e->orig_len = len > 0xffff ? 0xffff : len;
	if (len > NETMON_MAX_DNS)
		len = NETMON_MAX_DNS;
	/* a 64-bit mask the compiler cannot fold into the checks: the verifier
	 * then knows the length is within the buffer */
	asm volatile("%[len] &= 0x7ff" : [len] "+r"(len));
	if (len < 1 || len > NETMON_MAX_DNS || bpf_skb_load_bytes(skb, payload, e->payload, len)) {
		bpf_ringbuf_discard(e, 0);
		return 1;
	}
	e->len = len;
	e->netns = skb_netns(skb);
	e->transport = proto;
	__builtin_memset(e->_pad0, 0, sizeof(e->_pad0));
	submit(e);
	return 1;
}

/* ---- fentry mode ----------------------------------------------------- */

SEC("fexit/tcp_v4_connect")
int BPF_PROG(netmon_fexit_tcp_v4_connect, struct sock *sk, struct sockaddr *uaddr, int addr_len,
	     int ret)
{
	/* an AF_INET6 socket to a v4-mapped address passes here too: the
	 * tcp_v6_connect exit reports it, once, with its final addresses */
	if (ret || BPF_CORE_READ(sk, __sk_common.skc_family) != AF_INET)
		return 0;
	return emit_sock(NETMON_KIND_ESTABLISH, sk, bpf_get_socket_cookie(sk));
}

SEC("fexit/tcp_v6_connect")
int BPF_PROG(netmon_fexit_tcp_v6_connect, struct sock *sk, struct sockaddr *uaddr, int addr_len,
	     int ret)
{
	if (ret)
		return 0;
	return emit_sock(NETMON_KIND_ESTABLISH, sk, bpf_get_socket_cookie(sk));
}

SEC("fexit/inet_csk_accept")
int BPF_PROG(netmon_fexit_inet_csk_accept)
{
	__u64 ret = 0;
	struct sock *sk;

	/* the argument list changed across kernels; the return value did not */
	bpf_get_func_ret(ctx, &ret);
	sk = (struct sock *)ret;
	if (!sk)
		return 0;
	return emit_sock(NETMON_KIND_ACCEPT, sk, bpf_get_socket_cookie(sk));
}

SEC("fentry/tcp_close")
int BPF_PROG(netmon_fentry_tcp_close, struct sock *sk)
{
	return emit_close(sk, bpf_get_socket_cookie(sk));
}

/* ---- kprobe mode ----------------------------------------------------- */

static __always_inline int connect_entry(struct sock *sk, __u16 family)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();

	/* tcp_v6_connect() of a v4-mapped address calls tcp_v4_connect(): keep
	 * the outer entry, whose return reports the socket */
	if (family && BPF_CORE_READ(sk, __sk_common.skc_family) != family)
		return 0;
	bpf_map_update_elem(&connecting, &tid, &sk, BPF_ANY);
	return 0;
}

static __always_inline int connect_return(int ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct sock **skp = bpf_map_lookup_elem(&connecting, &tid);
	struct sock *sk;

	if (!skp)
		return 0;
	sk = *skp;
	bpf_map_delete_elem(&connecting, &tid);
	if (ret)
		return 0;
	/* the sockops program attached beside assigned the cookie in tcp_connect() */
	return emit_sock(NETMON_KIND_ESTABLISH, sk, sk_cookie(sk));
}

SEC("kprobe/tcp_v4_connect")
int BPF_KPROBE(netmon_kprobe_tcp_v4_connect, struct sock *sk)
{
	return connect_entry(sk, AF_INET);
}

SEC("kretprobe/tcp_v4_connect")
int BPF_KRETPROBE(netmon_kretprobe_tcp_v4_connect, int ret)
{
	return connect_return(ret);
}

SEC("kprobe/tcp_v6_connect")
int BPF_KPROBE(netmon_kprobe_tcp_v6_connect, struct sock *sk)
{
	return connect_entry(sk, 0);
}

SEC("kretprobe/tcp_v6_connect")
int BPF_KRETPROBE(netmon_kretprobe_tcp_v6_connect, int ret)
{
	return connect_return(ret);
}

SEC("kretprobe/inet_csk_accept")
int BPF_KRETPROBE(netmon_kretprobe_inet_csk_accept, struct sock *sk)
{
	return emit_sock(NETMON_KIND_ACCEPT, sk, sk_cookie(sk));
}

SEC("kprobe/tcp_close")
int BPF_KPROBE(netmon_kprobe_tcp_close, struct sock *sk)
{
	return emit_close(sk, sk_cookie(sk));
}

/* ---- exec and exit (every mode) ----------------------------------- */

SEC("raw_tp/sched_process_exec")
int netmon_exec(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *task = (struct task_struct *)ctx->args[0];
	struct linux_binprm *bprm = (struct linux_binprm *)ctx->args[2];
	struct netmon_exec_event *e;
	unsigned long arg_start, arg_end, args_at, len;
	const struct cred *cred;
	struct file *file;
	__u32 secure = 0;
	char *buf = scratch_buf();
	long n = 0;

	if (!buf)
		return 0;
	e = reserve(NETMON_KIND_EXEC, sizeof(*e));
	if (!e)
		return 0;
	fill_task(&e->task, task, buf);
	e->flags = 0;
	e->_pad0 = 0;

	file = BPF_CORE_READ(bprm, file);
	e->flags |= read_abs_path(e->path, buf, &file->f_path);

	cred = BPF_CORE_READ(task, real_cred);
	if (BPF_CORE_READ(cred, euid.val) != BPF_CORE_READ(cred, uid.val))
		secure |= NETMON_SECUREEXEC_SETUID;
	if (BPF_CORE_READ(cred, egid.val) != BPF_CORE_READ(cred, gid.val))
		secure |= NETMON_SECUREEXEC_SETGID;
	/* the kernel marks an exec that gained privilege; not through set[ug]id
	 * means through the file's capabilities */
	if (!secure && BPF_CORE_READ_BITFIELD_PROBED(bprm, secureexec))
		secure |= NETMON_SECUREEXEC_FILE_CAPS;
	if (BPF_CORE_READ(file, f_inode, __i_nlink) == 0)
		secure |= NETMON_SECUREEXEC_FILELESS_EXEC;
	e->secureexec = secure;

	/* argv lives in the new mm: skip argv[0] (of any length up to
	 * NETMON_ARGV0_CHUNKS * 4095 bytes), copy the rest */
	arg_start = BPF_CORE_READ(task, mm, arg_start);
	arg_end = BPF_CORE_READ(task, mm, arg_end);
	e->args_len = 0;
	args_at = arg_start;
	for (int i = 0; i < NETMON_ARGV0_CHUNKS; i++) {
		n = bpf_probe_read_user_str(buf, NETMON_MAX_PATH, (void *)args_at);
		if (n <= 0)
			break;
		if (n < NETMON_MAX_PATH) {
			args_at += n; /* past argv[0]'s NUL */
			break;
		}
		args_at += NETMON_MAX_PATH - 1; /* no NUL yet: read on */
		n = 0;
	}
	if (n <= 0) {
		if (arg_end > arg_start)
			e->flags |= NETMON_EXEC_ARGS_TRUNCATED; /* argv[0] too long to skip */
	} else if (args_at < arg_end) {
		len = arg_end - args_at;
		if (len > NETMON_MAX_ARGS) {
			len = NETMON_MAX_ARGS;
			e->flags |= NETMON_EXEC_ARGS_TRUNCATED;
		}
		/* keep the verifier's bound through clang's rewrites */
		asm volatile("%[len] &= 0x1fff" : [len] "+r"(len));
		if (len <= NETMON_MAX_ARGS && !bpf_probe_read_user(e->args, len, (void *)args_at))
			e->args_len = len;
	}
	submit(e);
	return 0;
}

SEC("raw_tp/sched_process_fork")
int netmon_fork(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *parent = (struct task_struct *)ctx->args[0];
	struct task_struct *child = (struct task_struct *)ctx->args[1];
	struct netmon_fork_event *e;
	char *buf;

	/* a new thread is not a new process */
	if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return 0;
	buf = scratch_buf();
	if (!buf)
		return 0;
	e = reserve(NETMON_KIND_FORK, sizeof(*e));
	if (!e)
		return 0;
	fill_task(&e->task, child, buf);
	e->parent_pid = BPF_CORE_READ(parent, tgid);
	e->parent_start_time_ns = BPF_CORE_READ(parent, group_leader, start_boottime);
	e->_pad0 = 0;
	submit(e);
	return 0;
}

SEC("raw_tp/sched_process_exit")
int netmon_exit(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *task = (struct task_struct *)ctx->args[0];
	struct netmon_exit_event *e;

	/* one record per process: only when the last thread goes */
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;
	e = reserve(NETMON_KIND_EXIT, sizeof(*e));
	if (!e)
		return 0;
	e->start_time_ns = BPF_CORE_READ(task, group_leader, start_boottime);
	e->pid = BPF_CORE_READ(task, tgid);
	e->tid = BPF_CORE_READ(task, pid);
	e->exit_code = BPF_CORE_READ(task, exit_code);
	e->_pad0 = 0;
	submit(e);
	return 0;
}
