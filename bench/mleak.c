/* bench/mleak.c — many short-lived threads that each leak a few blocks.
 *
 * THREADS threads run two at a time (the main thread creates a pair, joins
 * it, creates the next). Each allocates BLOCKS blocks of mixed small sizes
 * (7/8 16..256 B, 1/8 16 B..4 KiB; first byte written), frees them in a
 * shuffled order except LEAK of them, and exits: the leaked blocks outlive the
 * thread that allocated them. What this measures is an allocator's per-thread
 * set-up and tear-down (a thread cache, a descriptor, a mapping made when a
 * thread first allocates and released, or recycled, when it exits): one that
 * keeps something per thread it has seen grows with THREADS here, which is
 * what peak RSS shows (memtier with two tiers once kept a 4 KiB mapping per
 * dead thread: 197 MiB against 2.2 MiB in mimalloc-bench's mleak).
 *
 * Sizes, free order and which blocks leak are drawn before timing. Time: from
 * creating the first thread to joining the last, per thread (thread creation
 * and exit included: that is where the allocator's per-thread work happens);
 * median of BENCH_REPS repetitions. The blocks leaked by one repetition are
 * freed by the main thread before the next (not timed), so repetitions do not
 * pile up leaks; the last repetition's stay live until the process exits.
 * Peak RSS: VmHWM of the whole process, read at the end.
 *
 * usage: mleak THREADS
 * prints: us_per_thread=<median>  peak_rss_kib=  rss_kib=  leaked_kib=<live
 *         at exit>  threads=
 */
#include <pthread.h>
#include "bench.h"

enum { BLOCKS = 100, LEAK = 2, POOL = 4096 };
static uint32_t sizes[POOL];          /* drawn sizes; a thread reads BLOCKS from its offset */
static uint8_t order[BLOCKS];         /* the free order, one shuffle shared by all threads */

typedef struct {
  uint32_t offset;      /* first of this thread's BLOCKS sizes in `sizes` (wrapping) */
  uint8_t leak[LEAK];   /* indices of the blocks this thread does not free */
  void **kept;          /* where it puts them: LEAK entries of the main thread's table */
} job_t;

static uint32_t size_of(const job_t *job, int i) { return sizes[(job->offset + (uint32_t)i) % POOL]; }

static void *worker(void *arg) {
  job_t *job = arg;
  void *blocks[BLOCKS];
  for (int i = 0; i < BLOCKS; i++) {
    blocks[i] = b_malloc(size_of(job, i));
    *(volatile char *)blocks[i] = 1;
  }
  for (int j = 0; j < LEAK; j++) {
    job->kept[j] = blocks[job->leak[j]];
    blocks[job->leak[j]] = 0;
  }
  for (int i = 0; i < BLOCKS; i++) {
    if (blocks[order[i]]) b_free(blocks[order[i]]);
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 2) { fprintf(stderr, "usage: mleak THREADS\n"); return 2; }
  long threads = bench_count("mleak", "THREADS", argv[1]);
  int reps = bench_reps();
  uint64_t seed = 0x853c49e6748fea9bull;
  for (int i = 0; i < POOL; i++) {
    uint64_t r = bench_random(&seed);
    uint32_t q = (uint32_t)(r >> 32);
    sizes[i] = (r & 7) ? 16 + q % 241 : 16 + q % 4081;
  }
  for (int i = 0; i < BLOCKS; i++) order[i] = (uint8_t)i;
  for (int i = BLOCKS - 1; i > 0; i--) { /* Fisher-Yates */
    int k = (int)(bench_random(&seed) % (uint64_t)(i + 1));
    uint8_t t = order[i]; order[i] = order[k]; order[k] = t;
  }
  job_t *jobs = calloc((size_t)threads, sizeof *jobs);
  void **kept = calloc((size_t)threads * LEAK, sizeof *kept);
  if (!jobs || !kept) { fprintf(stderr, "mleak: out of memory\n"); return 1; }
  for (long t = 0; t < threads; t++) {
    uint64_t r = bench_random(&seed);
    jobs[t].offset = (uint32_t)(r % POOL);
    jobs[t].leak[0] = (uint8_t)((r >> 16) % BLOCKS);
    jobs[t].leak[1] = (uint8_t)((jobs[t].leak[0] + 1 + (r >> 32) % (BLOCKS - 1)) % BLOCKS);
    jobs[t].kept = &kept[t * LEAK];
  }
  double per_thread[BENCH_REPS_MAX];
  for (int rep = 0; rep < reps; rep++) {
    for (long i = 0; i < threads * LEAK; i++) {
      if (kept[i]) b_free(kept[i]); /* the previous repetition's leaks */
      kept[i] = 0;
    }
    BENCH_REGION_BEGIN();
    double t0 = bench_now();
    for (long t = 0; t < threads; t += 2) {
      pthread_t tid[2];
      int n = t + 1 < threads ? 2 : 1;
      for (int k = 0; k < n; k++) {
        if (pthread_create(&tid[k], 0, worker, &jobs[t + k])) { perror("mleak: pthread_create"); return 1; }
      }
      for (int k = 0; k < n; k++) pthread_join(tid[k], 0);
    }
    per_thread[rep] = (bench_now() - t0) / (double)threads * 1e6;
    BENCH_REGION_END();
  }
  long leaked = 0;
  for (long t = 0; t < threads; t++) {
    for (int j = 0; j < LEAK; j++) leaked += size_of(&jobs[t], jobs[t].leak[j]);
  }
  long hwm = bench_status_kib("VmHWM"), rss = bench_status_kib("VmRSS");
  printf("us_per_thread=%.2f\npeak_rss_kib=%ld\nrss_kib=%ld\nleaked_kib=%ld\nthreads=%ld\n",
         bench_median(per_thread, reps), hwm, rss, leaked / 1024, threads);
  return 0; /* the last repetition's leaked blocks are still live */
}
