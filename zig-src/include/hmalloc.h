/*
 * hmalloc.h — tiermem's heterogeneous-memory allocator (libhmalloc.so).
 *
 * The hmalloc API has malloc(3)/mmap(2) semantics, but its memory comes from
 * the "hmalloc pool", whose NUMA policy is set by the launcher (tiermem's
 * `cli.ts`, or SK hynix HMSDK's `hmctl`) through the environment, read once
 * when the library is loaded:
 *
 *   HMALLOC_POLICY="bind:2"                    tiermem's own variable:
 *                  "preferred:3"               MODE[:NODES], NODES in numactl's
 *                  "preferred-many:2,3"        syntax (0-3, 0,2, all, !0, +0);
 *                  "interleave:0-3"            weighted-interleave takes its weights
 *                  "weighted-interleave:0-3"   from /sys/kernel/mm/mempolicy/ or,
 *                  "weighted-interleave:0=3,2=1"  explicitly, as NODE=WEIGHT pairs.
 *                  "default"
 *   HMALLOC_NODEMASK=<decimal mask>, HMALLOC_MPOL_MODE=<MPOL_* number>
 *                  the reference's variables (nodes 0-63), accepted too.
 *
 * With no policy the pool behaves like malloc: pages follow the process's own
 * policy (e.g. under `numactl -p 1`). A malformed or unsatisfiable policy in the
 * environment prints one line naming the variable and the bad token and ends
 * the program with exit status 2 before main runs.
 *
 * Passing hfree/hrealloc/hmalloc_usable_size a pointer that hmalloc did not
 * return (or one already freed) prints one line naming the call and aborts.
 */
#ifndef TIERMEM_HMALLOC_H
#define TIERMEM_HMALLOC_H

#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What the compiler may assume, as glibc's <stdlib.h> says of malloc: the
 * functions call nothing of the caller's (so globals the caller never let
 * escape stay in registers across a call), throw nothing, and return fresh
 * memory of the given size. */
#if defined(__GNUC__) || defined(__clang__)
#define HM_LEAF __attribute__((__nothrow__, __leaf__))
#define HM_ALLOC(...) __attribute__((__malloc__, __warn_unused_result__, __alloc_size__(__VA_ARGS__)))
#define HM_RESIZE(n) __attribute__((__warn_unused_result__, __alloc_size__(n)))
#else
#define HM_LEAF
#define HM_ALLOC(...)
#define HM_RESIZE(n)
#endif

/* ---- the hmalloc pool: malloc(3) semantics ---------------------------- */

void *hmalloc(size_t size) HM_LEAF HM_ALLOC(1);
void *hcalloc(size_t nmemb, size_t size) HM_LEAF HM_ALLOC(1, 2);
void *hrealloc(void *ptr, size_t size) HM_LEAF HM_RESIZE(2);
void hfree(void *ptr) HM_LEAF;
void *haligned_alloc(size_t alignment, size_t size) HM_LEAF HM_ALLOC(2);
int hposix_memalign(void **memptr, size_t alignment, size_t size) HM_LEAF;
size_t hmalloc_usable_size(void *ptr) HM_LEAF;

/* mmap(2) + the pool's policy, applied before the first touch. On failure to
 * map or to apply the policy: MAP_FAILED with errno set (nothing stays mapped). */
void *hmmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset);
int hmunmap(void *addr, size_t length);

/* ---- pools with explicit policies -------------------------------------- */

/* A pool is an allocator of its own whose chunks are placed by its policy.
 * Blocks from any pool are freed with hfree and resized with hrealloc (which
 * keeps the block's pool). */
typedef struct hm_pool hm_pool;

/* policy uses HMALLOC_POLICY's syntax. On error returns NULL, sets errno
 * (EINVAL: malformed or unsatisfiable policy, ENOMEM) and, if error is not
 * NULL, writes a one-line message naming the bad token into error. */
hm_pool *hm_pool_create(const char *policy, char *error, size_t error_size);
/* Unmaps every block of the pool at once; its pointers become invalid. */
void hm_pool_destroy(hm_pool *pool);
/* The pool behind hmalloc() (policy from the environment). */
hm_pool *hm_default_pool(void);
void *hm_pool_malloc(hm_pool *pool, size_t size) HM_LEAF HM_ALLOC(2);
void *hm_pool_calloc(hm_pool *pool, size_t nmemb, size_t size) HM_LEAF HM_ALLOC(2, 3);
void *hm_pool_aligned_alloc(hm_pool *pool, size_t alignment, size_t size) HM_LEAF HM_ALLOC(3);
void *hm_pool_mmap(hm_pool *pool, void *addr, size_t length, int prot, int flags, int fd,
                   off_t offset);
/* Writes the pool's policy in HMALLOC_POLICY syntax; returns its length
 * (like snprintf), or -1 with errno set. */
int hm_pool_policy(hm_pool *pool, char *buf, size_t size);

/* Statistics: mbind calls made for a pool's memory so far (one per chunk,
 * huge block or hm_pool_mmap), and the bytes of address space it maps. */
unsigned long long hm_pool_mbind_calls(hm_pool *pool);
unsigned long long hm_pool_mapped_bytes(hm_pool *pool);

/* ---- where are my pages, and moving them ------------------------------- */

/* Counts the pages of [addr, addr+length) per node (move_pages query) into
 * pages_per_node[0..max_nodes). Returns the number of pages not yet present
 * (never touched), or -errno. */
long hm_residency(const void *addr, size_t length, size_t *pages_per_node, size_t max_nodes);

/* Migrates the present pages of [addr, addr+length) to nodes (numactl syntax;
 * interleaved when several), contents intact. Returns the number of pages that
 * could not be moved, or -errno (-EINVAL for a bad node list). */
long hm_migrate(void *addr, size_t length, const char *nodes);

/* move_pages(2) on process pid (0 = this one), as the kernel defines it:
 * nodes NULL queries, else moves each page to nodes[i]; per-page node or
 * -errno in status. Returns 0, the number of pages not migrated, or -errno. */
long hm_move_pages(int pid, size_t count, const void *const *pages, const int *nodes, int *status,
                   int flags);

#ifdef __cplusplus
}
#endif

#endif /* TIERMEM_HMALLOC_H */
