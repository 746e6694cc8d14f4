/* bench/manythreads.c — many more threads than cores, some blocks passed between them.
 *
 * THREADS threads (32 in the row, on a 2-core machine) each replay their own
 * pre-generated script of OPS operations over their own 1024 slots: an empty
 * slot gets a new block (3/4 8..128 B, 3/16 8 B..1 KiB, 1/16 8 B..32 KiB;
 * first byte written); a full slot is freed or, in 1 case out of 8, its
 * block is swapped into a random entry of a shared exchange table (256
 * entries, atomic exchange) and the slot takes whatever was there: a block
 * another thread allocated, which this thread frees later (a cross-thread
 * free). ROUNDS rounds: each creates the threads, releases them together and
 * joins them; slots and the table persist, so every round also frees blocks
 * of threads that have exited. With 16 threads per core, any lock an
 * allocator holds across a preemption makes the others spin or sleep: this
 * row shows lock hand-off storms that 2 threads on 2 cores cannot.
 *
 * Each thread's round is long enough (200k operations, several ms) to be
 * preempted many times, inside allocator code too.
 *
 * Time: each round from the first thread starting its script to the last one
 * finishing (the threads' own clock readings: the main thread, one of 33
 * runnable threads, may wake from the start barrier late), summed over the
 * rounds, divided by all operations of all threads: ns per operation of the
 * whole machine (not per thread); median of BENCH_REPS repetitions.
 * What is left after the last round is freed by the main thread, not timed.
 *
 * usage: manythreads THREADS ROUNDS OPS
 * prints: ns_per_op=<median>  ops=<operations per repetition>
 */
#include <pthread.h>
#include <stdatomic.h>
#include "bench.h"

enum { SLOTS = 1024, EXCHANGE = 256, THREADS_MAX = 256, NO_PASS = 0xffff };
static long ops;
static _Atomic(void *) exchange[EXCHANGE];
static pthread_barrier_t start_line;

typedef struct { uint16_t slot; uint16_t pass; uint32_t size; } op_t; /* pass: exchange entry or NO_PASS */
typedef struct { op_t *script; void **slots; double start, end; } job_t;

static void *worker(void *arg) {
  job_t *job = arg;
  pthread_barrier_wait(&start_line);
  job->start = bench_now();
  for (long i = 0; i < ops; i++) {
    const op_t *op = &job->script[i];
    void **s = &job->slots[op->slot];
    if (!*s) {
      *s = b_malloc(op->size);
      *(volatile char *)*s = 1;
    } else if (op->pass != NO_PASS) {
      *s = atomic_exchange_explicit(&exchange[op->pass], *s, memory_order_acq_rel);
    } else {
      b_free(*s);
      *s = 0;
    }
  }
  job->end = bench_now();
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 4) { fprintf(stderr, "usage: manythreads THREADS ROUNDS OPS\n"); return 2; }
  long threads = bench_count("manythreads", "THREADS", argv[1]);
  long rounds = bench_count("manythreads", "ROUNDS", argv[2]);
  ops = bench_count("manythreads", "OPS", argv[3]);
  if (threads > THREADS_MAX) { fprintf(stderr, "manythreads: THREADS must be <= %d\n", THREADS_MAX); return 2; }
  int reps = bench_reps();
  job_t jobs[THREADS_MAX];
  for (long t = 0; t < threads; t++) {
    uint64_t seed = 0xd1b54a32d192ed03ull * (uint64_t)(t + 1);
    jobs[t].script = calloc((size_t)ops, sizeof(op_t)); /* allocated before timing */
    jobs[t].slots = calloc(SLOTS, sizeof(void *));
    if (!jobs[t].script || !jobs[t].slots) { fprintf(stderr, "manythreads: out of memory\n"); return 1; }
    for (long i = 0; i < ops; i++) {
      uint64_t r = bench_random(&seed);
      op_t *op = &jobs[t].script[i];
      op->slot = r & (SLOTS - 1);
      op->pass = ((r >> 10) & 7) == 0 ? (uint16_t)((r >> 13) % EXCHANGE) : NO_PASS;
      uint32_t q = (uint32_t)(r >> 32), pick = q & 15;
      op->size = pick < 12 ? 8 + (q >> 4) % 121 : pick < 15 ? 8 + (q >> 4) % 1017 : 8 + (q >> 4) % 32761;
    }
  }
  double per_op[BENCH_REPS_MAX];
  for (int rep = 0; rep < reps; rep++) {
    double seconds = 0;
    BENCH_REGION_BEGIN();
    for (long round = 0; round < rounds; round++) {
      pthread_t tid[THREADS_MAX];
      pthread_barrier_init(&start_line, 0, (unsigned)threads + 1);
      for (long t = 0; t < threads; t++) {
        if (pthread_create(&tid[t], 0, worker, &jobs[t])) { perror("manythreads: pthread_create"); return 1; }
      }
      pthread_barrier_wait(&start_line);
      double first = 1e300, last = 0;
      for (long t = 0; t < threads; t++) {
        pthread_join(tid[t], 0);
        if (jobs[t].start < first) first = jobs[t].start;
        if (jobs[t].end > last) last = jobs[t].end;
      }
      seconds += last - first;
      pthread_barrier_destroy(&start_line);
    }
    BENCH_REGION_END();
    for (long t = 0; t < threads; t++) {
      for (int k = 0; k < SLOTS; k++) { b_free(jobs[t].slots[k]); jobs[t].slots[k] = 0; }
    }
    for (int e = 0; e < EXCHANGE; e++) b_free(atomic_exchange(&exchange[e], 0));
    per_op[rep] = seconds / (double)(threads * rounds * ops) * 1e9;
  }
  printf("ns_per_op=%.2f\nops=%ld\n", bench_median(per_op, reps), threads * rounds * ops);
  return 0;
}
