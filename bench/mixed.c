/* bench/mixed.c — mixed sizes 8 B..32 KiB, random lifetimes, N threads.
 *
 * Each thread replays its own pre-generated script of operations over a
 * window of 4096 slots: an empty slot gets a new block (7/8 of sizes in
 * 8..512 B, 1/8 in 8 B..32 KiB, first byte written), a full slot is freed.
 * The script is made before timing, so the timed loop is only allocator work
 * plus a store. The allocator is either the hmalloc API (argv[1] = "hmalloc")
 * or malloc/free — run under LD_PRELOAD to measure jemalloc, mimalloc,
 * tcmalloc or our libmemtier.
 *
 * usage: mixed hmalloc|malloc THREADS OPS_PER_THREAD
 * prints: one line "ns_per_op=<x>" (median of 5 repetitions).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "hmalloc.h"

enum { SLOTS = 4096, REPS = 5 };
static int use_hmalloc;
static long ops;
static pthread_barrier_t start_line;

typedef struct { uint16_t slot; uint16_t pad; uint32_t size; } op_t;
typedef struct { op_t *script; double seconds; } job_t;

static uint64_t next_random(uint64_t *s) { /* xorshift64* */
  *s ^= *s >> 12; *s ^= *s << 25; *s ^= *s >> 27; return *s * 2685821657736338717ull;
}

static double now(void) {
  struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9;
}

static void *worker(void *arg) {
  job_t *job = arg;
  void *slots[SLOTS] = {0};
  pthread_barrier_wait(&start_line);
  double t0 = now();
  for (long i = 0; i < ops; i++) {
    const op_t *op = &job->script[i];
    void **s = &slots[op->slot];
    if (*s) {
      if (use_hmalloc) hfree(*s); else free(*s);
      *s = 0;
    } else {
      *s = use_hmalloc ? hmalloc(op->size) : malloc(op->size);
      *(volatile char *)*s = 1;
    }
  }
  for (int k = 0; k < SLOTS; k++) { if (use_hmalloc) hfree(slots[k]); else free(slots[k]); }
  job->seconds = now() - t0;
  return 0;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  if (argc != 4) { fprintf(stderr, "usage: mixed hmalloc|malloc THREADS OPS\n"); return 2; }
  use_hmalloc = strcmp(argv[1], "hmalloc") == 0;
  int threads = atoi(argv[2]);
  ops = atol(argv[3]);
  if (threads < 1 || threads > 64 || ops < 1) { fprintf(stderr, "mixed: bad THREADS or OPS\n"); return 2; }
  job_t jobs[64];
  for (int t = 0; t < threads; t++) {
    uint64_t seed = 0x9e3779b97f4a7c15ull * (t + 1);
    jobs[t].script = calloc(ops, sizeof(op_t)); /* plain calloc: not timed */
    for (long i = 0; i < ops; i++) {
      uint64_t r = next_random(&seed);
      jobs[t].script[i].slot = r & (SLOTS - 1);
      uint32_t q = (uint32_t)(r >> 32);
      jobs[t].script[i].size = (q & 7) ? 8 + (q >> 3) % 505 : 8 + (q >> 3) % 32761;
    }
  }
  double per_op[REPS];
  for (int rep = 0; rep < REPS; rep++) {
    pthread_t tid[64];
    pthread_barrier_init(&start_line, 0, threads);
    for (int t = 0; t < threads; t++) pthread_create(&tid[t], 0, worker, &jobs[t]);
    double worst = 0;
    for (int t = 0; t < threads; t++) { pthread_join(tid[t], 0); if (jobs[t].seconds > worst) worst = jobs[t].seconds; }
    pthread_barrier_destroy(&start_line);
    per_op[rep] = worst / ops * 1e9;
  }
  qsort(per_op, REPS, sizeof per_op[0], cmp);
  printf("ns_per_op=%.2f\n", per_op[REPS / 2]);
  return 0;
}
