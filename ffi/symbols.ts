/**
 * The one symbol table of libhmalloc.so: every function of `zig-src/include/hmalloc.h`, in the
 * header's order, each parameter commented with its C type.
 *
 * Types are chosen for Deno's fast calls (measured here, Deno 2.9.6): `size_t`/`off_t`/`long` are
 * 64-bit integers passed as **bigint** (~8 ns; a JS number takes the ~130 ns slow path), data
 * arguments (strings, out-arrays) are `buffer` (~10–25 ns, any ArrayBuffer or TypedArray), and
 * addresses the library handed out are `pointer` (the `Deno.PointerObject` it returned).
 * C strings are passed as NUL-terminated UTF-8 in a `buffer`.
 *
 * @example
 * ```ts
 * import { symbols } from "./symbols.ts";
 * console.log(Object.keys(symbols).length); // 21
 * ```
 *
 * @module
 */

/** Deno FFI declarations of every function in `hmalloc.h`. */
export const symbols = {
  // ---- the hmalloc pool: malloc(3) semantics ----

  /** `void *hmalloc(size_t size)` */
  hmalloc: {
    parameters: [
      "usize", // size_t size
    ],
    result: "pointer", // void *
  },
  /** `void *hcalloc(size_t nmemb, size_t size)` */
  hcalloc: {
    parameters: [
      "usize", // size_t nmemb
      "usize", // size_t size
    ],
    result: "pointer", // void *
  },
  /** `void *hrealloc(void *ptr, size_t size)` */
  hrealloc: {
    parameters: [
      "pointer", // void *ptr
      "usize", // size_t size
    ],
    result: "pointer", // void *
  },
  /** `void hfree(void *ptr)` */
  hfree: {
    parameters: [
      "pointer", // void *ptr
    ],
    result: "void",
  },
  /** `void *haligned_alloc(size_t alignment, size_t size)` */
  haligned_alloc: {
    parameters: [
      "usize", // size_t alignment
      "usize", // size_t size
    ],
    result: "pointer", // void *
  },
  /** `int hposix_memalign(void **memptr, size_t alignment, size_t size)` */
  hposix_memalign: {
    parameters: [
      "buffer", // void **memptr (8-byte out-buffer)
      "usize", // size_t alignment
      "usize", // size_t size
    ],
    result: "i32", // int
  },
  /** `size_t hmalloc_usable_size(void *ptr)` */
  hmalloc_usable_size: {
    parameters: [
      "pointer", // void *ptr
    ],
    result: "usize", // size_t
  },
  /** `void *hmmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset)` */
  hmmap: {
    parameters: [
      "pointer", // void *addr
      "usize", // size_t length
      "i32", // int prot
      "i32", // int flags
      "i32", // int fd
      "i64", // off_t offset
    ],
    result: "pointer", // void * (MAP_FAILED = -1 on error)
  },
  /** `int hmunmap(void *addr, size_t length)` */
  hmunmap: {
    parameters: [
      "pointer", // void *addr
      "usize", // size_t length
    ],
    result: "i32", // int
  },

  // ---- pools with explicit policies ----

  /** `hm_pool *hm_pool_create(const char *policy, char *error, size_t error_size)` */
  hm_pool_create: {
    parameters: [
      "buffer", // const char *policy (NUL-terminated)
      "buffer", // char *error (out, may be NULL)
      "usize", // size_t error_size
    ],
    result: "pointer", // hm_pool * (NULL on error)
  },
  /** `void hm_pool_destroy(hm_pool *pool)` */
  hm_pool_destroy: {
    parameters: [
      "pointer", // hm_pool *pool
    ],
    result: "void",
  },
  /** `hm_pool *hm_default_pool(void)` */
  hm_default_pool: {
    parameters: [],
    result: "pointer", // hm_pool *
  },
  /** `void *hm_pool_malloc(hm_pool *pool, size_t size)` */
  hm_pool_malloc: {
    parameters: [
      "pointer", // hm_pool *pool
      "usize", // size_t size
    ],
    result: "pointer", // void *
  },
  /** `void *hm_pool_calloc(hm_pool *pool, size_t nmemb, size_t size)` */
  hm_pool_calloc: {
    parameters: [
      "pointer", // hm_pool *pool
      "usize", // size_t nmemb
      "usize", // size_t size
    ],
    result: "pointer", // void *
  },
  /** `void *hm_pool_aligned_alloc(hm_pool *pool, size_t alignment, size_t size)` */
  hm_pool_aligned_alloc: {
    parameters: [
      "pointer", // hm_pool *pool
      "usize", // size_t alignment
      "usize", // size_t size
    ],
    result: "pointer", // void *
  },
  /**
   * `void *hm_pool_mmap(hm_pool *pool, void *addr, size_t length, int prot, int flags, int fd,
   * off_t offset)`
   */
  hm_pool_mmap: {
    parameters: [
      "pointer", // hm_pool *pool
      "pointer", // void *addr
      "usize", // size_t length
      "i32", // int prot
      "i32", // int flags
      "i32", // int fd
      "i64", // off_t offset
    ],
    result: "pointer", // void * (MAP_FAILED = -1 on error)
  },
  /** `int hm_pool_policy(hm_pool *pool, char *buf, size_t size)` */
  hm_pool_policy: {
    parameters: [
      "pointer", // hm_pool *pool
      "buffer", // char *buf (out)
      "usize", // size_t size
    ],
    result: "i32", // int (length like snprintf, or -1)
  },
  /** `unsigned long long hm_pool_mbind_calls(hm_pool *pool)` */
  hm_pool_mbind_calls: {
    parameters: [
      "pointer", // hm_pool *pool
    ],
    result: "u64", // unsigned long long
  },
  /** `unsigned long long hm_pool_mapped_bytes(hm_pool *pool)` */
  hm_pool_mapped_bytes: {
    parameters: [
      "pointer", // hm_pool *pool
    ],
    result: "u64", // unsigned long long
  },

  // ---- where are my pages, and moving them ----

  /**
   * `long hm_residency(const void *addr, size_t length, size_t *pages_per_node,
   * size_t max_nodes)`
   */
  hm_residency: {
    parameters: [
      "pointer", // const void *addr
      "usize", // size_t length
      "buffer", // size_t *pages_per_node (out, BigUint64Array of max_nodes)
      "usize", // size_t max_nodes
    ],
    result: "i64", // long (pages not present, or -errno)
  },
  /** `long hm_migrate(void *addr, size_t length, const char *nodes)` */
  hm_migrate: {
    parameters: [
      "pointer", // void *addr
      "usize", // size_t length
      "buffer", // const char *nodes (NUL-terminated)
    ],
    result: "i64", // long (pages not moved, or -errno)
  },
  /**
   * `long hm_move_pages(int pid, size_t count, const void *const *pages, const int *nodes,
   * int *status, int flags)`
   */
  hm_move_pages: {
    parameters: [
      "i32", // int pid
      "usize", // size_t count
      "buffer", // const void *const *pages (BigUint64Array)
      "buffer", // const int *nodes (Int32Array, or null to query)
      "buffer", // int *status (out, Int32Array)
      "i32", // int flags
    ],
    result: "i64", // long (0, pages not migrated, or -errno)
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** The type of {@link symbols}. */
export type HmallocSymbols = typeof symbols;
