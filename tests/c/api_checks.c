/* tests/c/api_checks.c — the hmalloc C API's contract, one named check per run.
 *
 * usage: api_checks CHECK      prints "ok" and exits 0 when the behaviour holds,
 *                              or "FAIL: <why>" and exits 1.
 * Checks that must abort (invalid pointers) are run by the Deno test, which
 * expects SIGABRT and the one-line message on stderr.
 * Each of the reference's bugs (SK hynix HMSDK hmalloc) has a check here.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include "hmalloc.h"

#define CHECK(cond, ...) do { if (!(cond)) { printf("FAIL: " __VA_ARGS__); printf("\n"); return 1; } } while (0)

static int alignments(void) {
  /* The reference ignored alignments above 4 KiB. */
  for (size_t a = sizeof(void *); a <= (1ul << 30); a <<= 1) {
    size_t sizes[] = {1, 24, 4097, 3u << 20};
    for (int i = 0; i < 4; i++) {
      void *p = haligned_alloc(a, sizes[i]);
      CHECK(p != NULL, "haligned_alloc(%zu, %zu) = NULL", a, sizes[i]);
      CHECK((uintptr_t)p % a == 0, "haligned_alloc(%zu, %zu) = %p, misaligned", a, sizes[i], p);
      CHECK(hmalloc_usable_size(p) >= sizes[i], "usable size %zu < %zu", hmalloc_usable_size(p), sizes[i]);
      memset(p, 0x5a, sizes[i]);
      hfree(p);
      void *q = NULL;
      CHECK(hposix_memalign(&q, a, sizes[i]) == 0 && (uintptr_t)q % a == 0, "hposix_memalign(%zu)", a);
      hfree(q);
    }
  }
  return 0;
}

static int bad_alignments(void) {
  void *p = (void *)1;
  /* The reference accepted alignment 2. */
  CHECK(hposix_memalign(&p, 2, 16) == EINVAL, "hposix_memalign(2) did not give EINVAL");
  CHECK(hposix_memalign(&p, 24, 16) == EINVAL, "hposix_memalign(24) did not give EINVAL");
  CHECK(hposix_memalign(&p, 0, 16) == EINVAL, "hposix_memalign(0) did not give EINVAL");
  CHECK(p == (void *)1, "hposix_memalign wrote *memptr on failure");
  errno = 0;
  CHECK(haligned_alloc(48, 96) == NULL && errno == EINVAL, "haligned_alloc(48) did not fail with EINVAL");
  return 0;
}

static int calloc_overflow(void) {
  /* The reference returned memory for hcalloc(2^33, 2^32). */
  errno = 0;
  /* volatile: hmalloc.h's alloc_size attribute makes gcc reject the constant overflow. */
  volatile size_t count = 1ul << 33, size = 1ul << 32;
  CHECK(hcalloc(count, size) == NULL, "hcalloc(2^33, 2^32) returned memory");
  CHECK(errno == ENOMEM, "errno %d, want ENOMEM", errno);
  unsigned char *z = hcalloc(1000, 33);
  CHECK(z != NULL, "hcalloc(1000, 33) failed");
  for (int i = 0; i < 33000; i++) CHECK(z[i] == 0, "hcalloc byte %d not zero", i);
  hfree(z);
  return 0;
}

static int errno_not_success(void) {
  /* The reference read errno to decide success. */
  errno = ENOMEM;
  void *p = hmalloc(100);
  CHECK(p != NULL, "hmalloc failed because errno was ENOMEM beforehand");
  hfree(p);
  return 0;
}

