// shm-spin-pingpong.c: the spinning round trip a shared-memory ring is
// compared against (issue 17). Two processes share one page (mmap
// MAP_SHARED, then fork) and busy-spin on one cache line of it: the parent
// stores n into the "ping" word, the child waits to see n and stores n
// into the "pong" word, the parent waits to see n. Nothing else: no
// framing, no sleeping, no system call. Build and run:
//   gcc -O2 -o /tmp/spin testdata/shm-spin-pingpong.c && /tmp/spin [rounds] [parent-cpu child-cpu] [bytes]
// With two CPU numbers, the parent and the child pin themselves to them
// (-1 -1: not pinned). With bytes > 0 each side also copies a message of
// that many bytes into its own cache-line-aligned buffer on the page
// before it stores its word, and the other copies it out after seeing
// the word: what a ring moves per message, without the ring.
// Prints: "C spin pingpong rounds R median M ns mean A ns p99 P ns".
#define _GNU_SOURCE
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1000000000LL + t.tv_nsec; }
static int cmp(const void *a, const void *b) { long long x = *(const long long *)a, y = *(const long long *)b; return x < y ? -1 : x > y; }
static void pin(int cpu) {
	if (cpu < 0) return;
	cpu_set_t s; CPU_ZERO(&s); CPU_SET(cpu, &s);
	if (sched_setaffinity(0, sizeof s, &s) != 0) { perror("sched_setaffinity"); exit(1); }
}

int main(int argc, char **argv) {
	long rounds = argc > 1 ? atol(argv[1]) : 1000000;
	int pcpu = argc > 3 ? atoi(argv[2]) : -1, ccpu = argc > 3 ? atoi(argv[3]) : -1;
	long bytes = argc > 4 ? atol(argv[4]) : 0;
	if (bytes < 0 || bytes > 1024) { fprintf(stderr, "bytes: want 0 to 1024\n"); return 2; }
	// One cache line: ping at offset 0, pong at offset 8; the messages, if
	// any, at 1 KiB and 2 KiB, each on lines of its own.
	_Atomic long *line = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (line == MAP_FAILED) { perror("mmap"); return 1; }
	_Atomic long *ping = line, *pong = line + 1;
	char *pingmsg = (char *)line + 1024, *pongmsg = (char *)line + 2048, local[1024] = {1};
	long warm = rounds / 10 + 1000, total = warm + rounds;
	pid_t p = fork();
	if (p == 0) {
		pin(ccpu);
		for (long n = 1; n <= total; n++) {
			while (atomic_load_explicit(ping, memory_order_acquire) != n) ;
			if (bytes) { memcpy(local, pingmsg, bytes); memcpy(pongmsg, local, bytes); }
			atomic_store_explicit(pong, n, memory_order_release);
		}
		_exit(0);
	}
	pin(pcpu);
	long long *s = malloc(sizeof(long long) * rounds), t0 = 0;
	for (long n = 1; n <= total; n++) {
		if (n == warm + 1) t0 = now();
		long long t = n > warm ? now() : 0;
		if (bytes) { local[0] = (char)n; memcpy(pingmsg, local, bytes); }
		atomic_store_explicit(ping, n, memory_order_release);
		while (atomic_load_explicit(pong, memory_order_acquire) != n) ;
		if (bytes) memcpy(local, pongmsg, bytes);
		if (n > warm) s[n - warm - 1] = now() - t;
	}
	long long el = now() - t0;
	waitpid(p, 0, 0);
	qsort(s, rounds, sizeof(long long), cmp);
	printf("C spin pingpong rounds %ld median %lld ns mean %lld ns p99 %lld ns\n", rounds, s[rounds / 2], el / rounds, s[rounds * 99 / 100]);
	return 0;
}
