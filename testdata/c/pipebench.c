// pipebench: the C reference for ipcplay's pipe benchmarks.
//
// It measures, between a parent and a forked child, what "ipcplay pipes
// bench" measures between Go processes: the round trip of one byte over two
// pipes (blocking read/write, no poller), and the throughput of 64 KiB
// writes through a pipe of a given size. It prints one JSON object per line.
//
//   cc -O2 -o pipebench pipebench.c && ./pipebench [rounds] [megabytes]
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what) {
	perror(what);
	exit(1);
}

static void full_write(int fd, const char *p, size_t n) {
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR) continue;
			die("write");
		}
		p += w;
		n -= (size_t)w;
	}
}

static int cmp64(const void *a, const void *b) {
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static void pingpong(int rounds) {
	int up[2], down[2];
	if (pipe(up) || pipe(down)) die("pipe");
	pid_t pid = fork();
	if (pid < 0) die("fork");
	char c = 'x';
	if (pid == 0) {
		close(up[1]);
		close(down[0]);
		for (;;) {
			ssize_t r = read(up[0], &c, 1);
			if (r <= 0) _exit(r < 0);
			full_write(down[1], &c, 1);
		}
	}
	close(up[0]);
	close(down[1]);
	int warm = rounds / 10;
	int64_t *rtt = malloc(sizeof(int64_t) * (size_t)rounds);
	for (int i = 0; i < warm + rounds; i++) {
		int64_t t0 = now_ns();
		full_write(up[1], &c, 1);
		if (read(down[0], &c, 1) != 1) die("read");
		if (i >= warm) rtt[i - warm] = now_ns() - t0;
	}
	close(up[1]);
	close(down[0]);
	waitpid(pid, NULL, 0);
	qsort(rtt, (size_t)rounds, sizeof(int64_t), cmp64);
	printf("{\"test\":\"pingpong\",\"path\":\"c-blocking\",\"mode\":\"procs\",\"rounds\":%d,"
	       "\"rtt_median_us\":%.3f,\"rtt_p99_us\":%.3f}\n",
	       rounds, rtt[rounds / 2] / 1e3, rtt[(int)(rounds * 0.99)] / 1e3);
	free(rtt);
}

static void throughput(long total, int pipe_size) {
	int p[2];
	if (pipe(p)) die("pipe");
	if (pipe_size > 0 && fcntl(p[1], F_SETPIPE_SZ, pipe_size) < 0) die("F_SETPIPE_SZ");
	int size = fcntl(p[1], F_GETPIPE_SZ);
	enum { chunk = 64 << 10 };
	static char buf[chunk];
	memset(buf, 'y', sizeof buf);
	int64_t t0 = now_ns();
	pid_t pid = fork();
	if (pid < 0) die("fork");
	if (pid == 0) {
		close(p[0]);
		for (long sent = 0; sent < total; sent += chunk) full_write(p[1], buf, chunk);
		_exit(0);
	}
	close(p[1]);
	long got = 0;
	for (;;) {
		ssize_t r = read(p[0], buf, chunk);
		if (r < 0) {
			if (errno == EINTR) continue;
			die("read");
		}
		if (r == 0) break;
		got += r;
	}
	int64_t el = now_ns() - t0;
	close(p[0]);
	waitpid(pid, NULL, 0);
	printf("{\"test\":\"throughput\",\"path\":\"c-blocking\",\"mode\":\"procs\",\"pipe_size\":%d,"
	       "\"bytes\":%ld,\"gbps\":%.3f}\n",
	       size, got, (double)got / (double)el);
}

int main(int argc, char **argv) {
	int rounds = argc > 1 ? atoi(argv[1]) : 100000;
	long mb = argc > 2 ? atol(argv[2]) : 1024;
	if (rounds < 100 || mb < 1) {
		fprintf(stderr, "usage: pipebench [rounds >= 100] [megabytes >= 1]\n");
		return 2;
	}
	pingpong(rounds);
	throughput(mb << 20, 0);
	throughput(mb << 20, 1 << 20);
	return 0;
}
