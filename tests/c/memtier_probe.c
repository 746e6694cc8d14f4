/*
 * memtier_probe.c — a plain C program (no hmalloc) that exercises libmemtier.so when run with
 * LD_PRELOAD. One mode per run:
 *
 *   family          every malloc-family function, each block freed with free(); prints
 *                   "family ok" (memkind crashed freeing aligned_alloc/memalign/valloc/pvalloc)
 *   zero N          N live malloc(0) blocks: all non-NULL and distinct; prints "zero ok N"
 *   freenull N      N calls of free(NULL), nothing else; prints "freenull N"
 *   ratio MIB       allocates MIB MiB in mixed sizes (16 B .. 256 KiB, some 1-4 MiB blocks),
 *                   touches every page, keeps it all live; prints "ratio BYTES"
 *   fill MIB        allocates MIB MiB in 64 KiB blocks (every byte written), counting failures;
 *                   then frees half and allocates again; prints "fill ok BLOCKS failed F"
 *   lastline MIB    heavy allocation and freeing (MIB MiB), then a long printf left in stdio's
 *                   buffer for exit() to flush; prints "lastline:" + 200 x 'abcdefghij' + "\n"
 *   fork T F        T threads keep allocating while the main thread forks F times; the parent
 *                   rewrites and frees its pre-fork blocks at once, the child checks it still
 *                   sees them as they were, frees them all, allocates and exits 0; the parent
 *                   checks the child's writes did not reach it; prints "fork ok F"
 *   handover T G    T server threads, each with a table of 4000 live blocks (8..1000 B) that it
 *                   replaces at random 20,000 times, then hands to a new thread and exits
 *                   (larson's pattern), G generations; the last tables stay live at exit;
 *                   prints "handover ok BYTES FILE_BYTES": the live blocks' usable bytes, and
 *                   those of them inside a file-backed tier's mapping (/proc/self/maps names
 *                   its file memtier.*), where the blocks really are, not what the stats say
 *   place MIB       allocates MIB MiB in mixed sizes, writes every byte, counts the pages per NUMA
 *                   node with move_pages(2) (query mode) and prints one JSON line
 *                   {"bytes":B,"pages":P,"nodes":[n0,...],"absent":A,"errors":E}
 *
 * Bookkeeping arrays are mmap'd so that they never land in the heap being measured.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

enum { node_count_max = 1024, query_batch_pages = 16384, page_guess = 4096 };

static void die(const char *what)
{
    fprintf(stderr, "memtier_probe: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "memtier_probe: check failed: %s\n", what);
        exit(1);
    }
}

static void *map_array(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) die("mmap");
    return p;
}

static int aligned_to(const void *p, size_t alignment)
{
    return ((uintptr_t)p & (alignment - 1)) == 0;
}

static int family(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    for (int round = 0; round < 100; round++) {
        size_t size = 1 + (size_t)round * 997;
        void *a = aligned_alloc(64, (size + 63) & ~(size_t)63);
        void *m = memalign(4096, size);
        void *v = valloc(size);
        void *pv = pvalloc(size);
        void *pm = NULL;
        check(posix_memalign(&pm, 256, size) == 0, "posix_memalign");
        void *ra = reallocarray(NULL, round + 1, 24);
        ra = reallocarray(ra, round + 100, 24);
        void *c = calloc(round + 1, 40);
        void *r = realloc(NULL, size);
        r = realloc(r, size * 3);
        check(a && m && v && pv && pm && ra && c && r, "every function returned a block");
        check(aligned_to(a, 64) && aligned_to(m, 4096) && aligned_to(v, page) &&
                  aligned_to(pv, page) && aligned_to(pm, 256),
              "alignment");
        check(malloc_usable_size(m) >= size && malloc_usable_size(pv) >= page &&
                  malloc_usable_size(ra) >= (size_t)(round + 100) * 24,
              "malloc_usable_size");
        for (size_t i = 0; i < (size_t)(round + 1) * 40; i++) check(((char *)c)[i] == 0, "calloc zeroes");
        memset(a, 1, size);
        memset(m, 2, size);
        memset(v, 3, size);
        memset(pv, 4, page);
        memset(pm, 5, size);
        memset(r, 6, size * 3);
        void *blocks[] = {a, m, v, pv, pm, ra, c, r};
        for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++) free(blocks[i]);
    }
    volatile size_t huge = SIZE_MAX / 2; /* hidden from gcc's compile-time size check */
    errno = 0;
    check(reallocarray(NULL, huge, 4) == NULL && errno == ENOMEM, "reallocarray overflow");
    check(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL)");
    printf("family ok\n");
    return 0;
}

static int cmp_uintptr(const void *x, const void *y)
{
    uintptr_t a = *(const uintptr_t *)x, b = *(const uintptr_t *)y;
    return a < b ? -1 : a > b;
}

