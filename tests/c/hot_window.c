/*
 * hot_window.c — the workload of the tiering checks (issue 14): pinned to CPU 0, it maps TOTAL
 * MiB, writes it 16 MiB at a time and moves each chunk to SLOW_NODE with move_pages(2) (so no
 * memory policy is left on the mapping, and node 0 never holds more than one chunk), then reads a
 * WINDOW MiB hot window in a loop for PHASE_S seconds, and moves the window to the next place
 * (offset 2 * WINDOW * phase) for each further phase; the rest is never touched again.
 *
 * Every REPORT_MS it counts, with move_pages in query mode (the kernel's own answer, page by
 * page), and prints one JSON line:
 *
 *   {"phase":0,"t_ms":1234,"hot_fast_pct":97.5,"cold_slow_pct":99.1,"proc_fast_mib":70.2}
 *
 * hot_fast_pct: the current window's pages on FAST_NODE; cold_slow_pct: the pages never in any
 * window so far on SLOW_NODE (every 16th page, to keep the query cheap under TCG);
 * proc_fast_mib: all of the process's pages on FAST_NODE (/proc/self/numa_maps, every mapping).
 * Transparent huge pages are off for the mapping (MADV_NOHUGEPAGE) so that pages are counted and
 * moved 4 KiB at a time.
 *
 * With HOT_WINDOW_GO=PATH in the environment it waits, after the "ready" line, until PATH exists
 * before the first phase (so that a tiering process attached with --pid sees every phase).
 *
 * usage: hot_window TOTAL_MIB WINDOW_MIB PHASES PHASE_S REPORT_MS FAST_NODE SLOW_NODE
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum { page = 4096, chunk_pages = 4096, cold_stride = 16 };

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Pages of the process on `node`, in MiB, from /proc/self/numa_maps. */
static double proc_node_mib(int node)
{
    FILE *f = fopen("/proc/self/numa_maps", "r");
    if (f == NULL) return -1;
    char line[4096], key[16];
    snprintf(key, sizeof key, " N%d=", node);
    double kib = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        char *n = strstr(line, key), *ps = strstr(line, "kernelpagesize_kB=");
        if (n == NULL) continue;
        long pages = strtol(n + strlen(key), NULL, 10);
        long size_kib = ps != NULL ? strtol(ps + 18, NULL, 10) : 4;
        kib += (double)pages * size_kib;
    }
    fclose(f);
    return kib / 1024;
}

/* Percentage of `n` pages (from `first`, every `stride`) on `node`. */
static double pct_on(char *first, size_t n, size_t stride, int node, void **pages, int *status)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i += stride) pages[k++] = first + i * page;
    if (k == 0) return 100;
    if (syscall(SYS_move_pages, 0, k, pages, NULL, status, 0) != 0) return -1;
    size_t on = 0;
    for (size_t i = 0; i < k; i++) on += status[i] == node;
    return 100.0 * on / k;
}

int main(int argc, char **argv)
{
    if (argc != 8) {
        fprintf(stderr, "usage: hot_window TOTAL_MIB WINDOW_MIB PHASES PHASE_S REPORT_MS FAST SLOW\n");
        return 2;
    }
    size_t total = strtoull(argv[1], NULL, 10) << 20, window = strtoull(argv[2], NULL, 10) << 20;
    int phases = atoi(argv[3]), fast = atoi(argv[6]), slow = atoi(argv[7]);
    double phase_ms = atof(argv[4]) * 1e3, report_ms = atof(argv[5]);
    if (phases < 1 || 2 * window * (phases - 1) + window > total) {
        fprintf(stderr, "hot_window: %d phases of a %zu MiB window do not fit\n", phases, window >> 20);
        return 2;
    }
    cpu_set_t cpus;
    CPU_ZERO(&cpus);
    CPU_SET(0, &cpus);
    if (sched_setaffinity(0, sizeof cpus, &cpus) != 0) perror("hot_window: sched_setaffinity");
    char *p = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("hot_window: mmap");
        return 1;
    }
    madvise(p, total, MADV_NOHUGEPAGE);
    size_t n = total / page;
    void **pages = malloc(n * sizeof *pages);
    int *nodes = malloc(chunk_pages * sizeof *nodes), *status = malloc(n * sizeof *status);
    unsigned char *ever_hot = calloc(n, 1);
    if (pages == NULL || nodes == NULL || status == NULL || ever_hot == NULL) return 1;
    for (size_t c = 0; c < n; c += chunk_pages) {
        size_t k = n - c < chunk_pages ? n - c : chunk_pages;
        memset(p + c * page, 0x5a, k * page);
        for (size_t i = 0; i < k; i++) {
            pages[i] = p + (c + i) * page;
            nodes[i] = slow;
        }
        if (syscall(SYS_move_pages, 0, k, pages, nodes, status, 1 << 1) < 0) {
            fprintf(stderr, "hot_window: move_pages to node %d: %s\n", slow, strerror(errno));
            return 1;
        }
    }
    double start_slow = pct_on(p, n, 1, slow, pages, status);
    printf("{\"ready\":true,\"pid\":%d,\"slow_pct\":%.2f}\n", getpid(), start_slow);
    fflush(stdout);
    const char *go = getenv("HOT_WINDOW_GO");
    while (go != NULL && access(go, F_OK) != 0) usleep(50 * 1000);
    volatile unsigned long sum = 0;
    size_t wpages = window / page;
    for (int ph = 0; ph < phases; ph++) {
        char *w = p + 2 * window * ph;
        size_t first = 2 * wpages * ph;
        memset(ever_hot + first, 1, wpages);
        double t0 = now_ms(), next = t0;
        for (;;) {
            for (size_t i = 0; i < wpages; i++) sum += (unsigned char)w[i * page];
            double t = now_ms();
            if (t < next) continue;
            next = t + report_ms;
            double hot = pct_on(w, wpages, 1, fast, pages, status);
            size_t cold = 0, on = 0;
            for (size_t i = 0; i < n; i += cold_stride) {
                if (ever_hot[i]) continue;
                pages[cold++] = p + i * page;
            }
            if (cold > 0 && syscall(SYS_move_pages, 0, cold, pages, NULL, status, 0) == 0) {
                for (size_t i = 0; i < cold; i++) on += status[i] == slow;
            }
            printf("{\"phase\":%d,\"t_ms\":%.0f,\"hot_fast_pct\":%.2f,\"cold_slow_pct\":%.2f,"
                   "\"proc_fast_mib\":%.2f}\n",
                   ph, t - t0, hot, cold > 0 ? 100.0 * on / cold : 100.0, proc_node_mib(fast));
            fflush(stdout);
            if (t - t0 >= phase_ms) break;
        }
    }
    return sum == 42 ? 3 : 0;
}
