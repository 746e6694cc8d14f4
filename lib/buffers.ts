/**
 * hmalloc for Deno: ArrayBuffers whose memory comes from libhmalloc.so's default pool, placed by
 * the launcher's policy (`tiermem -m 2 deno run …`, or `HMALLOC_POLICY`). Pools with a policy of
 * their own are in `pool.ts`; where the pages are, and moving them, in `residency.ts`.
 *
 * Safety: a buffer is freed through this API only (`hfree`, `hrealloc`, `hmunmap`, a scope's
 * end, the GC for managed buffers, or its pool's `destroy()`), and freeing detaches it: every
 * view of it then has length 0, so a freed buffer can never be read or written again. Freeing
 * something this module did not hand out, or freeing twice, throws a TypeError and never reaches
 * the C library (which would abort the process). Do not `transfer()` or `postMessage`-transfer
 * these buffers yourself: the registry knows the original object only.
 *
 * Cost (see `bench/ffi_bench.ts`): one FFI call, one non-owning ArrayBuffer over the block and
 * a private field stamped on it per allocation; `hfree` reads the field, detaches and makes one
 * FFI call. Freed default-pool blocks up to 1 KiB are recycled for the next `hmalloc` of the same
 * length (no FFI call either way; bounded to 64 KiB per realm). Sizes are JavaScript numbers,
 * converted to the bigint the fast FFI path wants.
 *
 * The library is found on first use by the synchronous chain of `ffi/library.ts`
 * (`TIERMEM_HMALLOC_LIB`, the local build, the user cache); {@link loadHmalloc} runs the whole
 * chain, building it with Zig when needed.
 *
 * @module
 */

import type { LibraryLocation, LocateOptions } from "../ffi/library.ts";
import {
  adoptBlock,
  alignedIn,
  allocIn,
  byteCount,
  callocIn,
  defaultState,
  findBlock,
  findMapping,
  forget,
  freeBlock,
  isBlock,
  load,
  manage,
  mappings,
  mmapIn,
  scopedBlock,
  sym,
  unmap,
} from "./registry.ts";

/**
 * Opens libhmalloc.so through the whole location chain — `TIERMEM_HMALLOC_LIB`, the local
 * build, the user cache, else a build from the package's Zig sources into the cache — and makes
 * it the library every function here uses. Optional: without it the first allocation opens the
 * library without building (and its Error says to call this). Idempotent.
 *
 * @example
 * ```ts
 * import { loadHmalloc } from "./buffers.ts";
 * const { path, source } = await loadHmalloc();
 * console.log(source, path); // e.g. local …/zig-src/zig-out/lib/libhmalloc.so
 * ```
 */
export async function loadHmalloc(options: LocateOptions = {}): Promise<LibraryLocation> {
  const library = await load(options);
  return { path: library.path, source: library.source };
}

/**
 * Allocates `size` bytes from the default pool (malloc(3) semantics: contents undefined).
 * `hmalloc(0)` returns a unique zero-length buffer that must still be freed.
 *
 * @throws {RangeError} when `size` is not a byte count, or the pool is out of memory.
 *
 * @example
 * ```ts
 * import { hfree, hmalloc } from "./buffers.ts";
 * const buf = hmalloc(64);
 * new Uint8Array(buf).fill(7);
 * hfree(buf);
 * console.log(buf.byteLength); // 0: freed buffers are detached
 * ```
 */
export function hmalloc(size: number): ArrayBuffer {
  return allocIn(defaultState, size, "hmalloc");
}

/**
 * Allocates `count` × `size` zeroed bytes from the default pool.
 *
 * @throws {RangeError} when an argument is not a byte count, the product overflows, or the pool
 * is out of memory.
 *
 * @example
 * ```ts
 * import { hcalloc, hfree } from "./buffers.ts";
 * const buf = hcalloc(16, 8);
 * console.log(new Float64Array(buf)); // 16 zeros
 * hfree(buf);
 * ```
 */
