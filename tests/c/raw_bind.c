/*
 * raw_bind.c — the VM harness's own proof, independent of libhmalloc: maps MIB MiB, applies
 * mbind(MODE, NODES) with raw syscalls before the first touch, writes every page, counts the
 * pages per node with move_pages(2) in query mode and prints one JSON line:
 *
 *   {"policy":"mpol=2 nodes=0x4","page_bytes":4096,"mapping":{"bytes":…,"blocks":1,"pages":…,
 *    "nodes":[…],"absent":0,"errors":0}}
 *
 * usage: raw_bind MODE NODE_MASK_HEX MIB   (MODE: MPOL_* number, e.g. 2 = bind, 6 = weighted)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

enum { mask_bits = 64, node_count_max = 64 };

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: raw_bind MODE NODE_MASK_HEX MIB\n");
        return 2;
    }
    int mode = atoi(argv[1]);
    unsigned long mask = strtoul(argv[2], NULL, 16);
    size_t bytes = strtoull(argv[3], NULL, 10) << 20, page = (size_t)sysconf(_SC_PAGESIZE);
    char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("raw_bind: mmap");
        return 1;
    }
    /* maxnode is the mask's bit count + 1: the kernel reads maxnode - 1 bits. */
    if (syscall(SYS_mbind, p, bytes, mode, &mask, mask_bits + 1, 0) != 0) {
        fprintf(stderr, "raw_bind: mbind(mode %d, mask 0x%lx): %s\n", mode, mask, strerror(errno));
        return 1;
    }
    memset(p, 0x5a, bytes);
    size_t n = bytes / page, counts[node_count_max] = {0}, absent = 0, errors = 0;
    void **pages = malloc(n * sizeof *pages);
    int *status = malloc(n * sizeof *status);
    if (pages == NULL || status == NULL) return 1;
    for (size_t i = 0; i < n; i++) pages[i] = p + i * page;
    if (syscall(SYS_move_pages, 0, n, pages, NULL, status, 0) != 0) {
        fprintf(stderr, "raw_bind: move_pages(query): %s\n", strerror(errno));
        return 1;
    }
    int last = 0;
    for (size_t i = 0; i < n; i++) {
        if (status[i] >= 0 && status[i] < node_count_max) {
            counts[status[i]]++;
            if (status[i] > last) last = status[i];
        } else if (status[i] == -ENOENT) {
            absent++;
        } else {
            errors++;
        }
    }
    int nodes = last + 1;
    printf("{\"policy\":\"mpol=%d nodes=0x%lx\",\"page_bytes\":%zu,\"mapping\":{\"bytes\":%zu,"
           "\"blocks\":1,\"pages\":%zu,\"nodes\":[",
           mode, mask, page, bytes, n);
    for (int i = 0; i < nodes; i++) printf("%s%zu", i ? "," : "", counts[i]);
    printf("],\"absent\":%zu,\"errors\":%zu}}\n", absent, errors);
    return 0;
}
