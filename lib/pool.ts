/**
 * Pools with explicit policies: several allocators in one process, each placing its memory by
 * its own NUMA policy — weights on the fast tier, a cache on the CXL tier, a table interleaved
 * over every node — with the buffer API of `buffers.ts` as methods.
 *
 * A pool is `hm_pool_create` with a policy in `HMALLOC_POLICY` syntax, built from an option
 * object whose names match the CLI and the docs (ARCHITECTURE.md):
 *
 * | option                        | policy string                  | hmctl                  |
 * |-------------------------------|--------------------------------|------------------------|
 * | `{}`                          | `default`                      | (none)                 |
 * | `{ bind: [2] }`               | `bind:2`                       | `-m 2`                 |
 * | `{ preferred: 1 }`            | `preferred:1`                  | `-p 1`                 |
 * | `{ preferredMany: [2, 3] }`   | `preferred-many:2,3`           | `-P 2,3`               |
 * | `{ interleave: "0-3" }`       | `interleave:0-3`               | `-i 0-3`               |
 * | `{ weighted: { 0: 3, 2: 1 } }`| `weighted-interleave:0=3,2=1`  | `-w` (sysfs weights)   |
 *
 * Node lists are arrays of node numbers or numactl strings (`"0-3"`, `"all"`, `"!0"`). Blocks of
 * any pool are freed with `hfree` and resized with `hrealloc` (which keeps the block's pool);
 * destroying a pool detaches every buffer it still has, then unmaps its memory at once.
 *
 * @module
 */

import {
  alignedIn,
  allocIn,
  callocIn,
  defaultState,
  destroyPool,
  errnoText,
  livePools,
  manage,
  mmapIn,
  PoolState,
  scopedBlock,
  sym,
} from "./registry.ts";
import type { HmmapOptions, ScopedBuffer } from "./buffers.ts";
import { parseNodeList, readNodeTopology } from "./node_list.ts";
import { cString } from "../ffi/c_string.ts";
import { POLICY_MODES, type PoolPolicyKey } from "./policy_names.ts";

/** Nodes: an array of node numbers, or a numactl node list (`"0-3"`, `"0,2"`, `"all"`, `"!0"`). */
export type NodeSpec = readonly number[] | string;

/**
 * A pool's policy: at most one of these keys; `{}` is the default policy (pages follow the
 * process's own policy, like malloc).
 */
export interface PoolPolicy {
  /** Only these nodes (MPOL_BIND). */
  bind?: NodeSpec;
  /** This node first, others when it is full (MPOL_PREFERRED). */
  preferred?: number;
  /** These nodes first, others when they are full (MPOL_PREFERRED_MANY, Linux ≥ 5.15). */
  preferredMany?: NodeSpec;
  /** Pages round-robin over these nodes (MPOL_INTERLEAVE). */
  interleave?: NodeSpec;
  /**
   * Weighted round-robin: `{ node: weight }` (explicit weights, e.g. `{ 0: 3, 2: 1 }`), or
   * nodes whose weights come from `/sys/kernel/mm/mempolicy/weighted_interleave/`.
   */
  weighted?: Readonly<Record<number, number>> | NodeSpec;
}

type PolicyKey = PoolPolicyKey;
const keyedModes = POLICY_MODES.filter((m) => m.poolKey !== null);
const policyKeys: readonly PolicyKey[] = keyedModes.map((m) => m.poolKey as PolicyKey);
const modeNames = Object.fromEntries(keyedModes.map((m) => [m.poolKey, m.name])) as Record<
  PolicyKey,
  string
>;

function isNode(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0;
}

function nodeText(spec: unknown, key: string): string {
  if (typeof spec === "string") {
    if (spec === "") throw new TypeError(`Pool: ${key} is an empty node list`);
    return spec;
  }
  if (Array.isArray(spec)) {
    if (spec.length === 0) throw new TypeError(`Pool: ${key} is an empty node list`);
    const bad = spec.findIndex((n: unknown) => !isNode(n));
    if (bad >= 0) throw new TypeError(`Pool: ${key} has ${String(spec[bad])}, not a node number`);
    return spec.join(",");
  }
  throw new TypeError(`Pool: ${key} must be an array of node numbers or a node-list string`);
}

/**
 * The `HMALLOC_POLICY` string of a {@link PoolPolicy} (no check against this machine's nodes:
 * `new Pool` does that).
 *
 * @throws {TypeError} when the object is not a policy: several modes, an unknown key, an empty
 * or non-numeric node list, a weight that is not a positive integer.
 *
 * @example
 * ```ts
 * import { policyString } from "./pool.ts";
 * console.log(policyString({ bind: [2] })); // "bind:2"
 * console.log(policyString({ weighted: { 0: 3, 2: 1 } })); // "weighted-interleave:0=3,2=1"
 * console.log(policyString({})); // "default"
 * ```
 */
