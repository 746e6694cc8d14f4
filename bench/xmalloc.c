/* bench/xmalloc.c — an xmalloc-like workload (after Lever & Boreham's
 * xmalloc-test): PAIRS allocating threads fill batches of 256 blocks (8..256 B,
 * first byte written) and hand each batch, through one shared stack under a
 * mutex, to PAIRS freeing threads, which free the blocks and the batch. Unlike
 * xthread.c (one fixed producer → consumer pair, a lock-free ring) blocks move
 * between many threads in bursts, the batch records themselves (2 KiB) are
 * allocator blocks freed remotely too, and threads outnumber cores (2 × PAIRS
 * threads), so allocator locks held across a preemption show.
 * The stack holds at most 64 batches; producers wait when it is full.
 * Time: from all threads starting to the last block freed, per block over all
 * producers; median of BENCH_REPS repetitions.
 *
 * usage: xmalloc PAIRS BLOCKS_PER_PRODUCER
 * prints: ns_per_block=<median>  blocks=<total blocks per repetition>
 */
#include <pthread.h>
#include "bench.h"

enum { BATCH = 256, QUEUE = 64, BLOCK_MIN = 8, BLOCK_MAX = 256, PAIRS_MAX = 32 };

typedef struct { int count; void *block[BATCH]; } batch_t;

static batch_t *queue[QUEUE];
static int queued, producers_left;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t not_full = PTHREAD_COND_INITIALIZER, not_empty = PTHREAD_COND_INITIALIZER;
static pthread_barrier_t start_line;
static long blocks_per_producer;

static void push(batch_t *b) {
  pthread_mutex_lock(&lock);
  while (queued == QUEUE) pthread_cond_wait(&not_full, &lock);
  queue[queued++] = b;
  pthread_cond_signal(&not_empty);
  pthread_mutex_unlock(&lock);
}

/* NULL when every producer is done and the queue is empty. */
static batch_t *pop(void) {
  pthread_mutex_lock(&lock);
  while (queued == 0 && producers_left > 0) pthread_cond_wait(&not_empty, &lock);
  batch_t *b = queued ? queue[--queued] : 0;
  if (b) pthread_cond_signal(&not_full);
  pthread_mutex_unlock(&lock);
  return b;
}

static void *producer(void *arg) {
  const uint16_t *sizes = arg;
  pthread_barrier_wait(&start_line);
  for (long i = 0; i < blocks_per_producer;) {
    batch_t *b = b_malloc(sizeof *b);
    b->count = 0;
    for (; b->count < BATCH && i < blocks_per_producer; i++) {
      char *p = b_malloc(sizes[i]);
      *(volatile char *)p = 1;
      b->block[b->count++] = p;
    }
    push(b);
  }
  pthread_mutex_lock(&lock);
  producers_left--;
  pthread_cond_broadcast(&not_empty);
  pthread_mutex_unlock(&lock);
  return 0;
}

static void *consumer(void *arg) {
  (void)arg;
  pthread_barrier_wait(&start_line);
  for (batch_t *b; (b = pop());) {
    for (int k = 0; k < b->count; k++) b_free(b->block[k]);
    b_free(b);
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 3) { fprintf(stderr, "usage: xmalloc PAIRS BLOCKS_PER_PRODUCER\n"); return 2; }
  long pairs = bench_count("xmalloc", "PAIRS", argv[1]);
  blocks_per_producer = bench_count("xmalloc", "BLOCKS_PER_PRODUCER", argv[2]);
  if (pairs > PAIRS_MAX) { fprintf(stderr, "xmalloc: PAIRS must be <= %d\n", PAIRS_MAX); return 2; }
  int reps = bench_reps();
  uint16_t *sizes[PAIRS_MAX];
  for (long t = 0; t < pairs; t++) {
    uint64_t seed = 0xbf58476d1ce4e5b9ull * (uint64_t)(t + 1);
    sizes[t] = calloc((size_t)blocks_per_producer, sizeof(uint16_t));
    for (long i = 0; i < blocks_per_producer; i++)
      sizes[t][i] = (uint16_t)(BLOCK_MIN + bench_random(&seed) % (BLOCK_MAX - BLOCK_MIN + 1));
  }
  double per_block[BENCH_REPS_MAX];
  for (int rep = 0; rep < reps; rep++) {
    pthread_t tid[2 * PAIRS_MAX];
    queued = 0;
    producers_left = (int)pairs;
    pthread_barrier_init(&start_line, 0, (unsigned)(2 * pairs + 1));
    BENCH_REGION_BEGIN();
    for (long t = 0; t < pairs; t++) {
      pthread_create(&tid[2 * t], 0, producer, sizes[t]);
      pthread_create(&tid[2 * t + 1], 0, consumer, 0);
    }
    pthread_barrier_wait(&start_line);
    double t0 = bench_now();
    for (long t = 0; t < 2 * pairs; t++) pthread_join(tid[t], 0);
    double seconds = bench_now() - t0;
    BENCH_REGION_END();
    pthread_barrier_destroy(&start_line);
    per_block[rep] = seconds / (double)(pairs * blocks_per_producer) * 1e9;
  }
  printf("ns_per_block=%.2f\nblocks=%ld\n", bench_median(per_block, reps), pairs * blocks_per_producer);
  return 0;
}
