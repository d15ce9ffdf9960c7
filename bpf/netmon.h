/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Netmon: the records the kernel side writes into the ring buffer and the
 * constants both sides share. Fixed-width types and explicit padding only:
 * the C++ bridge static_asserts every size and offset below, and the
 * TypeScript decoder (services/sensor/src/probe/layout.ts) mirrors them.
 * Every record starts with struct netmon_hdr; all are 8-byte aligned.
 */
#ifndef __NETMON_H
#define __NETMON_H

#define NETMON_COMM_LEN 16	  /* TASK_COMM_LEN */
#define NETMON_MAX_CGROUP_PATH 256 /* cgroup v2 path, NUL-terminated */
#define NETMON_MAX_CGROUP_DEPTH 16 /* cgroup levels walked in the kernel */
#define NETMON_MAX_PATH 4096	   /* absolute binary path, NUL-terminated (PATH_MAX) */
#define NETMON_MAX_ARGS 4096	   /* argv[1..], NUL-separated, not terminated */
#define NETMON_MAX_PATH_DEPTH 128  /* path components walked in the kernel */
#define NETMON_ARGV0_CHUNKS 4	   /* argv[0] is skipped in steps of 4095 bytes */
#define NETMON_MAX_CONNS 65536	   /* sockets tracked from connect/accept to close */
#define NETMON_MAX_DNS 1232	   /* DNS payload bytes copied (EDNS's usual UDP size) */

/* Kinds of record; also the index into the per-CPU `lost` counters. */
enum netmon_kind {
	NETMON_KIND_ESTABLISH = 1, /* a connect() the kernel accepted (SYN on its way) */
	NETMON_KIND_ACCEPT = 2,	   /* accept()/accept4() returned a TCP socket */
	NETMON_KIND_CLOSE = 3,	   /* a TCP socket was released (tcp_close path) */
	NETMON_KIND_EXEC = 4,	   /* a task completed execve() */
	NETMON_KIND_EXIT = 5,	   /* the last thread of a process exited */
	NETMON_KIND_FORK = 6,	   /* a process forked a new process (not a thread) */
	NETMON_KIND_LISTEN = 7,	   /* listen() put a TCP socket into the listening state */
	NETMON_KIND_DNS = 8,	   /* a DNS response (source port 53) reached a socket of the host */
	NETMON_KIND_MAX = 9,
};

/* Attach modes; written by the loader into the `const volatile` setting. */
enum netmon_mode {
	NETMON_MODE_FENTRY = 1,
	NETMON_MODE_KPROBE = 2,
	NETMON_MODE_TRACEPOINT = 3,
};

/* struct netmon_tuple.flags */
#define NETMON_SOCK_V4MAPPED 0x1  /* AF_INET6 socket talking IPv4: addresses given as IPv4 */
#define NETMON_SOCK_UNTRACKED 0x2 /* close of a connection not seen opening (older than the sensor) */
#define NETMON_SOCK_HANDSHAKE 0x4 /* close of a connection whose TCP handshake completed */

/* struct netmon_exec_event.secureexec */
#define NETMON_SECUREEXEC_SETUID 0x1	    /* euid != uid after exec */
#define NETMON_SECUREEXEC_SETGID 0x2	    /* egid != gid after exec */
#define NETMON_SECUREEXEC_FILE_CAPS 0x4	    /* privilege gained, not through set[ug]id */
#define NETMON_SECUREEXEC_FILELESS_EXEC 0x8 /* executable has no link on disk (memfd, deleted) */

/* struct netmon_exec_event.flags */
#define NETMON_EXEC_ARGS_TRUNCATED 0x1 /* args cut at NETMON_MAX_ARGS (or argv[0] too long) */
#define NETMON_EXEC_PATH_TRUNCATED 0x2 /* path cut (too long or too deep) */

struct netmon_hdr {
	__u64 ts_ns; /* CLOCK_BOOTTIME nanoseconds when the kernel saw the event */
	__u16 kind;  /* enum netmon_kind */
	__u16 size;  /* bytes in this record, header included */
	__u32 _pad0; /* zero */
};

