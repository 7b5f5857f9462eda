// pipes-pingpong.c: the C reference for "ipcplay pipes bench", the raw path
// in plain C, to compare against on the same machine. Like the lab, it
// measures between a parent and a forked child:
//
//   - the round trip of one byte over two pipes: 200 warm-up trips, then
//     ROUNDS timed ones (median and p99), blocking read(2) and write(2);
//   - the throughput of MEGABYTES MiB in WRITE-KiB writes through a pipe of
//     the default size and one of 1 MiB (F_SETPIPE_SZ), timed from the
//     byte that tells the child to start until the parent has read all.
//
// The defaults match the lab's (20000 rounds, 64 MiB, 64 KiB writes):
//
//   gcc -O2 -o /tmp/pp testdata/pipes-pingpong.c && taskset -c 0 /tmp/pp
//   /tmp/pp [ROUNDS [MEGABYTES [WRITE-KiB [MODE]]]]
//
// MODE picks what runs: "all" (the default: the three lines), "rtt" (the
// round trip only) or "thr1m" (the throughput through the 1 MiB pipe
// only); "ipcplay bench" runs the last two as its c-pipe reference.
//
// next to "taskset -c 0 ipcplay pipes bench --write 64K". The pipelab
// tests compile and run it when a C compiler is installed.
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

// read_some reads up to n bytes, retrying on EINTR; 0 is EOF.
static size_t read_some(int fd, char *p, size_t n) {
	for (;;) {
		ssize_t r = read(fd, p, n);
		if (r >= 0) return (size_t)r;
		if (errno != EINTR) die("read");
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
	char c = 'p';
	if (pid == 0) {
		close(up[1]);
		close(down[0]);
		while (read_some(up[0], &c, 1) == 1) full_write(down[1], &c, 1);
		_exit(0);
	}
	close(up[0]);
	close(down[1]);
	int64_t *rtt = malloc(sizeof(int64_t) * (size_t)rounds);
	if (rtt == NULL) die("malloc");
	for (int i = 0; i < 200 + rounds; i++) {
		int64_t t0 = now_ns();
		full_write(up[1], &c, 1);
		if (read_some(down[0], &c, 1) != 1) die("read: early EOF");
		if (i >= 200) rtt[i - 200] = now_ns() - t0;
	}
	close(up[1]);
	close(down[0]);
	waitpid(pid, NULL, 0);
	qsort(rtt, (size_t)rounds, sizeof(int64_t), cmp64);
	printf("C pingpong median %.2f us p99 %.2f us (%d rounds)\n",
	       rtt[rounds / 2] / 1e3, rtt[(int64_t)rounds * 99 / 100] / 1e3, rounds);
	free(rtt);
}

static void throughput(int64_t total, size_t chunk, int pipe_size) {
	int q[2], go[2];
	if (pipe(q) || pipe(go)) die("pipe");
	if (pipe_size > 0 && fcntl(q[1], F_SETPIPE_SZ, pipe_size) < 0) die("F_SETPIPE_SZ");
	int size = fcntl(q[1], F_GETPIPE_SZ);
	char *buf = malloc(chunk);
	if (buf == NULL) die("malloc");
	memset(buf, 'a', chunk);
	pid_t pid = fork();
	if (pid < 0) die("fork");
	if (pid == 0) {
		close(q[0]);
		close(go[1]);
		char x;
		if (read_some(go[0], &x, 1) != 1) _exit(1);
		for (int64_t left = total; left > 0; left -= (int64_t)chunk)
			full_write(q[1], buf, left < (int64_t)chunk ? (size_t)left : chunk);
		_exit(0);
	}
	close(q[1]);
	close(go[0]);
	int64_t t0 = now_ns(), got = 0;
	full_write(go[1], "g", 1);
	while (got < total) {
		size_t r = read_some(q[0], buf, chunk);
		if (r == 0) break;
		got += (int64_t)r;
	}
	int64_t el = now_ns() - t0;
	int status;
	waitpid(pid, &status, 0);
	close(q[0]);
	close(go[1]);
	free(buf);
	if (got != total || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "throughput: got %lld of %lld bytes\n", (long long)got, (long long)total);
		exit(1);
	}
	printf("C throughput pipe %d bytes, %zu-byte writes: %.2f GB/s\n", size, chunk, (double)got / (double)el);
}

int main(int argc, char **argv) {
	int rounds = argc > 1 ? atoi(argv[1]) : 20000;
	long mb = argc > 2 ? atol(argv[2]) : 64;
	long kib = argc > 3 ? atol(argv[3]) : 64;
	const char *mode = argc > 4 ? argv[4] : "all";
	int all = strcmp(mode, "all") == 0, rtt = strcmp(mode, "rtt") == 0, thr1m = strcmp(mode, "thr1m") == 0;
	if (rounds < 100 || rounds > 1000000 || mb < 1 || mb > 1024 || kib < 1 || kib > 4096 || !(all || rtt || thr1m)) {
		fprintf(stderr, "usage: pipes-pingpong [ROUNDS 100..1000000 [MEGABYTES 1..1024 [WRITE-KiB 1..4096 [all|rtt|thr1m]]]]\n");
		return 2;
	}
	if (all || rtt) pingpong(rounds);
	if (all) throughput((int64_t)mb << 20, (size_t)kib << 10, 0);
	if (all || thr1m) throughput((int64_t)mb << 20, (size_t)kib << 10, 1 << 20);
	return 0;
}
