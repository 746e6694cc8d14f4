/* bench/mixed.c — mixed sizes 8 B..32 KiB, random lifetimes, N threads.
 *
 * Each thread replays its own pre-generated script of operations over a
 * window of 4096 slots: an empty slot gets a new block (7/8 of sizes in
 * 8..512 B, 1/8 in 8 B..32 KiB, first byte written), a full slot is freed.
 * The script is made before timing, so the timed loop is only allocator work
 * plus a store. A repetition's time is its slowest thread's; the median of
 * BENCH_REPS repetitions is printed (see bench.h for the two builds).
 *
 * usage: mixed THREADS OPS_PER_THREAD
 * prints: ns_per_op=<median>  ops=<operations per thread and repetition>
 */
#include <pthread.h>
#include "bench.h"

enum { SLOTS = 4096, THREADS_MAX = 64 };
static long ops;
static pthread_barrier_t start_line;

typedef struct { uint16_t slot; uint16_t pad; uint32_t size; } op_t;
typedef struct { op_t *script; double seconds; } job_t;

static void *worker(void *arg) {
  job_t *job = arg;
  void *slots[SLOTS] = {0};
  pthread_barrier_wait(&start_line);
  double t0 = bench_now();
  for (long i = 0; i < ops; i++) {
    const op_t *op = &job->script[i];
    void **s = &slots[op->slot];
    if (*s) {
      b_free(*s);
      *s = 0;
    } else {
      *s = b_malloc(op->size);
      *(volatile char *)*s = 1;
    }
  }
  for (int k = 0; k < SLOTS; k++) b_free(slots[k]);
  job->seconds = bench_now() - t0;
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 3) { fprintf(stderr, "usage: mixed THREADS OPS_PER_THREAD\n"); return 2; }
  long threads = bench_count("mixed", "THREADS", argv[1]);
  ops = bench_count("mixed", "OPS_PER_THREAD", argv[2]);
  if (threads > THREADS_MAX) { fprintf(stderr, "mixed: THREADS must be <= %d\n", THREADS_MAX); return 2; }
  int reps = bench_reps();
  job_t jobs[THREADS_MAX];
  for (long t = 0; t < threads; t++) {
    uint64_t seed = 0x9e3779b97f4a7c15ull * (uint64_t)(t + 1);
    jobs[t].script = calloc((size_t)ops, sizeof(op_t)); /* allocated before timing */
    for (long i = 0; i < ops; i++) {
      uint64_t r = bench_random(&seed);
      jobs[t].script[i].slot = r & (SLOTS - 1);
      uint32_t q = (uint32_t)(r >> 32);
      jobs[t].script[i].size = (q & 7) ? 8 + (q >> 3) % 505 : 8 + (q >> 3) % 32761;
    }
  }
  double per_op[BENCH_REPS_MAX];
  for (int rep = 0; rep < reps; rep++) {
    pthread_t tid[THREADS_MAX];
    pthread_barrier_init(&start_line, 0, (unsigned)threads);
    BENCH_REGION_BEGIN();
    for (long t = 0; t < threads; t++) pthread_create(&tid[t], 0, worker, &jobs[t]);
    double worst = 0;
    for (long t = 0; t < threads; t++) {
      pthread_join(tid[t], 0);
      if (jobs[t].seconds > worst) worst = jobs[t].seconds;
    }
    BENCH_REGION_END();
    pthread_barrier_destroy(&start_line);
    per_op[rep] = worst / (double)ops * 1e9;
  }
  printf("ns_per_op=%.2f\nops=%ld\n", bench_median(per_op, reps), ops);
  return 0;
}
