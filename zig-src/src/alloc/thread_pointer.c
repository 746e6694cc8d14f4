/* The hot thread-locals of the allocator, defined in C because Zig cannot
 * choose a TLS model: initial-exec (one %fs-relative load) instead of the
 * general-dynamic __tls_get_addr call a shared library gets by default — 7% of
 * the instructions of a malloc/free pair. Hidden, so libhmalloc.so and
 * libmemtier.so loaded in one process each keep their own. 16 bytes of static
 * TLS: within the surplus glibc keeps for dlopen'ed libraries (Deno).
 * One array, so that a path reading both slots (libmemtier's two-tier malloc)
 * loads the thread pointer and the array's offset once:
 *   hm_tls[0]  the thread's cache of every pool (thread_cache.zig)
 *   hm_tls[1]  libmemtier's per-thread tier ledger (memtier/thread_state.zig;
 *              unused in libhmalloc.so) */
__attribute__((visibility("hidden"), tls_model("initial-exec"))) __thread void *hm_tls[2];
