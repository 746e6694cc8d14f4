/**
 * "Where are my pages?" and "move them", per buffer: `hm_residency` (a move_pages(2) query, the
 * kernel's own answer page by page) and `hm_migrate` (move_pages with MPOL_MF_MOVE, contents
 * intact). For a whole process, `/proc/PID/numa_maps` is read by `numa_maps.ts`
 * (`processNumaUsage`); this module answers for one buffer, which numa_maps cannot.
 *
 * Any memory of this process can be asked about: buffers from hmalloc, hmmap and pools, plain
 * ArrayBuffers and typed arrays (their page range), or a raw `{ address, length }`. Counts are in
 * base pages (4 KiB on x86-64) of the pages the range touches, including partial first and last
 * pages; a page never written is "not present" (it has no node yet).
 *
 * Typical use: promote a hot buffer to DRAM, demote a cold one to the CXL tier.
 *
 * ```ts ignore
 * migrate(cache, lowerTierNodes(readTopology())); // interleaved over the lower tier
 * ```
 *
 * @module
 */

import { errnoName, pointerOf, sym } from "./registry.ts";
import { parseKernelNodeList, parseNodeList, readNodeTopology } from "./node_list.ts";
import { cString } from "../ffi/c_string.ts";

/** A raw address range of this process. */
export interface MemoryRange {
  /** Start address: a number as bigint, or a pointer from FFI. */
  readonly address: bigint | Deno.PointerObject;
  /** Length in bytes. */
  readonly length: number;
}

/** What {@link residency} and {@link migrate} accept. */
export type ResidencyTarget = ArrayBuffer | ArrayBufferView | MemoryRange;

/** Pages of a range per node. */
export interface Residency {
  /** Present pages per node: index = node id, one entry per possible node. */
  pagesPerNode: number[];
  /** Pages not present yet (never written, or swapped out). */
  notPresent: number;
  /** Every page the range touches: the sum of the other two. */
  pages: number;
}

/** The outcome of {@link migrate}. */
export interface MigrateResult {
  /** Present pages that could not be moved (e.g. the target node is full); 0 on success. */
  notMoved: number;
}

let possibleNodes: number | undefined;

/** Node ids are below this (`/sys/devices/system/node/possible`; 1 without NUMA sysfs). */
function nodeSlots(): number {
  if (possibleNodes !== undefined) return possibleNodes;
  let nodes = [0];
  try {
    nodes = parseKernelNodeList(Deno.readTextFileSync("/sys/devices/system/node/possible"));
  } catch {
    // No NUMA in sysfs: one node.
  }
  possibleNodes = Math.max(0, ...nodes) + 1;
  return possibleNodes;
}

function describe(target: unknown): string {
  if (target === null) return "null";
  if (typeof target !== "object") return typeof target;
  return (target as object).constructor?.name ?? "object";
}

/** The start pointer (null for an empty range) and length of `target`. */
function rangeOf(target: ResidencyTarget, call: string): [Deno.PointerValue, number] {
  if (target instanceof ArrayBuffer) {
    if (target.detached) throw new TypeError(`${call}: the ArrayBuffer is detached`);
    if (target.byteLength === 0) return [null, 0];
    return [pointerOf(target) ?? Deno.UnsafePointer.of(target), target.byteLength];
  }
  if (ArrayBuffer.isView(target)) {
    const buffer = target.buffer;
    if (!(buffer instanceof ArrayBuffer)) {
      throw new TypeError(`${call}: a view of a SharedArrayBuffer is not supported`);
    }
    if (buffer.detached) throw new TypeError(`${call}: the view's ArrayBuffer is detached`);
    if (target.byteLength === 0) return [null, 0];
    const base = pointerOf(buffer);
    return [
      base === undefined
        ? Deno.UnsafePointer.of(target)
        : Deno.UnsafePointer.offset(base, target.byteOffset),
      target.byteLength,
    ];
  }
  if (target !== null && typeof target === "object" && "address" in target) {
    const { address, length } = target;
    if (!Number.isSafeInteger(length) || length < 0) {
      throw new RangeError(`${call}: length ${String(length)} is not a byte count`);
    }
    if (length === 0) return [null, 0];
    const pointer = typeof address === "bigint" ? Deno.UnsafePointer.create(address) : address;
    if (pointer === null) throw new RangeError(`${call}: address 0`);
    return [pointer, length];
  }
  throw new TypeError(
    `${call}: expected an ArrayBuffer, a typed array or { address, length }, got ${
      describe(target)
    }`,
  );
}