/* Facts of the task in context, taken with every socket and exec record. */
struct netmon_task {
	__u64 start_time_ns;   /* group leader's start_boottime (ns since boot) */
	__u64 cgroup_id;       /* cgroup v2 id (kernfs node id) of the task */
	__u64 cap_inheritable; /* capability masks of the task's credentials */
	__u64 cap_permitted;
	__u64 cap_effective;
	__u32 pid;  /* thread-group id (init pid namespace) */
	__u32 tid;  /* thread id */
	__u32 ppid; /* real parent's thread-group id */
	__u32 uid;  /* real uid */
	__u32 euid; /* effective uid */
	__u32 auid; /* login uid; 4294967295 when unset */
	char comm[NETMON_COMM_LEN]; /* task comm, NUL-terminated */
	/* cgroup v2 path from the hierarchy root, "/" for the root; when longer
	 * than the buffer, its leaf-most directories are kept (the container's) */
	char cgroup_path[NETMON_MAX_CGROUP_PATH];
};

/* The two ends of a TCP socket. */
struct netmon_tuple {
	__u8 saddr[16]; /* local address: IPv4 in the first 4 bytes, or IPv6 */
	__u8 daddr[16]; /* remote address, same encoding */
	__u16 sport;	/* local port, host order */
	__u16 dport;	/* remote port, host order */
	__u16 family;	/* AF_INET or AF_INET6: the family of the addresses above */
	__u8 flags;	/* NETMON_SOCK_* */
	__u8 state;	/* TCP state of the socket when seen (TCP_ESTABLISHED = 1...) */
};

/* NETMON_KIND_ESTABLISH, NETMON_KIND_ACCEPT, NETMON_KIND_CLOSE, NETMON_KIND_LISTEN */
struct netmon_sock_event {
	struct netmon_hdr hdr;
	struct netmon_task task;
	struct netmon_tuple tuple; /* a Close carries its Establish's or Accept's tuple */
	__u64 cookie;		   /* socket cookie; the same on a socket's open and close */
	/* The facts below are a Close's (0 on the other kinds), but for netns. */
	__u64 open_ns;	      /* CLOCK_BOOTTIME of the connect or accept; 0 when not seen */
	__u64 bytes_acked;    /* payload bytes the peer acknowledged (tcp_sock.bytes_acked less SYN and FIN) */
	__u64 bytes_received; /* payload bytes received (tcp_sock.bytes_received less the peer's FIN) */
	__u32 netns;	      /* inode number of the socket's network namespace */
	__u16 err;	      /* errno the connection ended with (ECONNREFUSED, ETIMEDOUT...) */
	__u16 _pad0;	      /* zero */
};

/* NETMON_KIND_EXEC */
struct netmon_exec_event {
	struct netmon_hdr hdr;
	struct netmon_task task; /* facts after the exec (new comm, new creds) */
	__u32 secureexec;	 /* NETMON_SECUREEXEC_* */
	__u16 args_len;		 /* bytes used in args */
	__u8 flags;		 /* NETMON_EXEC_* */
	__u8 _pad0;		 /* zero */
	char path[NETMON_MAX_PATH]; /* absolute path of the executable, NUL-terminated */
	char args[NETMON_MAX_ARGS]; /* argv[1..] NUL-separated (args_len bytes) */
};

/* NETMON_KIND_FORK */
struct netmon_fork_event {
	struct netmon_hdr hdr;
	struct netmon_task task;	    /* the child */
	__u64 parent_start_time_ns; /* the forking process's start_boottime */
	__u32 parent_pid;	    /* the forking process's thread-group id */
	__u32 _pad0;		    /* zero */
};

/* NETMON_KIND_DNS: the payload only; the (unprivileged) enricher parses it */
struct netmon_dns_event {
	struct netmon_hdr hdr;
	__u32 netns;	 /* inode number of the receiving socket's network namespace */
	__u16 len;	 /* payload bytes copied below */
	__u16 orig_len;	 /* payload bytes in the packet */
	__u8 transport;	 /* IPPROTO_UDP or IPPROTO_TCP (a TCP payload starts with the 2-byte length) */
	__u8 _pad0[7];	 /* zero */
	__u8 payload[NETMON_MAX_DNS];
};

/* NETMON_KIND_EXIT */
struct netmon_exit_event {
	struct netmon_hdr hdr;
	__u64 start_time_ns; /* group leader's start_boottime, pairs with the exec */
	__u32 pid;	     /* thread-group id */
	__u32 tid;	     /* the exiting (last) thread */
	__u32 exit_code;     /* wait(2) status: code << 8 | signal */
	__u32 _pad0;	     /* zero */
};

#endif /* __NETMON_H */