static int ulimit_v(void) {
  /* The reference handed out MAP_FAILED as memory under `ulimit -v`. */
  struct rlimit r = {256u << 20, 256u << 20};
  CHECK(setrlimit(RLIMIT_AS, &r) == 0, "setrlimit");
  errno = 0;
  void *big = hmalloc(1ul << 30);
  CHECK(big == NULL, "hmalloc(1 GiB) under a 256 MiB limit returned %p", big);
  CHECK(errno == ENOMEM, "errno %d, want ENOMEM", errno);
  void *m = hmmap(NULL, 1ul << 30, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(m == MAP_FAILED && errno == ENOMEM, "hmmap under the limit: %p errno %d", m, errno);
  /* Small blocks still work, and after freeing, so do bigger ones again. */
  void *blocks[64];
  for (int i = 0; i < 64; i++) CHECK((blocks[i] = hmalloc(1 << 20)) != NULL, "hmalloc(1 MiB) #%d", i);
  for (int i = 0; i < 64; i++) hfree(blocks[i]);
  void *again = hmalloc(32 << 20);
  CHECK(again != NULL, "hmalloc(32 MiB) after freeing failed");
  hfree(again);
  return 0;
}

static int zero_size(void) {
  void *a = hmalloc(0), *b = hmalloc(0);
  CHECK(a && b && a != b, "hmalloc(0) must give unique pointers");
  hfree(a); hfree(b);
  hfree(NULL);
  void *r = hrealloc(NULL, 10);
  CHECK(r != NULL, "hrealloc(NULL, 10)");
  CHECK(hrealloc(r, 0) == NULL, "hrealloc(p, 0) frees and returns NULL");
  return 0;
}

static int realloc_contents(void) {
  size_t sizes[] = {1, 17, 100, 3000, 40000, 1 << 20, 5 << 20, 64, 3};
  unsigned char *p = hmalloc(1);
  p[0] = 0;
  size_t have = 1;
  for (int i = 1; i < 9; i++) {
    p = hrealloc(p, sizes[i]);
    CHECK(p != NULL, "hrealloc to %zu", sizes[i]);
    size_t keep = have < sizes[i] ? have : sizes[i];
    for (size_t k = 0; k < keep; k++) CHECK(p[k] == (unsigned char)k, "byte %zu lost growing to %zu", k, sizes[i]);
    for (size_t k = 0; k < sizes[i]; k++) p[k] = (unsigned char)k;
    have = sizes[i];
  }
  hfree(p);
  return 0;
}

static int hmmap_basic(void) {
  char *m = hmmap(NULL, 8 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(m != MAP_FAILED, "hmmap failed: %s", strerror(errno));
  memset(m, 1, 8 << 20);
  CHECK(hmunmap(m, 8 << 20) == 0, "hmunmap");
  errno = 0;
  CHECK(hmmap(NULL, 4096, PROT_READ, MAP_PRIVATE, -1, 0) == MAP_FAILED && errno != 0, "hmmap with a bad fd must fail like mmap");
  return 0;
}

static void *thread_free(void *arg) {
  void **blocks = arg;
  for (int i = 0; i < 10000; i++) hfree(blocks[i]);
  return NULL;
}

static int cross_thread(void) {
  static void *blocks[10000];
  for (int round = 0; round < 20; round++) {
    for (int i = 0; i < 10000; i++) { blocks[i] = hmalloc(8 + i % 2000); memset(blocks[i], 7, 8); }
    pthread_t t;
    pthread_create(&t, NULL, thread_free, blocks);
    pthread_join(t, NULL);
  }
  unsigned long long mapped = hm_pool_mapped_bytes(hm_default_pool());
  CHECK(mapped < (64ull << 20), "20 rounds of 10k remote frees left %llu bytes mapped (leak?)", mapped);
  return 0;
}

static int address_space(void) {
  /* The reference reserved 5.4 GB of address space for 44 MB of live data. */
  static void *blocks[20000];
  for (int i = 0; i < 20000; i++) { blocks[i] = hmalloc(3000); memset(blocks[i], 1, 3000); }
  unsigned long long mapped = hm_pool_mapped_bytes(hm_default_pool());
  FILE *f = fopen("/proc/self/status", "r");
  char line[256]; long vm_kb = 0, rss_kb = 0;
  while (fgets(line, sizeof line, f)) { sscanf(line, "VmSize: %ld", &vm_kb); sscanf(line, "VmRSS: %ld", &rss_kb); }
  fclose(f);
  printf("pool_mapped_mib=%.1f live_mib=%.1f vmsize_mib=%.1f rss_mib=%.1f\n", mapped / 1048576.0, 20000 * 3000 / 1048576.0, vm_kb / 1024.0, rss_kb / 1024.0);
  CHECK(mapped <= 2ull * 20000 * 3000, "pool maps %llu bytes for %d live", mapped, 20000 * 3000);
  for (int i = 0; i < 20000; i++) hfree(blocks[i]);
  return 0;
}

static int pools(void) {
  char err[256] = "";
  hm_pool *p = hm_pool_create("bind:0", err, sizeof err);
  CHECK(p != NULL, "hm_pool_create(bind:0): %s", err);
  char desc[64];
  CHECK(hm_pool_policy(p, desc, sizeof desc) > 0 && strcmp(desc, "bind:0") == 0, "policy text \"%s\"", desc);
  void *a = hm_pool_malloc(p, 100), *b = hm_pool_calloc(p, 10, 10), *c = hm_pool_aligned_alloc(p, 1 << 16, 10);
  CHECK(a && b && c && (uintptr_t)c % (1 << 16) == 0, "pool allocations");
  a = hrealloc(a, 5000);
  CHECK(a != NULL, "hrealloc of a pool block");
  hfree(b);
  hm_pool_destroy(p); /* frees a and c too */
  errno = 0;
  CHECK(hm_pool_create("bind:x", err, sizeof err) == NULL && errno == EINVAL, "bad policy accepted");
  CHECK(strstr(err, "\"x\"") != NULL, "error does not name the bad token: %s", err);
  return 0;
}

/* glibc gives NULL/ENOMEM for all of these (posix_memalign: ENOMEM, *memptr untouched). */
static int aligned_overflow(void) {
  const size_t sizes[] = {SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 4095, SIZE_MAX - (2u << 20), (size_t)1 << 62};
  hm_pool *pool = hm_default_pool();
  for (size_t a = 8; a <= (1u << 20); a *= 2) {
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
      errno = 0;
      void *p = haligned_alloc(a, sizes[i]);
      CHECK(p == NULL && errno == ENOMEM, "haligned_alloc(%zu, %#zx) = %p, errno %d", a, sizes[i], p, errno);
      errno = 0;
      p = hm_pool_aligned_alloc(pool, a, sizes[i]);
      CHECK(p == NULL && errno == ENOMEM, "hm_pool_aligned_alloc(%zu, %#zx) = %p, errno %d", a, sizes[i], p, errno);
      void *q = (void *)1;
      int rc = hposix_memalign(&q, a, sizes[i]);
      CHECK(rc == ENOMEM && q == (void *)1, "hposix_memalign(%zu, %#zx) = %d, %p", a, sizes[i], rc, q);
    }
  }
  return 0;
}

/* Size 0 with any alignment: a unique, aligned block that hfree takes back (as glibc). */
static int aligned_zero_size(void) {
  hm_pool *pool = hm_default_pool();
  for (size_t a = 8; a <= ((size_t)1 << 30); a *= 2) {
    void *p = haligned_alloc(a, 0), *r = hm_pool_aligned_alloc(pool, a, 0), *q = NULL;
    CHECK(p != NULL && (uintptr_t)p % a == 0, "haligned_alloc(%zu, 0) = %p", a, p);
    CHECK(r != NULL && (uintptr_t)r % a == 0 && r != p, "hm_pool_aligned_alloc(%zu, 0) = %p", a, r);
    CHECK(hposix_memalign(&q, a, 0) == 0 && q != NULL && (uintptr_t)q % a == 0, "hposix_memalign(%zu, 0) = %p", a, q);
    CHECK(hmalloc_usable_size(p) >= 1, "haligned_alloc(%zu, 0): usable size 0", a);
    hfree(p);
    hfree(q);
    hfree(r);
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 2) { fprintf(stderr, "usage: api_checks CHECK\n"); return 2; }
  const char *c = argv[1];
  int rc = !strcmp(c, "alignments") ? alignments()
         : !strcmp(c, "bad_alignments") ? bad_alignments()
         : !strcmp(c, "calloc_overflow") ? calloc_overflow()
         : !strcmp(c, "errno_not_success") ? errno_not_success()
         : !strcmp(c, "ulimit_v") ? ulimit_v()
         : !strcmp(c, "zero_size") ? zero_size()
         : !strcmp(c, "realloc_contents") ? realloc_contents()
         : !strcmp(c, "hmmap_basic") ? hmmap_basic()
         : !strcmp(c, "cross_thread") ? cross_thread()
         : !strcmp(c, "address_space") ? address_space()
         : !strcmp(c, "pools") ? pools()
         : !strcmp(c, "aligned_overflow") ? aligned_overflow()
         : !strcmp(c, "aligned_zero_size") ? aligned_zero_size()
         : (fprintf(stderr, "unknown check %s\n", c), 2);
  if (rc == 0) printf("ok\n");
  return rc;
}
