/*
 * fill_node.c — allocates MIB MiB through hmalloc in 1 MiB blocks, writing every page,
 * to find out what happens when the pool's policy (HMALLOC_POLICY, e.g. bind:2) points at
 * a node with less free memory than that (issue 6, in the 4-node VM).
 *
 *   fill_node MIB
 *
 * Prints "progress N" (MiB written so far) every 32 MiB, unbuffered, so the last line
 * shows how far it came if the kernel kills it; then "null N errno E" if hmalloc ever
 * returned NULL; then, if it lived, "done N" and one JSON line
 * {"mib":N,"nodes":[pages on node 0, 1, ...],"absent":A} counted with hm_residency.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "hmalloc.h"

enum { block_bytes = 1 << 20, nodes_max = 64, progress_mib = 32 };

int main(int argc, char **argv) {
  if (argc != 2) { fprintf(stderr, "usage: fill_node MIB\n"); return 2; }
  long mib = strtol(argv[1], NULL, 10);
  setvbuf(stdout, NULL, _IONBF, 0);
  char **blocks = mmap(NULL, (size_t)mib * sizeof *blocks, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (blocks == MAP_FAILED) { perror("mmap"); return 1; }
  long got = 0;
  for (; got < mib; got++) {
    errno = 0;
    blocks[got] = hmalloc(block_bytes);
    if (blocks[got] == NULL) {
      printf("null %ld errno %d\n", got, errno);
      break;
    }
    memset(blocks[got], (int)(got & 0xff) | 1, block_bytes);
    if ((got + 1) % progress_mib == 0) printf("progress %ld\n", got + 1);
  }
  size_t total[nodes_max] = {0};
  long absent = 0;
  for (long i = 0; i < got; i++) {
    size_t pages[nodes_max] = {0};
    long r = hm_residency(blocks[i], block_bytes, pages, nodes_max);
    if (r < 0) { printf("hm_residency: %ld\n", r); return 1; }
    absent += r;
    for (int n = 0; n < nodes_max; n++) total[n] += pages[n];
  }
  printf("done %ld\n{\"mib\":%ld,\"nodes\":[", got, got);
  for (int n = 0; n < 4; n++) printf(n ? ",%zu" : "%zu", total[n]);
  printf("],\"absent\":%ld}\n", absent);
  for (long i = 0; i < got; i++) hfree(blocks[i]);
  return 0;
}
