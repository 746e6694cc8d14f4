/**
 * The TypeScript side's registry of every buffer libhmalloc.so handed out (internal: `mod.ts`
 * does not re-export it; `buffers.ts`, `pool.ts` and `residency.ts` build on it).
 *
 * Why a registry at all: the C library aborts the process when `hfree`/`hrealloc` get a pointer
 * it did not return or one already freed (hmalloc.h). A TypeScript user must never be able to
 * reach that abort, so every ArrayBuffer we create over library memory is recorded here with its
 * pointer, and only recorded pointers ever go back to C. An ArrayBuffer we do not know is a
 * TypeError; a freed one has been detached (`buf.transfer()`: every view of it becomes length 0)
 * and removed, so use-after-free reads nothing and double free is that same TypeError.
 *
 * Layout, chosen for the hot path `hmalloc(64)` + `hfree`:
 * - every explicitly freed block carries its pointer, pool and list slot in private fields
 *   stamped onto the ArrayBuffer itself (`BlockTag`: invisible to reflection, so they cannot be
 *   forged or copied onto another buffer; a clone or slice of a block is not a block). Measured
 *   here, a `Map<ArrayBuffer, pointer>` set + get + delete cost ~0.2–0.4 µs per block, as much
 *   as the whole rest of `hmalloc(64)` + `hfree`; the private fields cost next to nothing.
 *   Freeing sets the pointer to null.
 * - pools other than the default also list their blocks in an array (swap-remove on free, the
 *   slot in the tag), because destroying a pool must find its live buffers; the default pool
 *   lives as long as the process and keeps no list.
 * - GC-managed blocks are in one `WeakMap` (a Map would keep them alive) and a
 *   `FinalizationRegistry` frees them; each pool keeps `WeakRef`s to them so that destroying the
 *   pool can detach those still reachable.
 * - `hmmap` mappings are in one Map with their length (rare, so an object each is fine).
 *
 * The library is opened once, on first use (the synchronous chain: env var, local build,
 * cache), or earlier by `loadHmalloc()` (which may build it with Zig), and is never closed: its
 * pools own every buffer's memory.
 *
 * @module
 */

import { getSystemErrorName } from "node:util";

import {
  type HmallocLibrary,
  type HmallocSymbols,
  type LocateOptions,
  openLibrary,
  openLibrarySync,
} from "../ffi/library.ts";

/** The opened library's functions. */
export type Symbols = Deno.StaticForeignLibraryInterface<HmallocSymbols>;

let library: HmallocLibrary | undefined;
let functions: Symbols | undefined;

/** The library's functions, opening it on first use (synchronous chain, no build). */
export function sym(): Symbols {
  return functions ?? openOnFirstUse();
}

/** Why {@link preload} could not open the library (reported at the first use). */
let preloadError: Error | undefined;

function openOnFirstUse(): Symbols {
  try {
    library = openLibrarySync();
  } catch (error) {
    // The asynchronous chain (prebuilt binaries, a Zig build) already ran at import and failed:
    // its error lists every place tried.
    if (preloadError !== undefined) throw preloadError;
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(`${message}\nOr call \`await loadHmalloc()\` once to build it with Zig.`, {
      cause: error,
    });
  }
  functions = library.symbols;
  openLibc();
  return functions;
}

/** Opens the library through the whole chain (may build it) unless it is open already. */
export async function load(options: LocateOptions = {}): Promise<HmallocLibrary> {
  if (library !== undefined) return library;
  const opened = await openLibrary(options);
  if (library !== undefined) {
    // A concurrent load (or a synchronous first use) won: keep one handle.
    opened.close();
    return library;
  }
  library = opened;
  functions = opened.symbols;
  openLibc();
  return opened;
}

/**
 * Runs the whole asynchronous chain once (`mod.ts` awaits it at import, so no separate
 * `loadHmalloc()` is needed); a failure is kept and thrown by the first function that needs the
 * library, so that importing the module never fails on a machine without it (topology queries
 * still work).
 */
