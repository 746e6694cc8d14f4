/* bench/large.c — large blocks, 64 KiB..64 MiB: allocate, touch, free.
 *
 * A window of 8 slots replays a pre-generated script: each step frees the
 * slot's block (if any), allocates a new one with a log-uniform size in
 * 64 KiB..64 MiB (mean ~9 MiB) and writes one byte in each of its 4 KiB
 * pages, as a program filling a fresh buffer would. What this weighs: the
 * mmap/munmap and page-fault traffic an allocator causes (retaining freed
 * large blocks, or returning them to the kernel each time) and the cost of
 * finding a fit. At most 8 blocks are live (≤ 512 MiB). The remaining blocks
 * are freed inside the timed region; median of BENCH_REPS repetitions.
 *
 * usage: large STEPS
 * prints: us_per_op=<median>  steps=<STEPS>  mean_bytes=<mean block size>
 */
#include <math.h>
#include "bench.h"

enum { SLOTS = 8, PAGE = 4096 };
static const double size_min = 64.0 * 1024, size_max = 64.0 * 1024 * 1024;

typedef struct { uint32_t slot; uint32_t size; } step_t;

int main(int argc, char **argv) {
  if (argc != 2) { fprintf(stderr, "usage: large STEPS\n"); return 2; }
  long steps = bench_count("large", "STEPS", argv[1]);
  int reps = bench_reps();
  step_t *script = calloc((size_t)steps, sizeof *script);
  uint64_t seed = 0x94d049bb133111ebull;
  double total = 0;
  for (long i = 0; i < steps; i++) {
    uint64_t r = bench_random(&seed);
    double u = (double)(r >> 11) / (double)(1ull << 53);
    script[i].slot = (uint32_t)(r & (SLOTS - 1));
    script[i].size = (uint32_t)(size_min * exp(u * log(size_max / size_min)));
    total += script[i].size;
  }
  double us[BENCH_REPS_MAX];
  for (int rep = 0; rep < reps; rep++) {
    unsigned char *slot[SLOTS] = {0};
    BENCH_REGION_BEGIN();
    double t0 = bench_now();
    for (long i = 0; i < steps; i++) {
      unsigned char **s = &slot[script[i].slot];
      b_free(*s);
      *s = b_malloc(script[i].size);
      if (!*s) { fprintf(stderr, "large: out of memory at %u bytes\n", script[i].size); return 1; }
      for (size_t at = 0; at < script[i].size; at += PAGE) (*s)[at] = 1;
    }
    for (int k = 0; k < SLOTS; k++) b_free(slot[k]);
    double seconds = bench_now() - t0;
    BENCH_REGION_END();
    us[rep] = seconds / (double)steps * 1e6;
  }
  printf("us_per_op=%.2f\nsteps=%ld\nmean_bytes=%.0f\n", bench_median(us, reps), steps, total / (double)steps);
  return 0;
}