export function hcalloc(count: number, size: number): ArrayBuffer {
  return callocIn(defaultState, count, size, "hcalloc");
}

/**
 * Resizes a block (of any pool; it stays in its pool), keeping its first `min(old, size)`
 * bytes. The old buffer is detached; use the returned one. `hrealloc(buf, 0)` frees `buf` and
 * returns a new zero-length block. GC-managed blocks stay managed.
 *
 * @throws {TypeError} when `buffer` is not a live hmalloc block (nothing happens to it).
 * @throws {RangeError} when `size` is not a byte count or memory is short (`buffer` stays
 * valid).
 *
 * @example
 * ```ts
 * import { hfree, hmalloc, hrealloc } from "./buffers.ts";
 * const small = hmalloc(4);
 * new Uint8Array(small).set([1, 2, 3, 4]);
 * const big = hrealloc(small, 4096);
 * console.log(new Uint8Array(big, 0, 4), small.byteLength); // [1, 2, 3, 4] 0
 * hfree(big);
 * ```
 */
export function hrealloc(buffer: ArrayBuffer, size: number): ArrayBuffer {
  const found = findBlock(buffer, "hrealloc");
  const n = byteCount(size, "hrealloc", "size");
  const s = sym();
  // hrealloc(p, 0) frees p in C; here it yields a fresh zero-length block of the same pool.
  const pointer = size === 0
    ? s.hm_pool_malloc(found.pool.pointer, 0n)
    : s.hrealloc(found.pointer, n);
  if (pointer === null) throw new RangeError(`hrealloc: out of memory for ${size} bytes`);
  forget(buffer, found);
  buffer.transfer(0);
  if (size === 0) s.hfree(found.pointer);
  const resized = adoptBlock(found.pool, pointer, size, "hrealloc");
  return found.managed === undefined ? resized : manage(found.pool, resized);
}

/**
 * Allocates `size` bytes aligned to `alignment` (a power of two) from the default pool.
 *
 * @throws {RangeError} when `alignment` is not a power of two, `size` is not a byte count, or
 * the pool is out of memory.
 *
 * @example
 * ```ts
 * import { halignedAlloc, hfree } from "./buffers.ts";
 * const page = halignedAlloc(4096, 4096);
 * console.log(page.byteLength); // 4096
 * hfree(page);
 * ```
 */
export function halignedAlloc(alignment: number, size: number): ArrayBuffer {
  return alignedIn(defaultState, alignment, size, "halignedAlloc");
}

/**
 * The usable size of a block: at least its length (its size class may be larger). The extra
 * bytes are not part of the ArrayBuffer; `hrealloc` up to this size is cheap.
 *
 * @throws {TypeError} when `buffer` is not a live hmalloc block.
 *
 * @example
 * ```ts
 * import { hfree, hmalloc, hmallocUsableSize } from "./buffers.ts";
 * const buf = hmalloc(100);
 * console.log(hmallocUsableSize(buf)); // e.g. 112
 * hfree(buf);
 * ```
 */
export function hmallocUsableSize(buffer: ArrayBuffer): number {
  return Number(sym().hmalloc_usable_size(findBlock(buffer, "hmallocUsableSize").pointer));
}

/**
 * Frees a block of any pool (explicit or GC-managed) and detaches `buffer`: every view of it
 * gets length 0.
 *
 * @throws {TypeError} naming the buffer when it is not a live hmalloc block: already freed
 * (detached), from `hmmap`, or never allocated here. Nothing is freed then.
 *
 * @example
 * ```ts
 * import { hfree, hmalloc } from "./buffers.ts";
 * const buf = hmalloc(8);
 * const view = new Uint32Array(buf);
 * hfree(buf);
 * console.log(view.length); // 0
 * try {
 *   hfree(buf);
 * } catch (error) {
 *   console.log(String(error)); // TypeError: hfree: the ArrayBuffer is detached (…)
 * }
 * ```
 */