export async function preload(): Promise<void> {
  try {
    await load();
  } catch (error) {
    preloadError = error instanceof Error ? error : new Error(String(error));
  }
}

/** A GC-managed block: what the finalizer needs, and the weak handle its pool enumerates. */
export interface ManagedBlock {
  readonly pool: PoolState;
  readonly pointer: Deno.PointerObject;
  readonly ref: WeakRef<ArrayBuffer>;
}

/** An `hmmap` mapping. */
export interface Mapping {
  readonly pool: PoolState;
  readonly pointer: Deno.PointerObject;
  readonly length: number;
}

/** Returns its argument from a constructor, so that a subclass can stamp private fields on it. */
class Stamp {
  constructor(target: object) {
    return target as Stamp;
  }
}

/**
 * A live, explicitly freed block's pointer, pool and slot in its pool's list, kept in private
 * fields of its ArrayBuffer (stamped with the constructor return trick). `pointer` is
 * `undefined` for a buffer never tagged and `null` once freed.
 */
class BlockTag extends Stamp {
  #pointer: Deno.PointerObject | null;
  #pool: PoolState;
  /** Index in `pool.blocks`, or -1 for the default pool (which keeps no list). */
  #slot: number;

  private constructor(
    buffer: ArrayBuffer,
    pointer: Deno.PointerObject,
    pool: PoolState,
    slot: number,
  ) {
    super(buffer);
    this.#pointer = pointer;
    this.#pool = pool;
    this.#slot = slot;
  }

  /** Records a new block of `pool` on `buffer`. */
  static tag(buffer: ArrayBuffer, pointer: Deno.PointerObject, pool: PoolState): void {
    let slot = -1;
    if (pool !== defaultState) {
      slot = pool.blocks.length;
      pool.blocks.push(buffer);
    }
    new BlockTag(buffer, pointer, pool, slot);
    pool.liveCount++;
  }

