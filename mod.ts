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
 * - importing this module finds and opens libhmalloc.so (`loadHmalloc()` is optional).
 *
 * The FFI layer (the raw symbol table, the library's handle, the location chain) is not part of
 * this entry: its `hfree` would free memory without detaching the buffer. Tools that need it
 * import the advanced entry `@tiermem/tiermem/ffi` (`ffi/mod.ts`).
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

import { preload } from "./lib/registry.ts";

// Find and open libhmalloc.so now, through the whole chain (env var, local build, the prebuilt
// binary shipped for this platform, the cache, a Zig build): the API works with no separate
// `await loadHmalloc()`, from a checkout or from a URL. A failure is reported by the first call
// that needs the library, so topology queries work without it.
await preload();

// Every export is named here on purpose: adding one is a decision about the public API.

export {
  allocScoped,
  halignedAlloc,
  hcalloc,
  hfree,
  hmalloc,
  hmallocManaged,
  hmallocUsableSize,
  hmmap,
  type HmmapOptions,
  hmunmap,
  hrealloc,
  isHmallocBuffer,
  loadHmalloc,
  type ScopedBuffer,
} from "./lib/buffers.ts";
export type { LibraryLocation, LibraryName, LibrarySource, LocateOptions } from "./ffi/library.ts";
export {
  defaultPool,
  livePoolCount,
  type NodeSpec,
  policyString,
  Pool,
  type PoolPolicy,
} from "./lib/pool.ts";
export {
  type MemoryRange,
  migrate,
  type MigrateResult,
  type Residency,
  residency,
  type ResidencyTarget,
} from "./lib/residency.ts";
export {
  type AccessClass,
  currentNode,
  highestBandwidthNodes,
  highestCapacityNodes,
  type InitiatorOptions,
  lowerTierNodes,
  lowestLatencyNodes,
  type MemoryTier,
  nodeDistance,
  type NodeInfo,
  readMemoryTiers,
  readTopology,
  type SysfsReader,
  sysfsReader,
  type Topology,
  type TopologyOptions,
  topTierNodes,
} from "./lib/topology.ts";
export {
  type MappingKind,
  type MappingPolicy,
  type NumaMapping,
  type NumaUsage,
  parseMappingPolicy,
  parseNumaMaps,
  processNumaUsage,
  readNumaMaps,
  type ReadNumaMapsOptions,
  summarizeNumaMaps,
} from "./lib/numa_maps.ts";
export {
  checkAccess,
  checkTiering,
  type FastMax,
  type KernelEngineFigures,
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
export {
  type CgroupFs,
  createProgramCgroup,
  moveToCgroup,
  type ProgramCgroup,
} from "./lib/tiering_cgroup.ts";