export function policyString(policy: PoolPolicy): string {
  if (policy === null || typeof policy !== "object") {
    throw new TypeError(`Pool: the policy must be an object, got ${String(policy)}`);
  }
  const keys = Object.keys(policy).filter((k) =>
    (policy as Record<string, unknown>)[k] !== undefined
  );
  const unknown = keys.find((k) => !(policyKeys as readonly string[]).includes(k));
  if (unknown !== undefined) {
    throw new TypeError(`Pool: unknown policy key "${unknown}" (one of ${policyKeys.join(", ")})`);
  }
  if (keys.length === 0) return "default";
  if (keys.length > 1) throw new TypeError(`Pool: one policy at a time, got ${keys.join(" and ")}`);
  const key = keys[0] as PolicyKey;
  const value: unknown = policy[key];
  if (key === "preferred") {
    if (!isNode(value)) throw new TypeError(`Pool: preferred is ${String(value)}, not a node`);
    return `preferred:${value}`;
  }
  if (key === "weighted" && typeof value === "object" && !Array.isArray(value)) {
    const pairs = Object.entries(value as Record<string, unknown>);
    if (pairs.length === 0) throw new TypeError("Pool: weighted has no node");
    const parts = pairs.map(([node, weight]) => {
      if (!/^[0-9]+$/.test(node)) {
        throw new TypeError(`Pool: weighted node "${node}" is not a node`);
      }
      if (typeof weight !== "number" || !Number.isInteger(weight) || weight < 1) {
        throw new TypeError(`Pool: weight ${String(weight)} of node ${node} is not an integer ≥ 1`);
      }
      return `${node}=${weight}`;
    });
    return `${modeNames.weighted}:${parts.join(",")}`;
  }
  return `${modeNames[key]}:${nodeText(value, key)}`;
}

const decoder = new TextDecoder();
const errorBytes = 256;

/** The error for a policy the library refused, classified like `parseNodeList` would. */
function refused(spec: string, message: string): Error {
  const colon = spec.indexOf(":");
  const nodes = colon < 0 ? "" : spec.slice(colon + 1);
  if (nodes !== "" && !nodes.includes("=")) {
    try {
      parseNodeList(nodes, readNodeTopology());
    } catch (error) {
      if (error instanceof TypeError) return new TypeError(`Pool: ${message}`);
    }
  }
  return /unknown mode|bad token|empty|reversed/.test(message)
    ? new TypeError(`Pool: ${message}`)
    : new RangeError(`Pool: ${message}`);
}

function readPolicy(state: PoolState): string {
  const out = new Uint8Array(512);
  const n = sym().hm_pool_policy(state.pointer, out, BigInt(out.length));
  return n < 0 ? "?" : decoder.decode(out.subarray(0, Math.min(n, out.length - 1)));
}

let defaultPoolObject: Pool | undefined;
/** Set while {@link defaultPool} constructs the one Pool object over the default pool. */
let wrappingDefault = false;

/**
 * A pool: an allocator of its own whose memory is placed by its policy. Dispose it (`using`, or
 * `destroy()`) to unmap all its memory at once; its live buffers are detached first.
 *
 * @example
 * ```ts
 * import { hfree } from "./buffers.ts";
 * import { Pool } from "./pool.ts";
 * using pool = new Pool({ bind: [0] });
 * const buf = pool.hmalloc(1 << 20);
 * new Uint8Array(buf).fill(1);
 * console.log(pool.policy); // "bind:0"
 * hfree(buf); // or leave it: destroy() detaches it
 * ```
 */
export class Pool implements Disposable {
  #state: PoolState;
  #policy: string | undefined;