static int zero(long n)
{
    void **blocks = map_array((size_t)n * sizeof *blocks);
    for (long i = 0; i < n; i++) {
        blocks[i] = malloc(0);
        check(blocks[i] != NULL, "malloc(0) is not NULL");
    }
    qsort(blocks, (size_t)n, sizeof *blocks, cmp_uintptr);
    for (long i = 1; i < n; i++) check(blocks[i] != blocks[i - 1], "malloc(0) blocks are distinct");
    for (long i = 0; i < n; i++) free(blocks[i]);
    printf("zero ok %ld\n", n);
    return 0;
}

static int freenull(long n)
{
    for (long i = 0; i < n; i++) free(NULL);
    printf("freenull %ld\n", n);
    return 0;
}

/* Mixed sizes: mostly small and medium blocks, one 1-4 MiB block every 512 allocations. */
static size_t mixed_size(uint64_t *state, size_t i)
{
    *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
    uint64_t r = *state >> 33;
    if (i % 512 == 511) return (size_t)(1 + r % 4) << 20;
    switch (r % 4) {
    case 0: return 16 + r % 240;            /* tiny */
    case 1: return 256 + r % 3840;          /* small */
    case 2: return 4096 + r % 28672;        /* medium */
    default: return 32768 + r % 229376;     /* large, up to 256 KiB */
    }
}

struct block {
    char *ptr;
    size_t size;
};

/* Allocates `total` bytes in mixed sizes into a mmap'd array; writes every byte if `write_all`,
 * else one byte per page. */
static struct block *fill_mixed(size_t total, int write_all, size_t *count)
{
    size_t cap = total / 16 + 64, n = 0, done = 0;
    struct block *blocks = map_array(cap * sizeof *blocks);
    uint64_t state = 42;
    while (done < total && n < cap) {
        size_t s = mixed_size(&state, n);
        char *p = malloc(s);
        if (p == NULL) die("malloc");
        if (write_all) memset(p, 0x5a, s);
        else
            for (size_t o = 0; o < s; o += page_guess) p[o] = 1;
        blocks[n++] = (struct block){p, s};
        done += s;
    }
    *count = n;
    return blocks;
}

static int ratio(long mib)
{
    size_t n;
    size_t total = (size_t)mib << 20;
    fill_mixed(total, 0, &n);
    printf("ratio %zu blocks %zu\n", total, n);
    return 0; /* everything stays live: the summary's "bytes now" is the split */
}

static int fill(long mib)
{
    size_t block = 64 << 10, n = ((size_t)mib << 20) / block, failed = 0;
    char **blocks = map_array(n * sizeof *blocks);
    for (size_t i = 0; i < n; i++) {
        blocks[i] = malloc(block);
        if (blocks[i] == NULL) {
            failed++;
            continue;
        }
        memset(blocks[i], (int)i, block);
    }
    for (size_t i = 0; i < n; i += 2) {
        if (blocks[i] != NULL) check(blocks[i][block - 1] == (char)i, "content kept");
        free(blocks[i]);
        blocks[i] = malloc(block);
        if (blocks[i] == NULL) failed++;
        else memset(blocks[i], 1, block);
    }
    printf("fill ok %zu failed %zu\n", n, failed);
    return 0;
}

static int lastline(long mib)
{
    size_t n;
    struct block *blocks = fill_mixed((size_t)mib << 20, 1, &n);
    for (size_t i = 0; i < n; i += 2) free(blocks[i].ptr);
    /* stdout is a pipe in the tests: fully buffered, flushed by exit() after our destructors
     * have had the chance to break it (memkind's did). */
    printf("lastline:");
    for (int i = 0; i < 200; i++) printf("abcdefghij");
    printf("\n");
    return 0;
}

static atomic_int stop;

static void *churn(void *arg)
{
    uint64_t state = (uintptr_t)arg;
    void *keep[64] = {0};
    for (size_t i = 0; !atomic_load(&stop); i++) {
        size_t slot = i % 64;
        free(keep[slot]);
        size_t size = mixed_size(&state, i) % 65536 + 1;
        keep[slot] = malloc(size);
        if (keep[slot] == NULL) die("malloc in thread");
        memset(keep[slot], 7, size < 16 ? size : 16); /* within the block: 8 B blocks are 8 B */
    }
    for (size_t i = 0; i < 64; i++) free(keep[i]);
    return NULL;
}

enum { fork_blocks = 512 };

/* Pre-fork blocks of mixed sizes, each filled with one byte value. */
static void fill_blocks(char **blocks, size_t *sizes, char value)
{
    uint64_t state = 99;
    for (size_t i = 0; i < fork_blocks; i++) {
        sizes[i] = mixed_size(&state, i) % 16384 + 16;
        blocks[i] = malloc(sizes[i]);
        if (blocks[i] == NULL) die("malloc");
        memset(blocks[i], value, sizes[i]);
    }
}

