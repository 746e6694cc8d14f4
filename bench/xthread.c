/* bench/xthread.c — producer/consumer: one thread allocates, the other frees.
 *
 * Every block is freed by a thread that did not allocate it: the remote-free
 * path of a thread-caching allocator (glibc's tcache returns to the arena
 * under its lock; jemalloc/mimalloc/tcmalloc each have their own answer).
 * The producer replays a pre-generated list of sizes (16..1024 B, 1/16 up to
 * 8 KiB), writes the first byte and pushes the pointer into a single-producer
 * single-consumer ring of 4096 entries (C11 acquire/release, batched index
 * publication every 64 blocks so the ring itself costs little); the consumer
 * pops and frees. Time: from both threads starting to the consumer freeing
 * the last block, per block; median of BENCH_REPS repetitions.
 *
 * usage: xthread BLOCKS
 * prints: ns_per_block=<median>  blocks=<BLOCKS>
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sched.h>
#include "bench.h"

enum { RING = 4096, BATCH = 64 };
static void *ring[RING];
static _Atomic long head; /* blocks published by the producer */
static _Atomic long tail; /* blocks consumed */
static long blocks;
static uint32_t *sizes;
static pthread_barrier_t start_line;

static void *producer(void *arg) {
  (void)arg;
  pthread_barrier_wait(&start_line);
  long free_tail = 0;
  for (long i = 0; i < blocks; i++) {
    while (i - free_tail >= RING) {
      free_tail = atomic_load_explicit(&tail, memory_order_acquire);
      if (i - free_tail >= RING) sched_yield();
    }
    char *p = b_malloc(sizes[i]);
    *(volatile char *)p = 1;
    ring[i % RING] = p;
    if ((i + 1) % BATCH == 0 || i + 1 == blocks) atomic_store_explicit(&head, i + 1, memory_order_release);
  }
  return 0;
}

static void *consumer(void *arg) {
  double *seconds = arg;
  pthread_barrier_wait(&start_line);
  double t0 = bench_now();
  long ready = 0;
  for (long i = 0; i < blocks; i++) {
    while (i >= ready) {
      ready = atomic_load_explicit(&head, memory_order_acquire);
      if (i >= ready) sched_yield();
    }
    b_free(ring[i % RING]);
    if ((i + 1) % BATCH == 0 || i + 1 == blocks) atomic_store_explicit(&tail, i + 1, memory_order_release);
  }
  *seconds = bench_now() - t0;
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 2) { fprintf(stderr, "usage: xthread BLOCKS\n"); return 2; }
  blocks = bench_count("xthread", "BLOCKS", argv[1]);
  int reps = bench_reps();
  sizes = calloc((size_t)blocks, sizeof *sizes);
  uint64_t seed = 0x2545f4914f6cdd1dull;
  for (long i = 0; i < blocks; i++) {
    uint64_t r = bench_random(&seed);
    sizes[i] = (r & 15) ? 16 + (uint32_t)(r >> 32) % 1009 : 16 + (uint32_t)(r >> 32) % 8177;
  }
  double per_block[BENCH_REPS_MAX];
  for (int rep = 0; rep < reps; rep++) {
    atomic_store(&head, 0);
    atomic_store(&tail, 0);
    pthread_barrier_init(&start_line, 0, 2);
    pthread_t p, c;
    double seconds = 0;
    BENCH_REGION_BEGIN();
    pthread_create(&p, 0, producer, 0);
    pthread_create(&c, 0, consumer, &seconds);
    pthread_join(p, 0);
    pthread_join(c, 0);
    BENCH_REGION_END();
    pthread_barrier_destroy(&start_line);
    per_block[rep] = seconds / (double)blocks * 1e9;
  }
  printf("ns_per_block=%.2f\nblocks=%ld\n", bench_median(per_block, reps), blocks);
  return 0;
}