  /**
   * Creates a pool with `policy` (see {@link PoolPolicy}).
   *
   * @throws {TypeError} when the policy is malformed (naming the bad key or token).
   * @throws {RangeError} when the library refuses it on this machine (e.g. a node that is not
   * online), with the library's one-line message naming the token.
   */
  constructor(policy: PoolPolicy = {}) {
    if (wrappingDefault) {
      this.#state = defaultState;
      return;
    }
    const spec = policyString(policy);
    const error = new Uint8Array(errorBytes);
    const pointer = sym().hm_pool_create(cString(spec, "Pool: policy"), error, BigInt(errorBytes));
    if (pointer === null) {
      const end = error.indexOf(0);
      const message = decoder.decode(error.subarray(0, end < 0 ? errorBytes : end));
      throw refused(spec, message === "" ? `policy "${spec}" refused (${errnoText()})` : message);
    }
    this.#state = new PoolState(pointer);
    livePools.push(this.#state);
  }

  /**
   * The policy in `HMALLOC_POLICY` syntax, as the library reports it (e.g. `bind:0`,
   * `interleave:0-3`, `default`).
   */
  get policy(): string {
    if (this.#state.destroyed) throw new TypeError("pool.policy: the pool was destroyed");
    return this.#policy ??= readPolicy(this.#state);
  }

  /** Whether this is the pool behind `hmalloc()` (its policy comes from the environment). */
  get isDefault(): boolean {
    return this.#state.isDefault;
  }

  /** Whether {@link destroy} ran. */
  get destroyed(): boolean {
    return this.#state.destroyed;
  }

  /**
   * Live blocks of this pool: explicit ones, and GC-managed ones not yet finalized (mappings not
   * counted).
   */
  get liveBlocks(): number {
    return this.#state.liveCount + this.#state.managedRefs.size;
  }

  /** mbind calls made for this pool's memory so far (one per chunk, huge block or mapping). */
  get mbindCalls(): number {
    return Number(sym().hm_pool_mbind_calls(this.#live("mbindCalls").pointer));
  }

  /** Bytes of address space the pool maps (chunks and huge blocks). */
  get mappedBytes(): number {
    return Number(sym().hm_pool_mapped_bytes(this.#live("mappedBytes").pointer));
  }

  #live(call: string): PoolState {
    if (this.#state.destroyed) throw new TypeError(`pool.${call}: the pool was destroyed`);
    return this.#state;
  }

  /** `size` bytes from this pool, like `hmalloc`. */
  hmalloc(size: number): ArrayBuffer {
    return allocIn(this.#live("hmalloc"), size, "pool.hmalloc");
  }

  /** `count` × `size` zeroed bytes from this pool, like `hcalloc`. */
  hcalloc(count: number, size: number): ArrayBuffer {
    return callocIn(this.#live("hcalloc"), count, size, "pool.hcalloc");
  }

  /** `size` bytes aligned to `alignment` from this pool, like `halignedAlloc`. */
  halignedAlloc(alignment: number, size: number): ArrayBuffer {
    return alignedIn(this.#live("halignedAlloc"), alignment, size, "pool.halignedAlloc");
  }

  /** An anonymous mapping placed by this pool's policy, like `hmmap`; free with `hmunmap`. */
  hmmap(length: number, options: HmmapOptions = {}): ArrayBuffer {
    return mmapIn(this.#live("hmmap"), length, options.shared === true, "pool.hmmap");
  }

  /** A GC-managed block from this pool, like `hmallocManaged`. */
  hmallocManaged(size: number): ArrayBuffer {
    const state = this.#live("hmallocManaged");
    return manage(state, allocIn(state, size, "pool.hmallocManaged"));
  }

  /** A block from this pool freed at the end of a `using` scope, like `allocScoped`. */
  allocScoped(size: number): ScopedBuffer {
    return scopedBlock(this.hmalloc(size));
  }

  /**
   * Detaches every live buffer of the pool (blocks, reachable GC-managed blocks, mappings —
   * which are unmapped), then destroys it, unmapping all its memory. Idempotent.
   *
   * @throws {TypeError} for the default pool, which lives as long as the process.
   */
  destroy(): void {
    destroyPool(this.#state);
  }

  /** Same as {@link destroy}. */
  [Symbol.dispose](): void {
    this.destroy();
  }
}

/**
 * The pool behind `hmalloc()`: its policy comes from the launcher (`HMALLOC_POLICY`, `tiermem
 * -m 2 …`), else pages follow the process's own policy. It cannot be destroyed.
 *
 * @example
 * ```ts
 * import { hfree } from "./buffers.ts";
 * import { defaultPool } from "./pool.ts";
 * const pool = defaultPool();
 * console.log(pool.isDefault, pool.policy); // true "default" (without a launcher policy)
 * hfree(pool.hmalloc(16));
 * ```
 */
export function defaultPool(): Pool {
  if (defaultPoolObject !== undefined) return defaultPoolObject;
  wrappingDefault = true;
  try {
    defaultPoolObject = new Pool();
  } finally {
    wrappingDefault = false;
  }
  return defaultPoolObject;
}

/**
 * Every pool that is alive, the default one first (its count is bounded by the library's 64
 * pool slots).
 *
 * @example
 * ```ts
 * import { livePoolCount, Pool } from "./pool.ts";
 * using pool = new Pool({ bind: [0] });
 * console.log(livePoolCount() >= 2); // true
 * ```
 */
export function livePoolCount(): number {
  return livePools.length;
}
