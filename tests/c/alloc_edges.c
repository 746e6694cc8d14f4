/*
 * alloc_edges.c — a plain C program (no hmalloc) probing the edges of the malloc family, run
 * bare (glibc) and under libmemtier.so (LD_PRELOAD) so that the two outputs can be compared.
 * One mode per run:
 *
 *   aligned_overflow  posix_memalign, aligned_alloc, memalign, valloc and pvalloc with sizes
 *                     near SIZE_MAX and alignments from 8 B to 1 MiB; one line per call:
 *                     "CALL(ALIGNMENT, SIZE): NULL ENOMEM" (or "block", or "misaligned block")
 *   aligned_zero      size 0 with alignments from 8 B to 64 MiB; one line per call: "CALL(A, 0):
 *                     aligned block" when the result is a non-NULL, aligned block with a
 *                     usable size that free() takes back
 *   signal_reentry    a SIGALRM handler allocating 64 KiB while the program allocates and frees
 *                     64 KiB blocks in a loop, interrupted every 100 us (undefined behaviour:
 *                     malloc is not async-signal-safe); prints "no re-entry seen in N signals"
 *                     if it gets through 10 s without the allocator ending it
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *outcome(void *p, size_t alignment)
{
    if (p == NULL) return errno == ENOMEM ? "NULL ENOMEM" : "NULL, errno not ENOMEM";
    return (uintptr_t)p % alignment == 0 ? "block" : "misaligned block";
}

static int aligned_overflow(void)
{
    const size_t sizes[] = {SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 4095, SIZE_MAX - (2u << 20),
                            (size_t)1 << 62};
    for (size_t alignment = 8; alignment <= (1u << 20); alignment *= 2) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            size_t size = sizes[i];
            void *p = (void *)1;
            int rc = posix_memalign(&p, alignment, size);
            printf("posix_memalign(%zu, %#zx): %s\n", alignment, size,
                   rc == ENOMEM ? "NULL ENOMEM" : rc != 0 ? "error, not ENOMEM" : outcome(p, alignment));
            errno = 0;
            printf("aligned_alloc(%zu, %#zx): %s\n", alignment, size, outcome(aligned_alloc(alignment, size), alignment));
            errno = 0;
            printf("memalign(%zu, %#zx): %s\n", alignment, size, outcome(memalign(alignment, size), alignment));
        }
    }
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        errno = 0;
        printf("valloc(%#zx): %s\n", sizes[i], outcome(valloc(sizes[i]), 4096));
        errno = 0;
        printf("pvalloc(%#zx): %s\n", sizes[i], outcome(pvalloc(sizes[i]), 4096));
    }
    return 0;
}

static const char *zero_outcome(void *p, size_t alignment)
{
    if (p == NULL) return "NULL";
    if ((uintptr_t)p % alignment != 0) return "misaligned block";
    if (malloc_usable_size(p) == 0) return "block of no usable size";
    free(p);
    return "aligned block";
}

static int aligned_zero(void)
{
    for (size_t alignment = 8; alignment <= (64u << 20); alignment *= 2) {
        void *p = NULL;
        int rc = posix_memalign(&p, alignment, 0);
        printf("posix_memalign(%zu, 0): %s\n", alignment, rc != 0 ? "error" : zero_outcome(p, alignment));
        printf("aligned_alloc(%zu, 0): %s\n", alignment, zero_outcome(aligned_alloc(alignment, 0), alignment));
        printf("memalign(%zu, 0): %s\n", alignment, zero_outcome(memalign(alignment, 0), alignment));
    }
    printf("valloc(0): %s\n", zero_outcome(valloc(0), 4096));
    return 0;
}

static volatile sig_atomic_t signals_seen;

static void allocate_in_handler(int sig)
{
    (void)sig;
    free(malloc(64 << 10)); /* not async-signal-safe: what this mode is about */
    signals_seen++;
}

static int signal_reentry(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = allocate_in_handler;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval every = {{0, 100}, {0, 100}};
    setitimer(ITIMER_REAL, &every, NULL);
    time_t end = time(NULL) + 10;
    while (time(NULL) < end) {
        for (int i = 0; i < 1000; i++) {
            char *p = malloc((64 << 10) + (i & 7) * 4096);
            if (p != NULL) p[0] = 1;
            free(p);
        }
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    printf("no re-entry seen in %d signals\n", (int)signals_seen);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: alloc_edges aligned_overflow|aligned_zero|signal_reentry\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (strcmp(argv[1], "aligned_overflow") == 0) return aligned_overflow();
    if (strcmp(argv[1], "aligned_zero") == 0) return aligned_zero();
    if (strcmp(argv[1], "signal_reentry") == 0) return signal_reentry();
    fprintf(stderr, "alloc_edges: unknown mode %s\n", argv[1]);
    return 2;
}
