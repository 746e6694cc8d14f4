/* bench/realloc.c — realloc growth: a vector doubling from 64 B to MAX_BYTES.
 *
 * One block grows by realloc to twice its size, 64 B → 128 B → … → MAX_BYTES
 * (1 GiB in the full run: 24 doublings), and after each step the program
 * writes one byte in every 4 KiB page of the new half, as a vector being
 * filled would fault those pages in. An allocator that grows huge blocks in
 * place or with mremap moves no bytes; one that copies moves ~MAX_BYTES in
 * all. The first byte of every page written so far is checked at the end
 * (the contents must survive every move). One repetition is the whole growth
 * (the check and the final free are not timed); median of BENCH_REPS
 * repetitions. Peak memory is about 1.5 × MAX_BYTES (old and new block during
 * the last copy).
 *
 * usage: realloc MAX_BYTES
 * prints: ms_per_growth=<median>  max_bytes=<MAX_BYTES rounded to a power of 2>
 */
#include "bench.h"

enum { PAGE = 4096, START_BYTES = 64 };

int main(int argc, char **argv) {
  if (argc != 2) { fprintf(stderr, "usage: realloc MAX_BYTES\n"); return 2; }
  size_t max_bytes = (size_t)bench_count("realloc", "MAX_BYTES", argv[1]);
  size_t top = START_BYTES;
  while (top * 2 <= max_bytes) top *= 2;
  int reps = bench_reps();
  double ms[BENCH_REPS_MAX];
  for (int rep = 0; rep < reps; rep++) {
    BENCH_REGION_BEGIN();
    double t0 = bench_now();
    size_t size = START_BYTES;
    unsigned char *v = b_malloc(size);
    v[0] = 1;
    while (size < top) {
      unsigned char *grown = b_realloc(v, size * 2);
      if (!grown) { fprintf(stderr, "realloc: out of memory at %zu bytes\n", size * 2); return 1; }
      v = grown;
      for (size_t at = size; at < size * 2; at += PAGE) v[at] = (unsigned char)(at / PAGE + 1);
      size *= 2;
    }
    double seconds = bench_now() - t0;
    BENCH_REGION_END();
    for (size_t at = PAGE; at < size; at += PAGE) {
      if (v[at] != (unsigned char)(at / PAGE + 1)) {
        fprintf(stderr, "realloc: byte at offset %zu lost in a move\n", at);
        return 1;
      }
    }
    b_free(v);
    ms[rep] = seconds * 1e3;
  }
  printf("ms_per_growth=%.3f\nmax_bytes=%zu\n", bench_median(ms, reps), top);
  return 0;
}
