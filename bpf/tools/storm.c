// SPDX-License-Identifier: Apache-2.0
/*
 * Loopback connect/accept/close storm for bench/src/probes.ts: one server
 * thread (accept, close) and one client thread (socket, connect, close) on
 * 127.0.0.1, N connections (at most RATE per second when given: the
 * end-to-end benchmark's steady load), then one JSON line on stdout:
 *   {"connections":N,"seconds":S,"rate":R,"errors":E}
 * Identical across runs; nothing but loopback is touched.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int listen_fd;
static long total;

static void *server(void *arg)
{
	(void)arg;
	for (long i = 0; i < total; i++) {
		int fd = accept(listen_fd, NULL, NULL);

		if (fd < 0) {
			if (errno == EINTR)
				continue;
			perror("accept");
			exit(1);
		}
		close(fd);
	}
	return NULL;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct sockaddr_in addr = { .sin_family = AF_INET };
	socklen_t len = sizeof(addr);
	long errors = 0;
	pthread_t srv;
	int one = 1;
	double t0, t1, rate;

	total = argc > 1 ? atol(argv[1]) : 50000;
	rate = argc > 2 ? atof(argv[2]) : 0;
	if (total <= 0 || rate < 0) {
		fprintf(stderr, "usage: storm [connections [rate-per-second]]\n");
		return 2;
	}
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&addr, sizeof(addr)) ||
	    listen(listen_fd, 4096) || getsockname(listen_fd, (struct sockaddr *)&addr, &len)) {
		perror("listen");
		return 1;
	}
	if (pthread_create(&srv, NULL, server, NULL)) {
		perror("pthread_create");
		return 1;
	}
	t0 = now();
	for (long i = 0; i < total;) {
		int fd;

		/* Paced: connection i is not made before t0 + i / rate. */
		while (rate > 0 && now() < t0 + i / rate) {
			struct timespec pause = { 0, 200000 };

			nanosleep(&pause, NULL);
		}
		fd = socket(AF_INET, SOCK_STREAM, 0);

		if (fd < 0) {
			perror("socket");
			return 1;
		}
		if (connect(fd, (struct sockaddr *)&addr, sizeof(addr))) {
			/* out of ephemeral ports for a moment: retry, count it */
			errors++;
			close(fd);
			if (errors > total) {
				perror("connect");
				return 1;
			}
			continue;
		}
		close(fd);
		i++;
	}
	pthread_join(srv, NULL);
	t1 = now();
	close(listen_fd);
	printf("{\"connections\":%ld,\"seconds\":%.6f,\"rate\":%.1f,\"errors\":%ld}\n", total,
	       t1 - t0, total / (t1 - t0), errors);
	return 0;
}
