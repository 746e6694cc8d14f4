/*
 * memtier_hostile.c — a plain C program (no hmalloc) that does what programs do and allocators
 * forget: runs with stdout closed, closes every descriptor, runs out of descriptors, fails an
 * allocation on purpose, grows blocks with realloc, starts many short threads. Run it with
 * LD_PRELOAD=libmemtier.so (issue 12). One mode per run; results on stderr (stdout may be closed):
 *
 *   closedout          started with fd 1 closed: fills blocks with a pattern, printf()s 256 KiB
 *                      (which must fail with EBADF), checks the blocks; "closedout ok"
 *   userfile PATH      closes every fd >= 3 (close_range), opens PATH, writes 10 bytes, allocates
 *                      64 MiB in mixed sizes (written), frees it; the file must still hold exactly
 *                      its 10 bytes; "userfile ok"
 *   failonce           one malloc that cannot succeed (2^47 bytes), then 1000 malloc(32) and
 *                      20000 malloc(256), kept live; "failonce ok nulls N"
 *   toolarge MIB       one malloc(MIB MiB) (more than the FS_DAX tier holds), then 20000
 *                      malloc(256), kept live; "toolarge ok nulls N"
 *   reallocgrow N MIB  N blocks of 8 KiB (more than the 4 KiB credit a thread spends in one
 *                      tier before it chooses again, so every tier holds some), each realloc()ed
 *                      to MIB MiB and kept; their first 16 bytes checked; "reallocgrow N failed F"
 *   threads N          N short-lived threads one after the other (each mallocs and frees);
 *                      "threads N rss_growth_kib K" (RSS after N minus after 1000 warm-up threads)
 *   rounds N GIB       N rounds of malloc(GIB GiB), first and last byte written, free;
 *                      "rounds ok N", or "rounds failed at I"
 *   fdlimit MIB        malloc(MIB MiB) written whole, then opens /dev/null until EMFILE, frees
 *                      the block, closes them again, and mallocs MIB MiB once more;
 *                      "fdlimit ok opened N" or "fdlimit failed"
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static void fail(const char *what)
{
    fprintf(stderr, "memtier_hostile: %s (errno %s)\n", what, strerror(errno));
    exit(1);
}

static void *map_array(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) fail("mmap");
    return p;
}

enum { pattern_blocks = 4096 };

static int closedout(void)
{
    char **blocks = map_array(pattern_blocks * sizeof *blocks);
    for (size_t i = 0; i < pattern_blocks; i++) {
        size_t size = 16 + i * 37 % 8000;
        blocks[i] = malloc(size);
        if (blocks[i] == NULL) fail("malloc");
        memset(blocks[i], (int)(i & 0xff), size);
    }
    errno = 0;
    ssize_t raw = write(1, "x", 1);
    int raw_errno = errno;
    for (int i = 0; i < 256; i++) printf("%01023d\n", i);
    int flushed = fflush(stdout);
    for (size_t i = 0; i < pattern_blocks; i++) {
        size_t size = 16 + i * 37 % 8000;
        for (size_t j = 0; j < size; j++)
            if ((unsigned char)blocks[i][j] != (i & 0xff)) {
                fprintf(stderr, "closedout: block %zu byte %zu changed\n", i, j);
                return 1;
            }
        free(blocks[i]);
    }
    if (raw != -1 || raw_errno != EBADF || flushed != EOF) {
        fprintf(stderr, "closedout: write(1) returned %zd (%s), fflush %d: fd 1 is open\n", raw,
                strerror(raw_errno), flushed);
        return 1;
    }
    fprintf(stderr, "closedout ok\n");
    return 0;
}

static int userfile(const char *path)
{
    free(malloc(1 << 20)); /* the tiers exist */
    if (syscall(SYS_close_range, 3U, ~0U, 0U) != 0) fail("close_range");
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) fail("open");
    const char data[] = "user data\n";
    if (write(fd, data, 10) != 10) fail("write");
    enum { count = 2048 };
    char **blocks = map_array(count * sizeof *blocks);
    for (size_t i = 0; i < count; i++) { /* 64 MiB: 2048 x 32 KiB */
        blocks[i] = malloc(32768);
        if (blocks[i] == NULL) fail("malloc");
        memset(blocks[i], 0x5a, 32768);
    }
    char *big = malloc(8 << 20);
    if (big == NULL) fail("malloc 8 MiB");
    memset(big, 0x77, 8 << 20);
    free(big);
    for (size_t i = 0; i < count; i++) free(blocks[i]);
    struct stat st;
    if (fstat(fd, &st) != 0) fail("fstat");
    char back[64] = {0};
    ssize_t n = pread(fd, back, sizeof back, 0);
    if (st.st_size != 10 || n != 10 || memcmp(back, data, 10) != 0) {
        fprintf(stderr, "userfile: the file (fd %d) holds %lld bytes, starting %02x %02x %02x %02x\n",
                fd, (long long)st.st_size, (unsigned char)back[0], (unsigned char)back[1],
                (unsigned char)back[2], (unsigned char)back[3]);
        return 1;
    }
    fprintf(stderr, "userfile ok\n");
    return 0;
}

