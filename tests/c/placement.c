/*
 * placement.c — where did the pages go? Allocates HM_MIB MiB through hmalloc and MALLOC_MIB MiB
 * through malloc, each as a mix of small blocks, large blocks and huge blocks (the first huge block
 * made of freed ones' pages, see cycle_huge), writes every byte,
 * then counts the pages of each set per NUMA node with move_pages(2) in query mode (nodes = NULL)
 * and prints one JSON line:
 *
 *   {"policy":"bind:2","hmalloc":{"bytes":…,"pages":…,"nodes":[n0,n1,…],"absent":…,"errors":…},
 *    "malloc":{…}}
 *
 * "nodes" has one count per possible node; "absent" counts pages not present (never touched,
 * which should be 0), "errors" pages move_pages could not report. Pages are deduplicated:
 * small blocks share pages. With --table, a per-node MiB table is printed before the JSON line.
 *
 * usage: placement [--table] HM_MIB MALLOC_MIB
 *
 * The first line of output is "placement: main reached": a policy error in the environment
 * must end the program before it (exit 2, one line from the library).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hmalloc.h"

enum {
    node_count_max = 1024,
    query_batch_pages = 16384,
    huge_block_bytes = 8 << 20,
};

static const size_t small_sizes[] = {16, 48, 100, 256, 1000, 2048, 3000};
static const size_t large_sizes[] = {20 << 10, 64 << 10, 200 << 10, 1 << 20};

struct block {
    char *ptr;
    size_t size;
};

/* Blocks and page lists live in mmap'd arrays, so that the bookkeeping itself never lands in
 * the malloc set being measured. */
struct block_set {
    struct block *blocks;
    size_t count;
    size_t capacity;
    size_t bytes;
};

struct count {
    size_t pages;
    size_t absent;
    size_t errors;
    size_t nodes[node_count_max];
};

static void *map_array(size_t bytes)
{
    if (bytes == 0) bytes = 1; /* an empty set still gets a (one-page) array */
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("placement: mmap");
        exit(1);
    }
    return p;
}

static void set_add(struct block_set *set, void *(*alloc)(size_t), size_t size, const char *what)
{
    char *p = alloc(size);
    if (p == NULL) {
        fprintf(stderr, "placement: %s(%zu) failed: %s\n", what, size, strerror(errno));
        exit(1);
    }
    memset(p, 0x5a, size); /* the first touch: the policy decides here */
    if (set->count == set->capacity) {
        fprintf(stderr, "placement: too many blocks\n");
        exit(1);
    }
    set->blocks[set->count++] = (struct block){p, size};
    set->bytes += size;
}

/* 1/8 of the bytes in small blocks, 3/8 in large ones, the rest in huge (8 MiB) blocks. */
/* Three 3 MiB huge blocks written and freed before a set's own: the set's first 8 MiB huge
 * block is then assembled from their cached mappings, moved side by side (huge_cache.zig), so
 * the counts below also prove that moved pages keep their placement. */
static void cycle_huge(void *(*alloc)(size_t), void (*release)(void *), const char *what)
{
    enum { pieces = 3, piece_bytes = 3 << 20 };
    char *blocks[pieces];
    for (int i = 0; i < pieces; i++) {
        blocks[i] = alloc(piece_bytes);
        if (blocks[i] == NULL) {
            fprintf(stderr, "placement: %s(%d) failed: %s\n", what, piece_bytes, strerror(errno));
            exit(1);
        }
        memset(blocks[i], 0x5a, piece_bytes);
    }
    for (int i = 0; i < pieces; i++) release(blocks[i]);
}

