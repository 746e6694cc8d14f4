/* bench/larson.c — a larson-like server workload (Larson & Krishnan, 1998).
 *
 * A server thread owns a table of 5000 live blocks (8..1000 B); each step
 * frees a random slot and puts a new block of random size there (first byte
 * written). After OPS/GENERATIONS steps the thread ends and hands its table to
 * a successor thread it creates, as a server hands a connection's state on:
 * the successor frees blocks the predecessor allocated (remote frees, caches
 * of dead threads). THREADS such chains run at once, each from its own
 * pre-generated script; the initial tables are filled before timing.
 * Time: from the chains starting to the last one ending; ns per step per
 * thread; median of BENCH_REPS repetitions.
 *
 * usage: larson THREADS GENERATIONS OPS_PER_THREAD
 * prints: ns_per_op=<median>  ops=<OPS_PER_THREAD>
 */
#include <pthread.h>
#include "bench.h"

enum { SLOTS = 5000, BLOCK_MIN = 8, BLOCK_MAX = 1000, THREADS_MAX = 64 };

typedef struct { uint16_t slot; uint16_t size; } step_t;
typedef struct {
  void *table[SLOTS];
  step_t *script;
  long generation, steps_per_generation, generations;
} chain_t;

static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static long chains_done;

static void *server(void *arg) {
  chain_t *c = arg;
  const step_t *s = c->script + c->generation * c->steps_per_generation;
  for (long i = 0; i < c->steps_per_generation; i++) {
    void **slot = &c->table[s[i].slot];
    b_free(*slot);
    *slot = b_malloc(s[i].size);
    *(volatile char *)*slot = 1;
  }
  if (++c->generation < c->generations) {
    pthread_t next;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&next, &attr, server, c) != 0) { perror("larson: pthread_create"); exit(1); }
    pthread_attr_destroy(&attr);
  } else {
    pthread_mutex_lock(&done_lock);
    chains_done++;
    pthread_cond_signal(&done_cond);
    pthread_mutex_unlock(&done_lock);
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 4) { fprintf(stderr, "usage: larson THREADS GENERATIONS OPS_PER_THREAD\n"); return 2; }
  long threads = bench_count("larson", "THREADS", argv[1]);
  long generations = bench_count("larson", "GENERATIONS", argv[2]);
  long ops = bench_count("larson", "OPS_PER_THREAD", argv[3]);
  if (threads > THREADS_MAX) { fprintf(stderr, "larson: THREADS must be <= %d\n", THREADS_MAX); return 2; }
  int reps = bench_reps();
  long per_generation = ops / generations > 0 ? ops / generations : 1;
  chain_t *chains = calloc((size_t)threads, sizeof *chains);
  for (long t = 0; t < threads; t++) {
    uint64_t seed = 0x853c49e6748fea9bull * (uint64_t)(t + 1);
    chains[t].script = calloc((size_t)(per_generation * generations), sizeof(step_t));
    for (long i = 0; i < per_generation * generations; i++) {
      uint64_t r = bench_random(&seed);
      chains[t].script[i].slot = (uint16_t)((r & 0xffffffff) % SLOTS);
      chains[t].script[i].size = (uint16_t)(BLOCK_MIN + (r >> 32) % (BLOCK_MAX - BLOCK_MIN + 1));
    }
  }
  double per_op[BENCH_REPS_MAX];
  for (int rep = 0; rep < reps; rep++) {
    uint64_t seed = 0xda942042e4dd58b5ull + (uint64_t)rep;
    for (long t = 0; t < threads; t++) {
      chains[t].generation = 0;
      chains[t].generations = generations;
      chains[t].steps_per_generation = per_generation;
      for (int k = 0; k < SLOTS; k++) chains[t].table[k] = b_malloc(BLOCK_MIN + bench_random(&seed) % (BLOCK_MAX - BLOCK_MIN + 1));
    }
    chains_done = 0;
    BENCH_REGION_BEGIN();
    double t0 = bench_now();
    for (long t = 0; t < threads; t++) {
      pthread_t tid;
      pthread_attr_t attr;
      pthread_attr_init(&attr);
      pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
      if (pthread_create(&tid, &attr, server, &chains[t]) != 0) { perror("larson: pthread_create"); return 1; }
      pthread_attr_destroy(&attr);
    }
    pthread_mutex_lock(&done_lock);
    while (chains_done < threads) pthread_cond_wait(&done_cond, &done_lock);
    pthread_mutex_unlock(&done_lock);
    double seconds = bench_now() - t0;
    BENCH_REGION_END();
    per_op[rep] = seconds / (double)(per_generation * generations) * 1e9;
    for (long t = 0; t < threads; t++)
      for (int k = 0; k < SLOTS; k++) b_free(chains[t].table[k]);
  }
  printf("ns_per_op=%.2f\nops=%ld\n", bench_median(per_op, reps), per_generation * generations);
  return 0;
}