static int small_ones(const char *mode)
{
    long nulls = 0;
    for (int i = 0; i < 1000; i++)
        if (malloc(32) == NULL) nulls++;
    for (int i = 0; i < 20000; i++) {
        char *p = malloc(256);
        if (p == NULL) {
            nulls++;
            continue;
        }
        memset(p, 1, 256);
    }
    fprintf(stderr, "%s ok nulls %ld\n", mode, nulls);
    return 0;
}

static int failonce(void)
{
    volatile size_t impossible = (size_t)1 << 47; /* hidden from gcc's size checks */
    errno = 0;
    void *p = malloc(impossible);
    if (p != NULL || errno != ENOMEM) fail("malloc(2^47) did not fail with ENOMEM");
    return small_ones("failonce");
}

static int toolarge(long mib)
{
    char *first = malloc(65536); /* DRAM (ties go to the faster tier): the next one is FS_DAX's */
    if (first == NULL) fail("malloc");
    memset(first, 1, 65536);
    char *p = malloc((size_t)mib << 20);
    if (p == NULL) fail("the large malloc");
    p[0] = 1;
    return small_ones("toolarge");
}

static int reallocgrow(long n, long mib)
{
    char **blocks = map_array((size_t)n * sizeof *blocks);
    long failed = 0;
    for (long i = 0; i < n; i++) {
        blocks[i] = malloc(8192);
        if (blocks[i] == NULL) fail("malloc(8192)");
        memset(blocks[i], (int)i, 16);
    }
    for (long i = 0; i < n; i++) {
        char *grown = realloc(blocks[i], (size_t)mib << 20);
        if (grown == NULL) {
            failed++;
            continue;
        }
        for (int j = 0; j < 16; j++)
            if (grown[j] != (char)i) fail("realloc lost the block's contents");
        grown[((size_t)mib << 20) - 1] = 1;
        blocks[i] = grown;
    }
    for (long i = 0; i < n; i++) free(blocks[i]);
    fprintf(stderr, "reallocgrow %ld failed %ld\n", n, failed);
    return 0;
}

static void *thread_body(void *arg)
{
    char *p = malloc(100 + (size_t)(uintptr_t)arg % 200);
    if (p != NULL) p[0] = 1;
    __asm__ volatile("" : : "r"(p) : "memory"); /* gcc may not drop the malloc/free pair */
    free(p);
    return NULL;
}

static long rss_kib(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL) fail("/proc/self/statm");
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2) fail("statm");
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static void run_threads(long n)
{
    for (long i = 0; i < n; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, thread_body, (void *)(uintptr_t)i) != 0) fail("pthread_create");
        pthread_join(t, NULL);
    }
}

static int threads(long n)
{
    run_threads(1000);
    long before = rss_kib();
    run_threads(n);
    fprintf(stderr, "threads %ld rss_growth_kib %ld\n", n, rss_kib() - before);
    return 0;
}

static int rounds(long n, long gib)
{
    size_t size = (size_t)gib << 30;
    for (long i = 0; i < n; i++) {
        char *p = malloc(size);
        if (p == NULL) {
            fprintf(stderr, "rounds failed at %ld\n", i);
            return 1;
        }
        p[0] = 1;
        p[size - 1] = 1;
        free(p);
    }
    fprintf(stderr, "rounds ok %ld\n", n);
    return 0;
}

static int fdlimit(long mib)
{
    size_t size = (size_t)mib << 20;
    char *p = malloc(size);
    if (p == NULL) fail("the first malloc");
    memset(p, 0x33, size);
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0) fail("getrlimit");
    int *fds = map_array(lim.rlim_cur * sizeof *fds);
    long opened = 0;
    for (;;) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0) break;
        fds[opened++] = fd;
    }
    if (errno != EMFILE) fail("open /dev/null");
    free(p);
    for (long i = 0; i < opened; i++) close(fds[i]);
    char *again = malloc(size);
    if (again == NULL) {
        fprintf(stderr, "fdlimit failed: the tier did not get its %ld MiB back\n", mib);
        return 1;
    }
    memset(again, 0x44, size);
    free(again);
    fprintf(stderr, "fdlimit ok opened %ld\n", opened);
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    long a = argc > 2 ? atol(argv[2]) : 0, b = argc > 3 ? atol(argv[3]) : 0;
    if (strcmp(mode, "closedout") == 0) return closedout();
    if (strcmp(mode, "userfile") == 0 && argc > 2) return userfile(argv[2]);
    if (strcmp(mode, "failonce") == 0) return failonce();
    if (strcmp(mode, "toolarge") == 0) return toolarge(a);
    if (strcmp(mode, "reallocgrow") == 0) return reallocgrow(a, b);
    if (strcmp(mode, "threads") == 0) return threads(a);
    if (strcmp(mode, "rounds") == 0) return rounds(a, b);
    if (strcmp(mode, "fdlimit") == 0) return fdlimit(a);
    fprintf(stderr, "usage: memtier_hostile closedout|userfile PATH|failonce|toolarge MIB|"
                    "reallocgrow N MIB|threads N|rounds N GIB|fdlimit MIB\n");
    return 2;
}