  /** The live pointer of `value`, or null/undefined when it has none. */
  static pointer(value: unknown): Deno.PointerObject | null | undefined {
    if (typeof value !== "object" || value === null || !(#pointer in value)) return undefined;
    return (value as BlockTag).#pointer;
  }

  /** The pool of a buffer whose {@link pointer} is live. */
  static pool(buffer: ArrayBuffer): PoolState {
    return (buffer as unknown as BlockTag).#pool;
  }

  /** Forgets a live block (freed, or turned GC-managed): O(1), swap-remove from its pool. */
  static untag(buffer: ArrayBuffer): void {
    const self = buffer as unknown as BlockTag;
    const pool = self.#pool;
    const slot = self.#slot;
    pool.liveCount--;
    if (slot >= 0) {
      const last = pool.blocks.pop() as ArrayBuffer;
      if (last !== buffer) {
        pool.blocks[slot] = last;
        (last as unknown as BlockTag).#slot = slot;
      }
    }
    self.#pointer = null;
    self.#slot = -1;
  }

  /** Forgets a block of a pool being destroyed (its list is dropped as a whole). */
  static drop(buffer: ArrayBuffer): void {
    const self = buffer as unknown as BlockTag;
    self.#pointer = null;
    self.#slot = -1;
  }
}

/** One pool's JS-side state: its C handle and the buffers it has handed out. */
export class PoolState {
  /** Live explicit blocks, in no order (pools other than the default only). */
  readonly blocks: ArrayBuffer[] = [];
  /** Live explicit blocks (of any pool, the default included). */
  liveCount = 0;
  /** Weak handles of live GC-managed blocks, for {@link destroyPool}. */
  readonly managedRefs: Set<WeakRef<ArrayBuffer>> = new Set();
  /** Whether `hm_pool_destroy` ran. */
  destroyed = false;
  #pointer: Deno.PointerObject | undefined;

  /** `pointer` undefined: the default pool, resolved on first use. */
  constructor(pointer?: Deno.PointerObject) {
    this.#pointer = pointer;
  }

  /** The `hm_pool *`. */
  get pointer(): Deno.PointerObject {
    return this.#pointer ??= nonNull(sym().hm_default_pool(), "hm_default_pool");
  }

  /** Whether this is the pool behind `hmalloc()`. */
  get isDefault(): boolean {
    return this === defaultState;
  }
}

/** The pool behind `hmalloc()`; its policy comes from the environment. */
export const defaultState: PoolState = new PoolState();

/** Live pools, the default one first. */
export const livePools: PoolState[] = [defaultState];

/** Every live GC-managed block. */
const managed: WeakMap<ArrayBuffer, ManagedBlock> = new WeakMap();
/** Every live mapping. */
export const mappings: Map<ArrayBuffer, Mapping> = new Map();

const finalizer: FinalizationRegistry<ManagedBlock> = new FinalizationRegistry(
  (block: ManagedBlock): void => {
    block.pool.managedRefs.delete(block.ref);
    if (!block.pool.destroyed) sym().hfree(block.pointer);
  },
);

function nonNull(pointer: Deno.PointerValue, call: string): Deno.PointerObject {
  if (pointer === null) throw new Error(`${call} returned NULL`);
  return pointer;
}

// ---- sizes ------------------------------------------------------------------

/**
 * Checks that `value` is a byte count (a non-negative safe integer) and returns it as the bigint
 * the FFI's fast path wants. `what` names the argument in the RangeError.
 */
export function byteCount(value: number, call: string, what: string): bigint {
  // One comparison covers the common case (0 ≤ value < 2^32, an integer).
  if ((value >>> 0) !== value && !(Number.isSafeInteger(value) && value >= 0)) {
    throw new RangeError(
      `${call}: ${what} ${String(value)} is not a byte count (a non-negative safe integer)`,
    );
  }
  return BigInt(value);
}

// ---- registering --------------------------------------------------------------

/** Wraps a block the library just returned; RangeError (naming `call`) when it is NULL. */
export function adoptBlock(
  pool: PoolState,
  pointer: Deno.PointerValue,
  length: number,
  call: string,
): ArrayBuffer {
  if (pointer === null) {
    throw new RangeError(`${call}: out of memory for ${length} bytes`);
  }
  const buffer = Deno.UnsafePointerView.getArrayBuffer(pointer, length);
  BlockTag.tag(buffer, pointer, pool);
  return buffer;
}

/** Turns a freshly adopted block into a GC-managed one. */
export function manage(pool: PoolState, buffer: ArrayBuffer): ArrayBuffer {
  const pointer = BlockTag.pointer(buffer);
  if (!pointer) throw new TypeError("manage: the buffer is not a live block");
  BlockTag.untag(buffer);
  const ref = new WeakRef(buffer);
  const block: ManagedBlock = { pool, pointer, ref };
  managed.set(buffer, block);
  pool.managedRefs.add(ref);
  finalizer.register(buffer, block, buffer);
  return buffer;
}

/** Wraps a mapping the library just returned (MAP_FAILED → Error with errno). */
export function adoptMapping(
  pool: PoolState,
  pointer: Deno.PointerValue,
  length: number,
  call: string,
): ArrayBuffer {
  if (pointer === null || Deno.UnsafePointer.value(pointer) === mapFailed) {
    throw new Error(`${call}: mapping ${length} bytes failed (${errnoText()})`);
  }
  const buffer = Deno.UnsafePointerView.getArrayBuffer(pointer, length);
  mappings.set(buffer, { pool, pointer, length });
  return buffer;
}

const mapFailed = 0xffff_ffff_ffff_ffffn;

// ---- allocating in a pool (buffers.ts and pool.ts share these) ---------------------

/** Throws a TypeError when `pool` was destroyed. */
export function live(pool: PoolState, call: string): PoolState {
  if (pool.destroyed) throw new TypeError(`${call}: the pool was destroyed`);
  return pool;
}

/** `hm_pool_malloc` (plain `hmalloc` for the default pool) → a registered buffer. */
export function allocIn(pool: PoolState, size: number, call: string): ArrayBuffer {
  if (pool === defaultState) {
    const kept: Deno.PointerObject | undefined = recycled[size]?.pop();
    if (kept !== undefined) {
      recycledBytes -= size;
      return adoptBlock(pool, kept, size, call);
    }
  }
  const n = byteCount(size, call, "size");
  const pointer = pool === defaultState
    ? sym().hmalloc(n)
    : sym().hm_pool_malloc(live(pool, call).pointer, n);
  return adoptBlock(pool, pointer, size, call);
}

/** `hm_pool_calloc`: `count` × `size` zeroed bytes. */
export function callocIn(pool: PoolState, count: number, size: number, call: string): ArrayBuffer {
  const c = byteCount(count, call, "count");
  const s = byteCount(size, call, "size");
  const total = count * size;
  if (!Number.isSafeInteger(total)) {
    throw new RangeError(`${call}: ${count} × ${size} bytes overflows a safe integer`);
  }
  return adoptBlock(pool, sym().hm_pool_calloc(live(pool, call).pointer, c, s), total, call);
}

/** `hm_pool_aligned_alloc`: `alignment` must be a power of two. */
export function alignedIn(
  pool: PoolState,
  alignment: number,
  size: number,
  call: string,
): ArrayBuffer {
  const a = byteCount(alignment, call, "alignment");
  if (alignment === 0 || (a & (a - 1n)) !== 0n) {
    throw new RangeError(`${call}: alignment ${alignment} is not a power of two`);
  }
  const n = byteCount(size, call, "size");
  return adoptBlock(pool, sym().hm_pool_aligned_alloc(live(pool, call).pointer, a, n), size, call);
}

/** mmap(2) flags: MAP_SHARED, MAP_PRIVATE, MAP_ANONYMOUS. */
const mapShared = 0x01;
const mapPrivate = 0x02;
const mapAnonymous = 0x20;
/** PROT_READ | PROT_WRITE: an ArrayBuffer is always writable. */
const protReadWrite = 0x3;

/** `hm_pool_mmap` of an anonymous read-write mapping placed by the pool's policy. */
export function mmapIn(
  pool: PoolState,
  length: number,
  shared: boolean,
  call: string,
): ArrayBuffer {
  const n = byteCount(length, call, "length");
  if (length === 0) throw new RangeError(`${call}: length 0 (mmap(2) maps at least one byte)`);
  const flags = (shared ? mapShared : mapPrivate) | mapAnonymous;
  const pointer = sym().hm_pool_mmap(
    live(pool, call).pointer,
    null,
    n,
    protReadWrite,
    flags,
    -1,
    0n,
  );
  return adoptMapping(pool, pointer, length, call);
}

// ---- looking up and releasing ---------------------------------------------------

/** A live block found by {@link findBlock}. */
export interface FoundBlock {
  pool: PoolState;
  pointer: Deno.PointerObject;
  managed: ManagedBlock | undefined;
}

/**
 * The pool and pointer of a live block (explicit or GC-managed), or a TypeError naming `call`
 * and the buffer: not an ArrayBuffer, detached (already freed), an `hmmap` mapping, or not ours.
 */
export function findBlock(buffer: ArrayBuffer, call: string): FoundBlock {
  const pointer = BlockTag.pointer(buffer);
  if (pointer) return { pool: BlockTag.pool(buffer), pointer, managed: undefined };
  const block = managed.get(buffer);
  if (block !== undefined) return { pool: block.pool, pointer: block.pointer, managed: block };
  throw notOurs(buffer, call, "hmalloc");
}

/**
 * Frees a live block: detaches the buffer (every view goes to length 0), forgets it, then calls
 * `hfree`. Throws the TypeError of {@link findBlock} for anything else, before touching C.
 */
export function freeBlock(buffer: ArrayBuffer): void {
  // Hot path: an explicit block.
  const pointer = BlockTag.pointer(buffer);
  if (pointer) {
    const recycle = BlockTag.pool(buffer) === defaultState;
    const length = buffer.byteLength;
    BlockTag.untag(buffer);
    // transfer(0) detaches like transfer() but creates no alias of the memory (cheaper here).
    buffer.transfer(0);
    if (recycle && keep(pointer, length)) return;
    sym().hfree(pointer);
    return;
  }
  const found = findBlock(buffer, "hfree");
  forget(buffer, found);
  buffer.transfer(0);
  sym().hfree(found.pointer);
}

// ---- recycling ----------------------------------------------------------------

/**
 * Freed blocks of the default pool, by exact length (1 B to `recycleMaxBytes`), that the next
 * `hmalloc` of that length takes instead of calling the library: a hmalloc/hfree pair then makes
 * no FFI call and no bigint. The freed ArrayBuffer is detached all the same; only the C block is
 * kept, and it stays allocated in C meanwhile. Bounded: `recycleDepth` blocks per length and
 * `recycleBudgetBytes` in all, per JavaScript realm (a worker has its own; blocks kept by a
 * worker when it is terminated are not given back). `releaseRecycled` frees them all.
 */
const recycleMaxBytes = 1024;
const recycleDepth = 32;
const recycleBudgetBytes = 64 * 1024;
const recycled: Deno.PointerObject[][] = [];
let recycledBytes = 0;

function keep(pointer: Deno.PointerObject, length: number): boolean {
  if (length === 0 || length > recycleMaxBytes || recycledBytes + length > recycleBudgetBytes) {
    return false;
  }
  const list: Deno.PointerObject[] = recycled[length] ??= [];
  if (list.length >= recycleDepth) return false;
  list.push(pointer);
  recycledBytes += length;
  return true;
}

/** Frees every block the recycling lists keep (the library gets them back). */
export function releaseRecycled(): void {
  for (const list of recycled) {
    if (list === undefined) continue;
    for (const pointer of list.splice(0)) sym().hfree(pointer);
  }
  recycledBytes = 0;
}

/** Bytes the recycling lists keep now (for tests and statistics). */
export function recycledByteCount(): number {
  return recycledBytes;
}

/** Removes a found block from the registry (it stays allocated in C). */
export function forget(buffer: ArrayBuffer, found: FoundBlock): void {
  if (found.managed === undefined) {
    BlockTag.untag(buffer);
    return;
  }
  managed.delete(buffer);
  found.pool.managedRefs.delete(found.managed.ref);
  finalizer.unregister(buffer);
}

/** Frees a live block (explicit or GC-managed); does nothing for anything else. */
function releaseIfLive(buffer: ArrayBuffer): void {
  if (BlockTag.pointer(buffer) || managed.has(buffer)) freeBlock(buffer);
}

/** A live block freed (if still live) when its `using` scope ends. */
class ScopedBlock implements Disposable {
  constructor(readonly buffer: ArrayBuffer) {}

  [Symbol.dispose](): void {
    releaseIfLive(this.buffer);
  }
}

/** Wraps a live block for a `using` scope. */
export function scopedBlock(buffer: ArrayBuffer): { readonly buffer: ArrayBuffer } & Disposable {
  return new ScopedBlock(buffer);
}

/** The mapping behind `buffer`, or a TypeError naming `call`. */
export function findMapping(buffer: ArrayBuffer, call: string): Mapping {
  const mapping = mappings.get(buffer);
  if (mapping === undefined) throw notOurs(buffer, call, "hmmap");
  return mapping;
}

/** Unmaps a live mapping after detaching its buffer; Error with errno if munmap fails. */
export function unmap(buffer: ArrayBuffer, mapping: Mapping): void {
  mappings.delete(buffer);
  buffer.transfer(0);
  if (sym().hmunmap(mapping.pointer, BigInt(mapping.length)) !== 0) {
    throw new Error(`hmunmap: munmap of ${mapping.length} bytes failed (${errnoText()})`);
  }
}

/**
 * Destroys a pool: detaches every live buffer of it (blocks, reachable GC-managed blocks,
 * mappings, which are unmapped), stops their finalizers, then `hm_pool_destroy`.
 */
export function destroyPool(pool: PoolState): void {
  if (pool.destroyed) return;
  if (pool.isDefault) throw new TypeError("the default pool lives as long as the process");
  for (const buffer of pool.blocks) {
    BlockTag.drop(buffer);
    buffer.transfer(0);
  }
  pool.blocks.length = 0;
  pool.liveCount = 0;
  for (const ref of pool.managedRefs) {
    const buffer = ref.deref();
    if (buffer === undefined) continue;
    managed.delete(buffer);
    finalizer.unregister(buffer);
    buffer.transfer(0);
  }
  pool.managedRefs.clear();
  for (const [buffer, mapping] of mappings) {
    if (mapping.pool === pool) unmap(buffer, mapping);
  }
  pool.destroyed = true;
  livePools.splice(livePools.indexOf(pool), 1);
  sym().hm_pool_destroy(pool.pointer);
}

/** The TypeError for a buffer `call` cannot take; `kind` is what `call` wants. */
function notOurs(buffer: unknown, call: string, kind: "hmalloc" | "hmmap"): TypeError {
  if (!(buffer instanceof ArrayBuffer)) {
    const got = buffer === null
      ? "null"
      : typeof buffer === "object"
      ? (buffer as object).constructor?.name ?? "object"
      : typeof buffer;
    const hint = ArrayBuffer.isView(buffer) ? " (pass its .buffer)" : "";
    return new TypeError(`${call}: expected an ArrayBuffer from ${kind}, got ${got}${hint}`);
  }
  if (buffer.detached) {
    return new TypeError(
      `${call}: the ArrayBuffer is detached (already freed, or its pool destroyed)`,
    );
  }
  const name = `ArrayBuffer(${buffer.byteLength})`;
  if (kind === "hmalloc" && mappings.has(buffer)) {
    return new TypeError(`${call}: ${name} came from hmmap; release it with hmunmap`);
  }
  if (kind === "hmmap" && isBlock(buffer)) {
    return new TypeError(`${call}: ${name} came from hmalloc; free it with hfree`);
  }
  return new TypeError(`${call}: ${name} was not allocated by tiermem's ${kind}`);
}

/** Whether `buffer` is a live block (explicit or GC-managed) of any pool. */
export function isBlock(buffer: ArrayBuffer): boolean {
  return Boolean(BlockTag.pointer(buffer)) || managed.has(buffer);
}

/** The pointer of a live block or mapping, or undefined. */
export function pointerOf(buffer: ArrayBuffer): Deno.PointerObject | undefined {
  return BlockTag.pointer(buffer) ?? managed.get(buffer)?.pointer ?? mappings.get(buffer)?.pointer;
}

// ---- errno --------------------------------------------------------------------

/** `ENOMEM (12)`-style text for an errno value. */
export function errnoName(errno: number): string {
  let name = "errno";
  try {
    const known = getSystemErrorName(-errno); // libuv's names take negative errno values
    if (!known.startsWith("Unknown")) name = known;
  } catch { /* not an errno value: "errno (N)" */ }
  return `${name} (${errno})`;
}

let libc: Deno.DynamicLibrary<{ __errno_location: { parameters: []; result: "pointer" } }> | null =
  null;

/**
 * Opens libc for `__errno_location` (not part of hmalloc.h) together with the library, so that
 * reading errno after a failed call does not first run a dlopen that could change it.
 */
function openLibc(): void {
  try {
    libc ??= Deno.dlopen("libc.so.6", { __errno_location: { parameters: [], result: "pointer" } });
  } catch {
    // errno then reads as "errno unknown"; nothing else depends on it.
  }
}

/** This thread's errno right after a failed call, as text. */
export function errnoText(): string {
  try {
    if (libc === null) return "errno unknown";
    const location = libc.symbols.__errno_location();
    if (location === null) return "errno unknown";
    return errnoName(new Deno.UnsafePointerView(location).getInt32());
  } catch {
    return "errno unknown";
  }
}