export function hfree(buffer: ArrayBuffer): void {
  freeBlock(buffer);
}

/** Options of {@link hmmap}. */
export interface HmmapOptions {
  /** `MAP_SHARED` (shared with children after fork) instead of `MAP_PRIVATE`. Default false. */
  shared?: boolean;
}

/**
 * Maps `length` bytes of anonymous read-write memory placed by the default pool's policy
 * (applied before the first touch), like mmap(2). Release it with {@link hmunmap}.
 *
 * @throws {RangeError} when `length` is 0 or not a byte count.
 * @throws {Error} naming errno when the kernel refuses the mapping or the policy.
 *
 * @example
 * ```ts
 * import { hmmap, hmunmap } from "./buffers.ts";
 * const map = hmmap(1 << 20);
 * new Uint8Array(map)[0] = 1;
 * hmunmap(map);
 * ```
 */
export function hmmap(length: number, options: HmmapOptions = {}): ArrayBuffer {
  return mmapIn(defaultState, length, options.shared === true, "hmmap");
}

/**
 * Unmaps a buffer from `hmmap` (of any pool) and detaches it.
 *
 * @throws {TypeError} when `buffer` is not a live `hmmap` mapping.
 *
 * @example
 * ```ts
 * import { hmmap, hmunmap } from "./buffers.ts";
 * const map = hmmap(4096);
 * hmunmap(map);
 * console.log(map.byteLength); // 0
 * ```
 */
export function hmunmap(buffer: ArrayBuffer): void {
  unmap(buffer, findMapping(buffer, "hmunmap"));
}

/**
 * Allocates `size` bytes from the default pool, freed by the garbage collector once `buffer`
 * is unreachable (a FinalizationRegistry) — or earlier by `hfree`, which then unregisters it.
 * The GC gives no guarantee of when, or whether before exit, it runs finalizers: use this for
 * convenience, not for memory you need back promptly (prefer `hfree` or {@link allocScoped}).
 *
 * @example
 * ```ts
 * import { hmallocManaged } from "./buffers.ts";
 * const buf = hmallocManaged(1024);
 * new Uint8Array(buf).fill(1);
 * // no hfree needed; it is also allowed
 * ```
 */
export function hmallocManaged(size: number): ArrayBuffer {
  return manage(defaultState, allocIn(defaultState, size, "hmallocManaged"));
}

/** A block freed when its `using` scope ends. */
export interface ScopedBuffer extends Disposable {
  /** The block; detached once the scope ended (or after an explicit `hfree`). */
  readonly buffer: ArrayBuffer;
}

/**
 * Allocates `size` bytes from the default pool for a `using` scope: the block is freed (and
 * detached) when the scope ends. Freeing it earlier with `hfree` is allowed; the scope's end
 * then does nothing.
 *
 * @example
 * ```ts
 * import { allocScoped } from "./buffers.ts";
 * let kept: ArrayBuffer;
 * {
 *   using scoped = allocScoped(256);
 *   kept = scoped.buffer;
 *   new Uint8Array(kept).fill(9);
 * }
 * console.log(kept.byteLength); // 0: freed at the end of the block
 * ```
 */
export function allocScoped(size: number): ScopedBuffer {
  return scopedBlock(hmalloc(size));
}

/**
 * Whether `buffer` is a live buffer of this module (a block of any pool, or a mapping).
 *
 * @example
 * ```ts
 * import { hfree, hmalloc, isHmallocBuffer } from "./buffers.ts";
 * const buf = hmalloc(1);
 * console.log(isHmallocBuffer(buf), isHmallocBuffer(new ArrayBuffer(1))); // true false
 * hfree(buf);
 * console.log(isHmallocBuffer(buf)); // false
 * ```
 */
export function isHmallocBuffer(buffer: ArrayBuffer): boolean {
  return isBlock(buffer) || mappings.has(buffer);
}
