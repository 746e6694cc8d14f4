/*
 * stress.c — threads, fork/exec, foreign pointers and out-of-memory against tiermem's
 * allocators (issue 6). Built twice from this file:
 *   -DSTRESS_HMALLOC  through the hmalloc API (libhmalloc.so), so valgrind, which knows
 *                     nothing of hmalloc, checks this program and the library's own accesses;
 *   (no define)       through malloc/free, to run under LD_PRELOAD=libmemtier.so.
 *
 * Modes (one per run; the last stdout line is JSON or "ok ..."; failures print one
 * "stress: ..." line on stderr and exit 1):
 *   threads T N      T threads x N ops: malloc/calloc/realloc chains/free of mixed sizes
 *                    (16 B .. 4 MiB), cross-thread frees through a shared exchange, every block
 *                    filled with a pattern derived from its address and size and verified
 *                    before it is freed or after it is moved; then everything is freed (what
 *                    is left in the exchange by a thread that then exits) and, after
 *                    settle_after_shrink, RSS is read again (STRESS_SMAPS=1: the mappings
 *                    still resident, on stderr). Prints {"threads","ops","rss_before_kib","rss_peak_kib",
 *                    "rss_after_kib","mapped_bytes","checked_blocks"} (mapped_bytes: hmalloc only).
 *   fork T F         T threads churn while the main thread forks F times; each child verifies a
 *                    pre-fork block, allocates and frees mixed sizes, and exit(0)s. "ok fork F"
 *   spawn T N        T threads churn while the main thread starts /bin/true N times with
 *                    posix_spawn and N times with vfork+execve, each exiting 0. "ok spawn N"
 *   oom MIB          RLIMIT_AS = current size + MIB; allocates 1 MiB blocks, then 4 KiB ones,
 *                    then 64 B ones until NULL (errno must be ENOMEM), frees all, allocates
 *                    as much again. "ok oom BLOCKS"
 *   foreign_free     free() of a static buffer and of a stack address (malloc build: memtier
 *                    ignores pointers it does not own), then ordinary use. "ok foreign_free"
 *   foreign_realloc  realloc() of a static buffer: must end in one line and SIGABRT.
 *   small_stacks B   a thread with a B-byte stack (16384 = PTHREAD_STACK_MIN) allocates 8 MiB
 *                    (new chunks mapped and placed) and frees it: the allocator's static TLS
 *                    (glibc puts it on the thread's stack: a 256 KiB TLS block once made
 *                    pthread_create fail with EINVAL, which node reports as "pthread_create:
 *                    Invalid argument") and its stack frames must fit. "ok small_stacks B"
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef STRESS_HMALLOC
#include "hmalloc.h"
#define ALLOC(n) hmalloc(n)
#define CALLOC(k, n) hcalloc(k, n)
#define REALLOC(p, n) hrealloc(p, n)
#define FREE(p) hfree(p)
#define API "hmalloc"
#else
#define ALLOC(n) malloc(n)
#define CALLOC(k, n) calloc(k, n)
#define REALLOC(p, n) realloc(p, n)
#define FREE(p) free(p)
#define API "malloc"
#endif

extern char **environ;

enum {
  slots_per_thread = 256,
  exchange_slots = 1024,
  threads_max = 64,
  edge_bytes = 1024, /* blocks > sparse_min_bytes: pattern on both ends and one word per page */
  sparse_min_bytes = 4096,
  page_guess = 4096,
};