/**
 * Per-node page counts of a buffer (or any range of this process), from move_pages(2).
 *
 * @throws {TypeError} for a detached buffer or something that is not a range.
 * @throws {Error} naming errno when the kernel refuses the query.
 *
 * @example
 * ```ts
 * import { hfree } from "./buffers.ts";
 * import { Pool } from "./pool.ts";
 * import { residency } from "./residency.ts";
 * using pool = new Pool({ bind: [0] });
 * const buf = pool.hmalloc(4 << 20);
 * console.log(residency(buf).notPresent); // 1024: nothing written yet
 * new Uint8Array(buf).fill(1);
 * console.log(residency(buf).pagesPerNode[0]); // 1024 (or 1025 when not page-aligned)
 * hfree(buf);
 * ```
 */
export function residency(target: ResidencyTarget): Residency {
  const [pointer, length] = rangeOf(target, "residency");
  const slots = nodeSlots();
  if (pointer === null) return { pagesPerNode: new Array(slots).fill(0), notPresent: 0, pages: 0 };
  const counts = new BigUint64Array(slots);
  const rc = sym().hm_residency(pointer, BigInt(length), counts, BigInt(slots));
  if (rc < 0n) throw new Error(`residency: move_pages failed: ${errnoName(Number(-rc))}`);
  const pagesPerNode = Array.from(counts, Number);
  const notPresent = Number(rc);
  const pages = pagesPerNode.reduce((sum: number, n: number) => sum + n, notPresent);
  return { pagesPerNode, notPresent, pages };
}

function nodesText(nodes: number | readonly number[] | string): string {
  if (typeof nodes === "string") return nodes;
  const list: readonly unknown[] = typeof nodes === "number" ? [nodes] : nodes;
  if (!Array.isArray(list) || list.length === 0) {
    throw new TypeError(`migrate: nodes must be a node, a non-empty array or a node list`);
  }
  for (const n of list) {
    if (typeof n !== "number" || !Number.isInteger(n) || n < 0) {
      throw new TypeError(`migrate: ${String(n)} is not a node number`);
    }
  }
  return list.join(",");
}

/**
 * Moves the present pages of a buffer (or any range of this process) to `nodes` — one node, or
 * several, interleaved page by page — keeping its contents. Pages never written stay
 * unplaced (they are not present). Returns how many present pages could not be moved.
 *
 * @param nodes a node, an array of nodes, or a numactl node list (`"2-3"`, `"!0"`).
 * @throws {TypeError} when `nodes` is not a node list (naming the bad token) or `target` is not a
 * range.
 * @throws {RangeError} when a node is not online or not allowed for this process.
 * @throws {Error} naming errno when move_pages(2) fails as a whole.
 *
 * @example
 * ```ts
 * import { hfree, hmalloc } from "./buffers.ts";
 * import { migrate, residency } from "./residency.ts";
 * const buf = hmalloc(1 << 20);
 * new Uint8Array(buf).fill(42);
 * console.log(migrate(buf, [0])); // { notMoved: 0 }
 * console.log(new Uint8Array(buf)[1000], residency(buf).pagesPerNode[0] > 0); // 42 true
 * hfree(buf);
 * ```
 */
export function migrate(
  target: ResidencyTarget,
  nodes: number | readonly number[] | string,
): MigrateResult {
  const text = nodesText(nodes);
  const nodesC = cString(text, "migrate: nodes"); // checked whole before it is parsed
  const [pointer, length] = rangeOf(target, "migrate");
  // The library's node-list parser only says EINVAL; the same parser in TS says which token.
  let targets: number[];
  try {
    targets = parseNodeList(text, readNodeTopology());
  } catch (error) {
    if (error instanceof TypeError) throw new TypeError(`migrate: ${error.message}`);
    if (error instanceof RangeError) throw new RangeError(`migrate: ${error.message}`);
    throw error;
  }
  if (pointer === null) return { notMoved: 0 };
  const rc = sym().hm_migrate(pointer, BigInt(length), nodesC);
  if (rc === -22n) throw new RangeError(`migrate: nodes "${text}" refused (EINVAL)`);
  if (rc < 0n) throw new Error(`migrate: move_pages failed: ${errnoName(Number(-rc))}`);
  if (rc === 0n) return { notMoved: 0 };
  // move_pages(2) reports EBUSY for one subpage of each transparent huge page that it moves as
  // a whole (seen on Linux 6.12 with THP "always"), so a page it calls "not moved" may well have
  // moved: count the present pages that are really outside the target nodes.
  const after = residency({ address: pointer, length });
  const stayed = after.pagesPerNode.reduce(
    (sum: number, pages: number, node: number) => (targets.includes(node) ? sum : sum + pages),
    0,
  );
  return { notMoved: stayed };
}