static int all_bytes(char *const *blocks, const size_t *sizes, char value)
{
    for (size_t i = 0; i < fork_blocks; i++)
        for (size_t o = 0; o < sizes[i]; o++)
            if (blocks[i][o] != value) return 0;
    return 1;
}

/* fork() must give the child the heap as it was at the fork: the parent writes into and frees
 * its blocks right after fork() returns, while the child reads them; neither may see the
 * other's writes, and the child frees every pre-fork block (a stale "freed" mark copied from
 * the parent would be reported as a double free). */
static int fork_test(long threads, long forks)
{
    pthread_t tids[64];
    check(threads <= 64, "at most 64 threads");
    char **blocks = map_array(fork_blocks * sizeof *blocks);
    size_t *sizes = map_array(fork_blocks * sizeof *sizes);
    for (long t = 0; t < threads; t++)
        if (pthread_create(&tids[t], NULL, churn, (void *)(uintptr_t)(t + 1)) != 0) die("pthread_create");
    for (long f = 0; f < forks; f++) {
        fill_blocks(blocks, sizes, 'p');
        usleep(1000);
        pid_t pid = fork();
        if (pid < 0) die("fork");
        if (pid == 0) {
            usleep(2000); /* the parent is busy rewriting and freeing meanwhile */
            if (!all_bytes(blocks, sizes, 'p')) _exit(3);
            for (size_t i = 0; i < fork_blocks; i++) memset(blocks[i], 'c', sizes[i]);
            for (size_t i = 0; i < fork_blocks; i++) free(blocks[i]);
            uint64_t state = 7;
            void *keep[256];
            for (int i = 0; i < 256; i++) {
                size_t size = mixed_size(&state, (size_t)i);
                keep[i] = malloc(size);
                if (keep[i] == NULL) _exit(4);
                memset(keep[i], 1, size < 64 ? size : 64);
            }
            for (int i = 0; i < 256; i++) free(keep[i]);
            char *text = NULL;
            if (asprintf(&text, "child %ld", f) < 0) _exit(5);
            free(text);
            exit(0); /* through atexit handlers and our destructor */
        }
        for (size_t i = 0; i < fork_blocks; i++) memset(blocks[i], 'P', sizes[i]);
        for (size_t i = 0; i < fork_blocks; i += 2) free(blocks[i]);
        int status = 0;
        if (waitpid(pid, &status, 0) != pid) die("waitpid");
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "memtier_probe: child %ld ended with status 0x%x\n", f, status);
            return 1;
        }
        for (size_t i = 1; i < fork_blocks; i += 2)
            for (size_t o = 0; o < sizes[i]; o++) check(blocks[i][o] == 'P', "parent copy untouched");
        for (size_t i = 1; i < fork_blocks; i += 2) free(blocks[i]);
    }
    atomic_store(&stop, 1);
    for (long t = 0; t < threads; t++) pthread_join(tids[t], NULL);
    printf("fork ok %ld\n", forks);
    return 0;
}

enum { handover_slots = 4000, handover_steps = 20000 };

struct server {
    char **table;
    uint64_t seed;
    long generations_left;
};

static void *serve(void *arg)
{
    struct server *s = arg;
    for (long step = 0; step < handover_steps; step++) {
        s->seed = s->seed * 6364136223846793005ull + 1442695040888963407ull;
        size_t slot = (size_t)(s->seed >> 33) % handover_slots;
        size_t size = 8 + (size_t)(s->seed >> 13) % 993;
        free(s->table[slot]);
        s->table[slot] = malloc(size);
        check(s->table[slot] != NULL, "handover malloc");
        s->table[slot][0] = (char)step;
    }
    if (--s->generations_left > 0) {
        pthread_t next;
        check(pthread_create(&next, NULL, serve, s) == 0, "pthread_create");
        check(pthread_detach(next) == 0, "pthread_detach");
    }
    return NULL;
}

enum { file_ranges_max = 256 };
struct range {
    uintptr_t start, end;
};

/* The address ranges mapped from a file-backed tier's file (named memtier.* by the interposer). */
static size_t file_tier_ranges(struct range *ranges)
{
    FILE *maps = fopen("/proc/self/maps", "r");
    if (maps == NULL) die("/proc/self/maps");
    char line[4096];
    size_t n = 0;
    while (fgets(line, sizeof line, maps) != NULL) {
        unsigned long start, end;
        if (strstr(line, "/memtier.") == NULL || sscanf(line, "%lx-%lx", &start, &end) != 2) continue;
        check(n < file_ranges_max, "file tier ranges fit");
        ranges[n++] = (struct range){start, end};
    }
    fclose(maps);
    return n;
}