static void die(const char *what) {
  fprintf(stderr, "stress: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  fprintf(stderr, "stress: %s\n", line);
  exit(1);
}

static uint64_t mix(uint64_t x) { /* splitmix64's finalizer */
  x ^= x >> 30; x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27; x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/* ---- blocks: the first word holds the size, the rest a pattern of (address, size) ---- */

static uint64_t key_of(const void *p, size_t n) { return (uintptr_t)p * 0x9e3779b97f4a7c15ull ^ n; }

/* Calls visit(word offset) for each checked 8-byte word at offset >= 8 and < limit. */
#define FOR_EACH_WORD(n, limit, off, body)                                                  \
  do {                                                                                      \
    size_t lim_ = (limit) & ~(size_t)7;                                                     \
    if ((n) <= sparse_min_bytes) {                                                          \
      for (size_t off = 8; off < lim_; off += 8) body;                                      \
    } else {                                                                                \
      for (size_t off = 8; off < edge_bytes && off < lim_; off += 8) body;                  \
      for (size_t off = page_guess; off + edge_bytes < ((n) & ~(size_t)7) && off < lim_;    \
           off += page_guess) body;                                                         \
      for (size_t off = ((n) & ~(size_t)7) - edge_bytes; off < lim_; off += 8) body;        \
    }                                                                                       \
  } while (0)

static void fill(unsigned char *p, size_t n) {
  uint64_t key = key_of(p, n);
  memcpy(p, &n, sizeof n);
  FOR_EACH_WORD(n, n, off, {
    uint64_t w = mix(key + off);
    memcpy(p + off, &w, 8);
  });
}

/* Checks the pattern `fill` wrote for a block of n bytes with `key`, in p's first `limit` bytes. */
static void verify_as(const unsigned char *p, uint64_t key, size_t n, size_t limit, const char *when) {
  FOR_EACH_WORD(n, limit, off, {
    uint64_t w;
    memcpy(&w, p + off, 8);
    if (w != mix(key + off))
      fail("%s: block %p (%zu B) corrupt at offset %zu", when, (void *)p, n, off);
  });
}

static size_t size_of_block(const unsigned char *p) {
  size_t n;
  memcpy(&n, p, sizeof n);
  return n;
}

static void verify_and_free(unsigned char *p, const char *when) {
  size_t n = size_of_block(p);
  verify_as(p, key_of(p, n), n, n, when);
  FREE(p);
}

/* Mixed sizes: mostly small, some page runs, a few huge blocks. */
static size_t pick_size(uint64_t r) {
  unsigned c = (unsigned)(r % 1000);
  r >>= 10;
  if (c < 600) return 16 + r % 241;           /* 16 .. 256 */
  if (c < 850) return 257 + r % 3840;         /* .. 4 KiB */
  if (c < 970) return 4097 + r % 61440;       /* .. 64 KiB */
  if (c < 999) return 65537 + r % 983040;     /* .. 1 MiB */
  return (1 << 20) + r % (3 << 20);           /* .. 4 MiB: huge */
}

/* ---- the threads mode ---- */

static _Atomic(unsigned char *) exchange[exchange_slots];
static atomic_ulong checked_blocks;

struct worker {
  pthread_t tid;
  unsigned index;
  unsigned long ops;
};

static unsigned char *new_block(size_t n, int zeroed) {
  unsigned char *p = zeroed ? CALLOC(1, n) : ALLOC(n);
  if (p == NULL) fail("%s(%zu) returned NULL", zeroed ? "calloc" : API, n);
  if (zeroed)
    for (size_t i = 0; i < n; i += (n > sparse_min_bytes ? 61 : 1))
      if (p[i] != 0) fail("calloc(%zu): byte %zu is %u, not 0", n, i, p[i]);
  fill(p, n);
  return p;
}

static void *work(void *arg) {
  struct worker *w = arg;
  unsigned char *slot[slots_per_thread] = {0};
  uint64_t state = mix(w->index + 1);
  unsigned long checked = 0;
  for (unsigned long op = 0; op < w->ops; op++) {
    uint64_t r = mix(state += 0x9e3779b97f4a7c15ull);
    unsigned i = (unsigned)(r % slots_per_thread);
    unsigned kind = (unsigned)((r >> 8) % 100);
    r >>= 16;
    if (kind < 40) { /* allocate (replacing what the slot held) */
      if (slot[i]) { verify_and_free(slot[i], "replace"); checked++; }
      slot[i] = new_block(pick_size(r), kind < 4);
    } else if (kind < 60) { /* free */
      if (slot[i]) { verify_and_free(slot[i], "free"); checked++; slot[i] = NULL; }
    } else if (kind < 80) { /* realloc: grow or shrink, contents kept up to the smaller size */
      if (!slot[i]) continue;
      unsigned char *old = slot[i];
      size_t n = size_of_block(old);
      uint64_t key = key_of(old, n); /* before realloc: `old` may not be read after it */
      size_t m = (r & 1) ? n + n / 2 + (r >> 1) % 4096 : 16 + (r >> 1) % n;
      if (m > (8u << 20)) m = 16 + m % 4096; /* a chain ends: start small again */
      unsigned char *moved = REALLOC(old, m);
      if (moved == NULL) fail("realloc(%zu -> %zu) returned NULL", n, m);
      verify_as(moved, key, n, n < m ? n : m, "realloc");
      checked++;
      fill(moved, m);
      slot[i] = moved;
    } else { /* cross-thread: swap a block with the exchange, free what another thread left */
      if (!slot[i]) continue;
      unsigned char *theirs = atomic_exchange(&exchange[r % exchange_slots], slot[i]);
      slot[i] = NULL;
      if (theirs) { verify_and_free(theirs, "cross-thread free"); checked++; }
    }
  }
  for (unsigned i = 0; i < slots_per_thread; i++)
    if (slot[i]) { verify_and_free(slot[i], "thread end"); checked++; }
  atomic_fetch_add(&checked_blocks, checked);
  return NULL;
}

static long status_kib(const char *field) {
  FILE *f = fopen("/proc/self/status", "r");
  if (f == NULL) die("/proc/self/status");
  char line[256];
  long kib = -1;
  size_t len = strlen(field);
  while (fgets(line, sizeof line, f))
    if (strncmp(line, field, len) == 0 && line[len] == ':') kib = strtol(line + len + 1, NULL, 10);
  fclose(f);
  if (kib < 0) fail("no %s in /proc/self/status", field);
  return kib;
}

static void start_workers(struct worker *w, unsigned threads, unsigned long ops) {
  for (unsigned t = 0; t < threads; t++) {
    w[t].index = t;
    w[t].ops = ops;
    errno = pthread_create(&w[t].tid, NULL, work, &w[t]);
    if (errno) die("pthread_create");
  }
}

static void join_workers(struct worker *w, unsigned threads) {
  for (unsigned t = 0; t < threads; t++) {
    errno = pthread_join(w[t].tid, NULL);
    if (errno) die("pthread_join");
  }
}

static void *drain_exchange(void *arg) {
  for (unsigned i = 0; i < exchange_slots; i++) {
    unsigned char *p = atomic_exchange(&exchange[i], NULL);
    if (p) { verify_and_free(p, "exchange drain"); atomic_fetch_add(&checked_blocks, 1); }
  }
  return arg;
}

static unsigned long long mapped_bytes(void) {
#ifdef STRESS_HMALLOC
  return hm_pool_mapped_bytes(hm_default_pool());
#else
  return 0;
#endif
}

/* STRESS_SMAPS=1: the mappings holding >= 256 KiB resident, on stderr (where RSS stays). */
static void print_resident_mappings(void) {
  if (getenv("STRESS_SMAPS") == NULL) return;
  FILE *f = fopen("/proc/self/smaps", "r");
  if (f == NULL) die("/proc/self/smaps");
  char line[512], range[512] = "";
  long kib;
  while (fgets(line, sizeof line, f)) {
    if (line[0] >= '0' && line[0] <= 'f' && strchr(line, '-') && strchr(line, ' ') > strchr(line, '-'))
      snprintf(range, sizeof range, "%s", line);
    else if (sscanf(line, "Rss: %ld kB", &kib) == 1 && kib >= 256)
      fprintf(stderr, "%6ld KiB  %s", kib, range);
  }
  fclose(f);
}

/* What the allocator promises a program that freed what it had: its pages go back at its first
 * free of a page run once its pools have stayed below 1/8 of their peak for 200 ms (a shorter
 * drop is churn, as when all of a program's threads exit and the next ones start; there is no
 * background thread). So: wait past that, then free a few 64 KiB blocks (page runs, spread over
 * memtier's tiers by its ratio) before reading RSS. */
static void settle_after_shrink(void) {
  enum { blocks = 16, block_bytes = 64 << 10 };
  struct timespec pause = {0, 300 * 1000 * 1000};
  nanosleep(&pause, NULL);
  void *p[blocks];
  for (int i = 0; i < blocks; i++) {
    p[i] = ALLOC(block_bytes);
    if (p[i] == NULL) fail("%s(%d) returned NULL", API, block_bytes);
  }
  for (int i = 0; i < blocks; i++) FREE(p[i]);
}

static int threads_mode(unsigned threads, unsigned long ops) {
  if (threads < 1 || threads > threads_max) fail("threads must be 1..%d", threads_max);
  static struct worker w[threads_max];
  long before = status_kib("VmRSS");
  start_workers(w, threads, ops);
  join_workers(w, threads);
  /* In a thread that then exits, like the workers: what stays resident is then what the
   * allocator keeps, not blocks parked in a live thread's cache (with STRESS_DRAIN_MAIN=1 the
   * main thread drains, and its cache pins the slabs of up to ~2.7 MiB of cached blocks). */
  if (getenv("STRESS_DRAIN_MAIN") != NULL) {
    drain_exchange(NULL);
  } else {
    pthread_t drainer;
    if ((errno = pthread_create(&drainer, NULL, drain_exchange, NULL)) != 0) die("pthread_create");
    pthread_join(drainer, NULL);
  }
  settle_after_shrink();
  long peak = status_kib("VmHWM");
  long after = status_kib("VmRSS");
  print_resident_mappings();
  printf("{\"api\":\"%s\",\"threads\":%u,\"ops\":%lu,\"rss_before_kib\":%ld,\"rss_peak_kib\":%ld,"
         "\"rss_after_kib\":%ld,\"mapped_bytes\":%llu,\"checked_blocks\":%lu}\n",
         API, threads, ops, before, peak, after, mapped_bytes(), atomic_load(&checked_blocks));
  return 0;
}

/* ---- fork and exec while other threads allocate ---- */

static atomic_int churn_stop;

static void *churn(void *arg) {
  uint64_t state = mix((uintptr_t)arg);
  unsigned char *held[64] = {0};
  while (!atomic_load(&churn_stop)) {
    uint64_t r = mix(state += 0x9e3779b97f4a7c15ull);
    unsigned i = (unsigned)(r % 64);
    if (held[i]) verify_and_free(held[i], "churn");
    held[i] = new_block(pick_size(r >> 8) % 200000 + 16, 0);
  }
  for (unsigned i = 0; i < 64; i++)
    if (held[i]) verify_and_free(held[i], "churn end");
  return NULL;
}

static void start_churn(pthread_t *tids, unsigned threads) {
  if (threads > threads_max) fail("threads must be 0..%d", threads_max);
  atomic_store(&churn_stop, 0);
  for (unsigned t = 0; t < threads; t++) {
    errno = pthread_create(&tids[t], NULL, churn, (void *)(uintptr_t)(t + 1));
    if (errno) die("pthread_create");
  }
}

static void stop_churn(pthread_t *tids, unsigned threads) {
  atomic_store(&churn_stop, 1);
  for (unsigned t = 0; t < threads; t++) pthread_join(tids[t], NULL);
}

static void expect_exit_0(pid_t pid, const char *what, int i) {
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) die("waitpid");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    fail("%s #%d: child %s %d", what, i, WIFSIGNALED(status) ? "killed by signal" : "exited",
         WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
}

static int fork_mode(unsigned threads, int forks) {
  pthread_t tids[threads_max];
  start_churn(tids, threads);
  for (int i = 0; i < forks; i++) {
    unsigned char *before = new_block(100 + (size_t)i * 37 % 50000, 0);
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
      /* The child: the other threads are gone, their locks must not be held. */
      verify_and_free(before, "child: pre-fork block");
      unsigned char *mine[200];
      for (int k = 0; k < 200; k++) mine[k] = new_block(pick_size(mix((uint64_t)k + 7)), k % 9 == 0);
      for (int k = 0; k < 200; k++) verify_and_free(mine[k], "child");
      exit(0);
    }
    verify_and_free(before, "parent: pre-fork block");
    expect_exit_0(pid, "fork", i);
  }
  stop_churn(tids, threads);
  printf("ok fork %d\n", forks);
  return 0;
}

static int spawn_mode(unsigned threads, int n) {
  pthread_t tids[threads_max];
  char *const argv[] = {"true", NULL};
  start_churn(tids, threads);
  for (int i = 0; i < n; i++) {
    pid_t pid;
    errno = posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ);
    if (errno) die("posix_spawn");
    expect_exit_0(pid, "posix_spawn", i);
    pid = vfork();
    if (pid < 0) die("vfork");
    if (pid == 0) {
      execve("/bin/true", argv, environ);
      _exit(127); /* after vfork: nothing but exec or _exit */
    }
    expect_exit_0(pid, "vfork+execve", i);
  }
  stop_churn(tids, threads);
  printf("ok spawn %d\n", n);
  return 0;
}

