/**
 * tiermem for Deno: place ArrayBuffers on the memory tier you choose, see where their pages are,
 * and move them.
 *
 * - `buffers.ts`: `hmalloc`, `hfree`, `hrealloc`, `hmmap`, … over libhmalloc.so's default pool
 *   (its policy comes from the launcher, `tiermem -m 2 deno run …`); freed buffers are detached.
 * - `pool.ts`: `new Pool({ bind: [2] })` and the other policies, each pool with the same API.
 * - `residency.ts`: `residency(buf)` (pages per node), `migrate(buf, nodes)`; for a whole
 *   process, `processNumaUsage(pid)` from `numa_maps.ts`.
 * - `topology.ts`: nodes, CPUs, memory, distances, memory tiers, HMAT bandwidth and latency.
 * - `tiering.ts`: `startTiering({ pid, fast, slow, fastMax })` keeps a running process's hot pages
 *   on the fast nodes within a budget (DAMON + move_pages; `docs/tiering.md`).
 * - `ffi/library.ts`: finding, building and opening libhmalloc.so.
 *
 * @example
 * ```ts
 * import { hfree, lowerTierNodes, Pool, processNumaUsage, readTopology, residency } from "./mod.ts";
 * const topology = readTopology();
 * const slow = lowerTierNodes(topology); // [] on a one-tier machine
 * using pool = new Pool(slow.length > 0 ? { bind: slow } : { bind: [0] });
 * const cold = pool.hmalloc(4 << 20);
 * new Uint8Array(cold).fill(1);
 * console.log(pool.policy, residency(cold).pagesPerNode);
 * console.log(processNumaUsage("self").mibPerNode);
 * hfree(cold);
 * ```
 *
 * @module
 */

export * from "./lib/buffers.ts";
export * from "./lib/pool.ts";
export * from "./lib/residency.ts";
export * from "./lib/topology.ts";
export * from "./lib/numa_maps.ts";
export {
  checkAccess,
  checkTiering,
  type FastMax,
  startTiering,
  type TieringEnd,
  type TieringEnvironment,
  TieringError,
  type TieringFigures,
  type TieringOptions,
  type TieringPlanTarget,
  type TieringSession,
} from "./lib/tiering.ts";
export type { DamonFs, DamonRegion, MonitoringAttrs } from "./lib/damon.ts";
export * from "./ffi/library.ts";