static int in_ranges(const void *p, const struct range *ranges, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((uintptr_t)p >= ranges[i].start && (uintptr_t)p < ranges[i].end) return 1;
    return 0;
}

static int handover(long threads, long generations)
{
    struct server *servers = map_array((size_t)threads * sizeof *servers);
    for (long t = 0; t < threads; t++) {
        servers[t].table = map_array(handover_slots * sizeof(char *));
        servers[t].seed = (uint64_t)t + 1;
        servers[t].generations_left = generations;
        pthread_t first;
        check(pthread_create(&first, NULL, serve, &servers[t]) == 0, "pthread_create");
        check(pthread_detach(first) == 0, "pthread_detach");
    }
    for (;;) {
        long left = 0;
        for (long t = 0; t < threads; t++) left += __atomic_load_n(&servers[t].generations_left, __ATOMIC_ACQUIRE);
        if (left == 0) break;
        usleep(1000);
    }
    usleep(20000); /* the last generation's threads finish exiting */
    struct range *ranges = map_array(file_ranges_max * sizeof *ranges);
    size_t range_count = file_tier_ranges(ranges);
    size_t bytes = 0, file_bytes = 0;
    for (long t = 0; t < threads; t++)
        for (size_t i = 0; i < handover_slots; i++) {
            char *block = servers[t].table[i];
            if (block == NULL) continue;
            size_t usable = malloc_usable_size(block);
            bytes += usable;
            if (in_ranges(block, ranges, range_count)) file_bytes += usable;
        }
    printf("handover ok %zu %zu\n", bytes, file_bytes);
    return 0;
}

static int place(long mib)
{
    size_t n;
    size_t total = (size_t)mib << 20;
    struct block *blocks = fill_mixed(total, 1, &n);
    size_t page = (size_t)sysconf(_SC_PAGESIZE), cap = 0, count = 0;
    for (size_t i = 0; i < n; i++) cap += blocks[i].size / page + 2;
    uintptr_t *pages = map_array(cap * sizeof *pages);
    for (size_t i = 0; i < n; i++) {
        uintptr_t first = (uintptr_t)blocks[i].ptr / page;
        uintptr_t last = ((uintptr_t)blocks[i].ptr + blocks[i].size - 1) / page;
        for (uintptr_t p = first; p <= last; p++) pages[count++] = p * page;
    }
    qsort(pages, count, sizeof *pages, cmp_uintptr);
    size_t unique = 0;
    for (size_t i = 0; i < count; i++)
        if (unique == 0 || pages[unique - 1] != pages[i]) pages[unique++] = pages[i];
    static size_t nodes[node_count_max];
    size_t absent = 0, errors = 0;
    int max_node = 0;
    int *status = map_array(query_batch_pages * sizeof *status);
    for (size_t at = 0; at < unique; at += query_batch_pages) {
        size_t len = unique - at < query_batch_pages ? unique - at : query_batch_pages;
        if (syscall(SYS_move_pages, 0, len, (void **)(pages + at), NULL, status, 0) != 0) {
            errors += len;
            continue;
        }
        for (size_t i = 0; i < len; i++) {
            if (status[i] >= 0 && status[i] < node_count_max) {
                nodes[status[i]]++;
                if (status[i] > max_node) max_node = status[i];
            } else if (status[i] == -ENOENT) absent++;
            else errors++;
        }
    }
    printf("{\"bytes\":%zu,\"blocks\":%zu,\"pages\":%zu,\"nodes\":[", total, n, unique);
    for (int i = 0; i <= max_node; i++) printf("%s%zu", i ? "," : "", nodes[i]);
    printf("],\"absent\":%zu,\"errors\":%zu}\n", absent, errors);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: memtier_probe family|zero N|freenull N|ratio MIB|fill MIB|"
                        "lastline MIB|fork THREADS FORKS|place MIB|handover THREADS GENERATIONS\n");
        return 2;
    }
    const char *mode = argv[1];
    long a = argc > 2 ? strtol(argv[2], NULL, 10) : 0;
    long b = argc > 3 ? strtol(argv[3], NULL, 10) : 0;
    if (strcmp(mode, "family") == 0) return family();
    if (strcmp(mode, "zero") == 0) return zero(a);
    if (strcmp(mode, "freenull") == 0) return freenull(a);
    if (strcmp(mode, "ratio") == 0) return ratio(a);
    if (strcmp(mode, "fill") == 0) return fill(a);
    if (strcmp(mode, "lastline") == 0) return lastline(a);
    if (strcmp(mode, "fork") == 0) return fork_test(a, b);
    if (strcmp(mode, "place") == 0) return place(a);
    if (strcmp(mode, "handover") == 0) return handover(a, b);
    fprintf(stderr, "memtier_probe: unknown mode %s\n", mode);
    return 2;
}