/* ---- out of memory: an address-space limit, then recovery ---- */

static int oom_mode(long mib) {
  long vm_kib = status_kib("VmSize");
  struct rlimit lim = {(rlim_t)(vm_kib + mib * 1024) * 1024, (rlim_t)(vm_kib + mib * 1024) * 1024};
  if (setrlimit(RLIMIT_AS, &lim) != 0) die("setrlimit");
  /* Bookkeeping outside the heap under test, mapped before the limit bites. */
  size_t cap = (size_t)mib * 1024 * 64 + 1024;
  void **blocks = mmap(NULL, cap * sizeof *blocks, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (blocks == MAP_FAILED) die("mmap bookkeeping");
  static const size_t sizes[] = {1 << 20, 4096, 64};
  size_t count = 0;
  for (unsigned s = 0; s < 3; s++) {
    for (;;) {
      if (count == cap) fail("more than %zu blocks fit under a %ld MiB limit", cap, mib);
      errno = 0;
      unsigned char *p = ALLOC(sizes[s]);
      if (p == NULL) {
        if (errno != ENOMEM) fail("%s(%zu) returned NULL with errno %d, not ENOMEM", API, sizes[s], errno);
        break;
      }
      if ((uintptr_t)p == (uintptr_t)MAP_FAILED) fail("%s(%zu) returned MAP_FAILED", API, sizes[s]);
      fill(p, sizes[s]);
      blocks[count++] = p;
    }
  }
  if (count < 16) fail("only %zu blocks fit under a %ld MiB limit", count, mib);
  for (size_t i = 0; i < count; i++) verify_and_free(blocks[i], "oom");
  /* Recovery: as many 1 MiB blocks as a quarter of the limit holds. */
  size_t again = (size_t)mib / 4;
  for (size_t i = 0; i < again; i++) {
    if ((blocks[i] = ALLOC(1 << 20)) == NULL) fail("after freeing, %s(1 MiB) #%zu failed", API, i);
    fill(blocks[i], 1 << 20);
  }
  for (size_t i = 0; i < again; i++) verify_and_free(blocks[i], "oom recovery");
  printf("ok oom %zu\n", count);
  return 0;
}

/* ---- pointers the allocator did not hand out ---- */

static char static_buffer[4096] __attribute__((aligned(64)));

static int foreign_free_mode(void) {
  char on_stack[64];
  /* Through a volatile pointer: gcc rightly warns about freeing these at compile time. */
  void *volatile foreign[] = {static_buffer, static_buffer + 100, on_stack};
  for (unsigned i = 0; i < 3; i++) free(foreign[i]);
  unsigned char *p = new_block(1000, 0);
  verify_and_free(p, "after foreign frees");
  printf("ok foreign_free\n");
  return 0;
}

static int foreign_realloc_mode(void) {
  void *volatile foreign = static_buffer;
  void *p = realloc(foreign, 100);
  printf("not detected: realloc returned %p\n", p);
  return 0;
}

/* 8 MiB in 64 KiB blocks: more than a chunk holds, so the pool maps and places new ones. */
static void *small_stack_thread(void *arg) {
  (void)arg;
  unsigned char *blocks[128];
  for (unsigned i = 0; i < 128; i++) blocks[i] = new_block(65536, 0);
  for (unsigned i = 0; i < 128; i++) verify_and_free(blocks[i], "small stack");
  return NULL;
}

static int small_stacks_mode(size_t stack_bytes) {
  pthread_attr_t attr;
  pthread_t tid;
  if (pthread_attr_init(&attr) != 0) die("pthread_attr_init");
  if ((errno = pthread_attr_setstacksize(&attr, stack_bytes)) != 0) die("pthread_attr_setstacksize");
  errno = pthread_create(&tid, &attr, small_stack_thread, NULL);
  if (errno) fail("pthread_create with a %zu B stack: %s", stack_bytes, strerror(errno));
  pthread_join(tid, NULL);
  pthread_attr_destroy(&attr);
  printf("ok small_stacks %zu\n", stack_bytes);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) fail("usage: stress MODE [ARGS]");
  const char *mode = argv[1];
  long a = argc > 2 ? strtol(argv[2], NULL, 10) : 0;
  long b = argc > 3 ? strtol(argv[3], NULL, 10) : 0;
  setvbuf(stdout, NULL, _IONBF, 0);
  if (!strcmp(mode, "threads")) return threads_mode((unsigned)a, (unsigned long)b);
  if (!strcmp(mode, "fork")) return fork_mode((unsigned)a, (int)b);
  if (!strcmp(mode, "spawn")) return spawn_mode((unsigned)a, (int)b);
  if (!strcmp(mode, "oom")) return oom_mode(a);
  if (!strcmp(mode, "foreign_free")) return foreign_free_mode();
  if (!strcmp(mode, "foreign_realloc")) return foreign_realloc_mode();
  if (!strcmp(mode, "small_stacks")) return small_stacks_mode((size_t)a);
  fail("unknown mode %s", mode);
}
