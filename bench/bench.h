/* bench/bench.h — what every C workload of bench/ shares.
 *
 * One source, two builds: compiled with -DBENCH_HMALLOC a workload allocates
 * through the hmalloc API (hmalloc/hfree/hrealloc, linked against
 * libhmalloc.so); without it, through malloc/free/realloc, so the same binary
 * measures glibc (no preload) and every peer under LD_PRELOAD (jemalloc,
 * mimalloc, tcmalloc, our libmemtier) without carrying our library along.
 * bench/run.ts builds both as bench/out/NAME-hmalloc and bench/out/NAME-malloc.
 *
 * Method shared by the timed workloads: every random choice (sizes, slots,
 * lifetimes) is made before timing, into a script the timed loop replays, so
 * the loop is allocator work plus a store; each workload repeats its timed
 * part BENCH_REPS times (environment, default 5) and prints the median.
 * Output is `key=value` lines on stdout, nothing else; the first key is the
 * workload's headline number.
 *
 * Under valgrind --tool=callgrind, BENCH_REGION_BEGIN/END (a few no-op
 * instructions otherwise) zero callgrind's counters when a repetition's timed
 * region starts and dump them, as a part labelled "bench region", when it
 * ends: bench/run.ts reads that part's totals, which leave out script
 * generation and setup. Counters are process-wide, so only the main thread
 * calls them, around thread creation .. join (thread start-up costs a few
 * thousand instructions against millions of allocator ones).
 */
#ifndef TIERMEM_BENCH_H
#define TIERMEM_BENCH_H

#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <valgrind/callgrind.h>

#ifdef BENCH_HMALLOC
#include "hmalloc.h"
#define BENCH_ALLOCATOR "hmalloc"
static inline void *b_malloc(size_t n) { return hmalloc(n); }
static inline void *b_realloc(void *p, size_t n) { return hrealloc(p, n); }
static inline void b_free(void *p) { hfree(p); }
#else
#define BENCH_ALLOCATOR "malloc"
static inline void *b_malloc(size_t n) { return malloc(n); }
static inline void *b_realloc(void *p, size_t n) { return realloc(p, n); }
static inline void b_free(void *p) { free(p); }
#endif

#define BENCH_REPS_MAX 64
#define BENCH_REGION_BEGIN() CALLGRIND_ZERO_STATS
#define BENCH_REGION_END() CALLGRIND_DUMP_STATS_AT("bench region")

/* xorshift64*: fast, seedable, the same stream on every run. */
static inline uint64_t bench_random(uint64_t *state) {
  *state ^= *state >> 12;
  *state ^= *state << 25;
  *state ^= *state >> 27;
  return *state * 2685821657736338717ull;
}

static inline double bench_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Repetitions from BENCH_REPS (1..BENCH_REPS_MAX, default 5). */
static inline int bench_reps(void) {
  const char *s = getenv("BENCH_REPS");
  int reps = s ? atoi(s) : 5;
  if (reps < 1 || reps > BENCH_REPS_MAX) {
    fprintf(stderr, "bench: BENCH_REPS must be 1..%d, got %s\n", BENCH_REPS_MAX, s);
    exit(2);
  }
  return reps;
}

static int bench_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Median of v[0..n) (sorts v). */
static inline double bench_median(double *v, int n) {
  qsort(v, (size_t)n, sizeof v[0], bench_cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* A "Key:   N kB" field of /proc/self/status in KiB (VmRSS, VmHWM, VmSize), -1 if absent.
 * Reads with read(2) into a stack buffer: no allocation while measuring. */
#include <fcntl.h>
#include <unistd.h>
static inline long bench_status_kib(const char *key) {
  char buf[8192];
  int fd = open("/proc/self/status", O_RDONLY);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = 0;
  size_t klen = strlen(key);
  for (char *line = buf; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : 0) {
    if (strncmp(line, key, klen) == 0 && line[klen] == ':') return strtol(line + klen + 1, 0, 10);
  }
  return -1;
}

/* Parses a positive count argument or exits with a message naming it. */
static inline long bench_count(const char *prog, const char *name, const char *text) {
  char *end = 0;
  long v = strtol(text, &end, 10);
  if (!*text || *end || v < 1) {
    fprintf(stderr, "%s: %s must be a positive integer, got '%s'\n", prog, name, text);
    exit(2);
  }
  return v;
}

#endif /* TIERMEM_BENCH_H */
