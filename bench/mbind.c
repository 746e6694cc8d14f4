/* bench/mbind.c — mbind calls per GiB allocated in mixed sizes.
 *
 * Placing memory costs one mbind(2) per region placed; an allocator that
 * places every block (the reference hmalloc's huge blocks, memkind's kinds)
 * makes a syscall per allocation. This program keeps allocating blocks of
 * pre-generated sizes until TOTAL_BYTES are live — 80 % 8 B..4 KiB, 15 %
 * 4..64 KiB, 5 % log-uniform 64 KiB..4 MiB, first byte written — then frees
 * them all. The hmalloc build reads the pool's own counter,
 * hm_pool_mbind_calls(hm_default_pool()), after the allocations (run it with a
 * policy, e.g. HMALLOC_POLICY=bind:0, or nothing is placed); for every build
 * bench/run.ts also counts the calls from outside with
 * `strace -f -c -e trace=mbind`, and the two must agree.
 *
 * usage: mbind TOTAL_BYTES
 * prints: mbind_per_gib=<counter / GiB, or -1 for the malloc build>
 *         mbind_calls=<counter or -1>  gib=<GiB allocated>  blocks=<count>
 *         mapped_bytes=<hm_pool_mapped_bytes or -1>
 */
#include <math.h>
#include "bench.h"

int main(int argc, char **argv) {
  if (argc != 2) { fprintf(stderr, "usage: mbind TOTAL_BYTES\n"); return 2; }
  double total_bytes = (double)bench_count("mbind", "TOTAL_BYTES", argv[1]);
  size_t cap = 1 << 16, count = 0;
  void **blocks = calloc(cap, sizeof *blocks);
  uint64_t seed = 0xd1b54a32d192ed03ull;
  double bytes = 0;
  while (bytes < total_bytes) {
    uint64_t r = bench_random(&seed);
    unsigned pick = (unsigned)(r % 100);
    uint64_t q = r >> 8;
    size_t size;
    if (pick < 80) size = 8 + q % 4089;
    else if (pick < 95) size = 4096 + q % (60 * 1024 + 1);
    else size = (size_t)(65536.0 * exp((double)(q & 0xffffff) / (double)0x1000000 * log(64.0)));
    if (count == cap) blocks = realloc(blocks, (cap *= 2) * sizeof *blocks);
    char *p = b_malloc(size);
    if (!p) { fprintf(stderr, "mbind: out of memory after %.0f bytes\n", bytes); return 1; }
    *(volatile char *)p = 1;
    blocks[count++] = p;
    bytes += (double)size;
  }
  double gib = bytes / (1024.0 * 1024 * 1024);
#ifdef BENCH_HMALLOC
  long long calls = (long long)hm_pool_mbind_calls(hm_default_pool());
  long long mapped = (long long)hm_pool_mapped_bytes(hm_default_pool());
  printf("mbind_per_gib=%.1f\nmbind_calls=%lld\n", (double)calls / gib, calls);
#else
  long long mapped = -1;
  printf("mbind_per_gib=-1\nmbind_calls=-1\n");
#endif
  for (size_t i = 0; i < count; i++) b_free(blocks[i]);
  free(blocks);
  printf("gib=%.4f\nblocks=%zu\nmapped_bytes=%lld\n", gib, count, mapped);
  return 0;
}