static void fill(struct block_set *set, size_t total, void *(*alloc)(size_t), void (*release)(void *),
                 const char *what)
{
    size_t small_total = total / 8, large_total = total / 8 * 3;
    set->capacity = total / 16 + 64;
    set->blocks = map_array(set->capacity * sizeof(struct block));
    size_t done = 0, i = 0;
    while (done < small_total) {
        size_t s = small_sizes[i++ % (sizeof small_sizes / sizeof small_sizes[0])];
        set_add(set, alloc, s, what);
        done += s;
    }
    for (i = 0; done < small_total + large_total; i++) {
        size_t s = large_sizes[i % (sizeof large_sizes / sizeof large_sizes[0])];
        set_add(set, alloc, s, what);
        done += s;
    }
    cycle_huge(alloc, release, what);
    while (done < total) {
        size_t s = total - done < huge_block_bytes ? total - done : huge_block_bytes;
        if (s < (1 << 20)) s = 1 << 20;
        set_add(set, alloc, s, what);
        done += s;
    }
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

static void count_pages(const struct block_set *set, struct count *c)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), n = 0, cap = 0;
    for (size_t i = 0; i < set->count; i++) cap += set->blocks[i].size / page + 2;
    uintptr_t *pages = map_array(cap * sizeof *pages);
    for (size_t i = 0; i < set->count; i++) {
        uintptr_t first = (uintptr_t)set->blocks[i].ptr / page;
        uintptr_t last = ((uintptr_t)set->blocks[i].ptr + set->blocks[i].size - 1) / page;
        for (uintptr_t p = first; p <= last; p++) pages[n++] = p * page;
    }
    qsort(pages, n, sizeof *pages, cmp_ptr);
    size_t unique = 0;
    for (size_t i = 0; i < n; i++)
        if (unique == 0 || pages[unique - 1] != pages[i]) pages[unique++] = pages[i];
    memset(c, 0, sizeof *c);
    c->pages = unique;
    int *status = map_array(query_batch_pages * sizeof *status);
    for (size_t at = 0; at < unique; at += query_batch_pages) {
        size_t len = unique - at < query_batch_pages ? unique - at : query_batch_pages;
        long rc = syscall(SYS_move_pages, 0, len, (void **)(pages + at), NULL, status, 0);
        if (rc != 0) {
            fprintf(stderr, "placement: move_pages(query): %s\n", strerror(errno));
            c->errors += len;
            continue;
        }
        for (size_t i = 0; i < len; i++) {
            if (status[i] >= 0 && status[i] < node_count_max) c->nodes[status[i]]++;
            else if (status[i] == -ENOENT) c->absent++;
            else c->errors++;
        }
    }
    munmap(status, query_batch_pages * sizeof *status);
    munmap(pages, cap * sizeof *pages);
}

/* Number of possible nodes: the last id in /sys/devices/system/node/possible, plus one. */
static int possible_nodes(void)
{
    FILE *f = fopen("/sys/devices/system/node/possible", "r");
    if (f == NULL) return 1;
    char buf[256] = {0};
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    int last = 0;
    for (size_t i = 0; i < len;) {
        if (buf[i] >= '0' && buf[i] <= '9') {
            last = (int)strtol(buf + i, NULL, 10);
            while (i < len && buf[i] >= '0' && buf[i] <= '9') i++;
        } else {
            i++;
        }
    }
    return last + 1 > node_count_max ? node_count_max : last + 1;
}

static void print_json_set(const char *name, const struct block_set *set, const struct count *c,
                           int nodes)
{
    printf("\"%s\":{\"bytes\":%zu,\"blocks\":%zu,\"pages\":%zu,\"nodes\":[", name, set->bytes,
           set->count, c->pages);
    for (int i = 0; i < nodes; i++) printf("%s%zu", i ? "," : "", c->nodes[i]);
    printf("],\"absent\":%zu,\"errors\":%zu}", c->absent, c->errors);
}

static void print_table_row(const char *name, const struct count *c, int nodes, size_t page)
{
    printf("%-14s", name);
    for (int i = 0; i < nodes; i++) printf(" %9.1f", (double)c->nodes[i] * page / (1 << 20));
    printf(" %9.1f\n", (double)c->pages * page / (1 << 20));
}

static void print_json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20) printf("\\u%04x", *s);
        else putchar(*s);
    }
    putchar('"');
}

int main(int argc, char **argv)
{
    printf("placement: main reached\n");
    fflush(stdout);
    int table = argc > 1 && strcmp(argv[1], "--table") == 0;
    if (argc != 3 + table) {
        fprintf(stderr, "usage: placement [--table] HM_MIB MALLOC_MIB\n");
        return 2;
    }
    size_t hm_mib = strtoull(argv[1 + table], NULL, 10);
    size_t malloc_mib = strtoull(argv[2 + table], NULL, 10);

    static struct block_set hm_set, malloc_set;
    static struct count hm_count, malloc_count;
    fill(&hm_set, hm_mib << 20, hmalloc, hfree, "hmalloc");
    fill(&malloc_set, malloc_mib << 20, malloc, free, "malloc");
    count_pages(&hm_set, &hm_count);
    count_pages(&malloc_set, &malloc_count);

    char policy[256];
    int policy_len = hm_pool_policy(hm_default_pool(), policy, sizeof policy);
    int nodes = possible_nodes();
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (table) {
        printf("pool policy: %s\n", policy_len >= 0 ? policy : "(unknown)");
        printf("%-14s", "MiB per node");
        for (int i = 0; i < nodes; i++) printf("    node %d", i);
        printf("     total\n");
        print_table_row("hmalloc pool", &hm_count, nodes, page);
        print_table_row("malloc (rest)", &malloc_count, nodes, page);
    }
    printf("{\"policy\":");
    if (policy_len >= 0) print_json_string(policy);
    else printf("null");
    printf(",\"page_bytes\":%zu,", page);
    print_json_set("hmalloc", &hm_set, &hm_count, nodes);
    putchar(',');
    print_json_set("malloc", &malloc_set, &malloc_count, nodes);
    printf("}\n");
    return 0;
}
