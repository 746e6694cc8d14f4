/**
 * The kernel tiering engine: DAMOS `migrate_hot` / `migrate_cold` (Linux 6.11+, `paddr`
 * operations) move the pages, tiermem only steers.
 *
 * Layout (one kdamond per node, as HMSDK's `gen_migpol.py` does): each fast node's kdamond
 * monitors that node's physical memory and runs `migrate_cold` to a slow node; each slow node's
 * kdamond monitors that node and runs `migrate_hot` to a fast node. One kdamond per node, not one
 * for all: a scheme applies to every region of its context, `migrate_pages` does not skip pages
 * already on the target node, and DAMOS's quota prioritisation ranks every region of the context —
 * hot regions already on the fast node would crowd out the slow node's in the ranking. Every
 * scheme has a DAMOS filter `memcg` on the program's group with `matching` N: on 6.12 a filter
 * *excludes* what matches, so "not in the group" is excluded (on 6.14+, where filters gained
 * `allow`, its default N keeps that meaning); and a `young` filter (as HMSDK's): promotion skips
 * pages not accessed since the last check, demotion skips pages accessed since.
 *
 * Node ranges come from the node's memory blocks (`/sys/devices/system/node/nodeN/memoryM`,
 * `block_size_bytes`): they say which node each block belongs to, hot-plugged CXL memory
 * included, while `/proc/zoneinfo`'s zone spans may include holes and other nodes' memory
 * when nodes interleave. Contiguous blocks make one DAMON region.
 *
 * The budget is tiermem's job every interval ({@link kernelSchemeParams}): 6.12's quota goals know
 * only `user_input` and `some_mem_psi_us`, no per-cgroup per-node metric, and the schemes know
 * nothing of a budget. tiermem reads the group's `memory.numa_stat`, gives `migrate_hot` a byte
 * quota of a third of the room left per interval (paused when there is none), makes
 * `migrate_cold` demote sooner when the room is short or the promotions hit their quota, and any
 * page not accessed lately when there is no room or the program is over its budget, and commits
 * the new parameters (`state` ← `commit`).
 *
 * @module
 */

import {
  configureContext,
  DamonBusyError,
  type DamonFs,
  DEFAULT_MONITORING,
  type KdamondClaim,
  kdamondCount,
  kdamondIsFree,
  kdamondRunning,
  type MonitoringAttrs,
} from "./damon.ts";
import { type SysfsReader, sysfsReader } from "./topology.ts";

/** A physical address range `[start, end)`. */
export interface PhysRange {
  /** First byte. */
  start: number;
  /** One past the last byte. */
  end: number;
}

/**
 * The physical ranges of node `node`'s online memory blocks, contiguous blocks merged.
 *
 * @example
 * ```ts
 * import { nodeMemoryRanges } from "./tiering_kernel.ts";
 * console.log(nodeMemoryRanges(0)); // e.g. [ { start: 0, end: 1073741824 } ]
 * ```
 */
export function nodeMemoryRanges(node: number, reader: SysfsReader = sysfsReader()): PhysRange[] {
  const size = parseInt(
    (reader.readText("/sys/devices/system/memory/block_size_bytes") ?? "").trim(),
    16,
  );
  if (!(size > 0)) return [];
  const dir = `/sys/devices/system/node/node${node}`;
  const blocks = reader.listDir(dir)
    .map((name) => /^memory(\d+)$/.exec(name))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .filter((id) => {
      const state = reader.readText(`${dir}/memory${id}/state`);
      return state === undefined || state.trim() === "online";
    })
    .sort((a, b) => a - b);
  const ranges: PhysRange[] = [];
  for (const id of blocks) {
    const last = ranges.at(-1);
    if (last !== undefined && last.end === id * size) last.end += size;
    else ranges.push({ start: id * size, end: (id + 1) * size });
  }
  return ranges;
}

/**
 * Takes `n` kdamonds: creates them when none exists, or (with `useFree`) reuses `n` free ones.
 * Never writes `nr_kdamonds` when it is not 0.
 *
 * @throws {DamonBusyError} when kdamonds exist and not enough may be used.
 *
 * @example
 * ```ts ignore
 * const claims = claimKdamonds(sysfsDamonFs(), 2); // [ {index:0,created:true}, {index:1,...} ]
 * ```
 */
export function claimKdamonds(fs: DamonFs, n: number, useFree = false): KdamondClaim[] {
  const count = kdamondCount(fs);
  if (count === 0) {
    fs.write("kdamonds/nr_kdamonds", String(n));
    return Array.from({ length: n }, (_, index) => ({ index, created: true }));
  }
  if (useFree) {
    const free: KdamondClaim[] = [];
    for (let i = 0; i < count && free.length < n; i++) {
      if (kdamondIsFree(fs, i)) free.push({ index: i, created: false });
    }
    if (free.length === n) return free;
  }
  throw new DamonBusyError(count, useFree);
}

/**
 * Undoes {@link claimKdamonds}: every claimed kdamond off and without contexts; `nr_kdamonds`
 * back to 0 when tiermem created them all and they are still all there is. Safe to call twice.
 *
 * @example
 * ```ts ignore
 * releaseKdamonds(fs, claims);
 * ```
 */
export function releaseKdamonds(fs: DamonFs, claims: readonly KdamondClaim[]): void {
  for (const c of claims) {
    const dir = `kdamonds/${c.index}`;
    if (!fs.exists(dir)) continue;
    if (kdamondRunning(fs, c.index)) fs.write(`${dir}/state`, "off");
    if (
      fs.exists(`${dir}/contexts/nr_contexts`) && fs.read(`${dir}/contexts/nr_contexts`) !== "0"
    ) {
      fs.write(`${dir}/contexts/nr_contexts`, "0");
    }
  }
  if (
    claims.length > 0 && claims.every((c) => c.created) && fs.exists("kdamonds/nr_kdamonds") &&
    kdamondCount(fs) === claims.length
  ) {
    fs.write("kdamonds/nr_kdamonds", "0");
  }
}

/** One kdamond of the kernel engine: a node, its ranges and its one scheme. */
export interface MigrationSpec {
  /** The node it monitors. */
  node: number;
  /** `migrate_hot` on slow nodes, `migrate_cold` on fast nodes. */
  action: "migrate_hot" | "migrate_cold";
  /** Where the scheme moves pages. */
  targetNid: number;
  /** The node's physical ranges. */
  ranges: PhysRange[];
}

/**
 * One scheme per node: slow node i promotes to fast node `i mod |fast|`, fast node i demotes to
 * slow node `i mod |slow|`.
 *
 * @example
 * ```ts
 * import { migrationSpecs } from "./tiering_kernel.ts";
 * migrationSpecs([0], [2], () => []).map((s) => `${s.node}:${s.action}->${s.targetNid}`);
 * // [ "0:migrate_cold->2", "2:migrate_hot->0" ]
 * ```
 */
export function migrationSpecs(
  fast: readonly number[],
  slow: readonly number[],
  rangesOf: (node: number) => PhysRange[] = nodeMemoryRanges,
): MigrationSpec[] {
  return [
    ...fast.map((node, i) => ({
      node,
      action: "migrate_cold" as const,
      targetNid: slow[i % slow.length],
      ranges: rangesOf(node),
    })),
    ...slow.map((node, i) => ({
      node,
      action: "migrate_hot" as const,
      targetNid: fast[i % fast.length],
      ranges: rangesOf(node),
    })),
  ];
}

/** What the engine steers each interval (see {@link kernelSchemeParams}). */
export interface SchemeParams {
  /**
   * `room`: under budget with room; `short`: little room, or promotions held back by their quota;
   * `full`: no room, promotions paused; `over`: over budget.
   */
  mode: "room" | "short" | "full" | "over";
  /** `migrate_hot`'s byte quota per interval; 0 = paused (a quota of 0 would mean "unlimited"). */
  hotQuotaBytes: number;
  /** `migrate_cold`'s byte quota per interval. */
  coldQuotaBytes: number;
  /** `migrate_cold` takes regions with at most this `nr_accesses`. */
  coldMaxAccesses: number;
  /** ... and at least this age (aggregation intervals). */
  coldMinAge: number;
}

/** Inputs of {@link kernelSchemeParams}. */
export interface SchemeInputs {
  /** The budget, bytes. */
  budgetBytes: number;
  /** The program's bytes on the fast nodes now (`memory.numa_stat`). */
  fastBytes: number;
  /** `--rate`, bytes per second, both directions together. */
  rateBytesPerSec: number;
  /** The interval, ms (also each quota's reset interval). */
  intervalMs: number;
  /** Whether `migrate_hot` hit its quota last interval (`qt_exceeds` grew): more hot is waiting. */
  hotHeldBack: boolean;
  /** Aggregation intervals unaccessed before a page may go to make room (default 5). */
  coldMinAge: number;
  /** Aggregation intervals unaccessed before a page goes anyway (default 100). */
  idleMinAge: number;
}

const U32_MAX = 4294967295;
const PAGE = 4096;

/**
 * The schemes' parameters for the next interval: the budget held by tiermem, since DAMOS quotas
 * count bytes per scheme, not per program.
 *
 * - `migrate_hot`: quota = a third of the room left (pages), at most half the rate; paused below
 *   64 KiB. A third, because the quota restarts every reset interval (= the interval) and tiermem's
 *   next commit may come late: between two commits up to two intervals apart the quota can be
 *   spent in at most three reset windows.
 * - `migrate_cold` (every page it moves is also checked not accessed lately, `young`): regions
 *   unaccessed for `idleMinAge` (`room`); for `coldMinAge` when the room is under a quarter of the
 *   budget or promotions hit their quota (`short`); when promotions are paused or the program is
 *   over its budget (`full`, `over`), any region: its pages not accessed lately go. The cold quota
 *   is half the rate: DAMOS charges a quota with the whole region tried, the program's pages or
 *   not, and ranks the coldest regions first — a small quota would be spent on free memory.
 *
 * @example
 * ```ts
 * import { kernelSchemeParams } from "./tiering_kernel.ts";
 * kernelSchemeParams({
 *   budgetBytes: 128 << 20, fastBytes: 140 << 20, rateBytesPerSec: 1 << 30, intervalMs: 1000,
 *   hotHeldBack: false, coldMinAge: 5, idleMinAge: 100,
 * }).mode; // "over"
 * ```
 */
export function kernelSchemeParams(x: SchemeInputs): SchemeParams {
  const perInterval = Math.max(PAGE, Math.floor((x.rateBytesPerSec / 2) * x.intervalMs / 1000));
  const room = x.budgetBytes - x.fastBytes;
  const third = Math.floor(Math.max(0, room) / 3 / PAGE) * PAGE;
  const hotQuotaBytes = third < 64 << 10 ? 0 : Math.min(perInterval, third);
  if (room < 0 || hotQuotaBytes === 0) {
    return {
      mode: room < 0 ? "over" : "full",
      hotQuotaBytes: 0,
      coldQuotaBytes: perInterval,
      coldMaxAccesses: U32_MAX,
      coldMinAge: 0,
    };
  }
  const short = room < x.budgetBytes / 4 || x.hotHeldBack;
  return {
    mode: short ? "short" : "room",
    hotQuotaBytes,
    coldQuotaBytes: perInterval,
    coldMaxAccesses: 0,
    coldMinAge: short ? x.coldMinAge : x.idleMinAge,
  };
}

const U64_MAX = "18446744073709551615";

/**
 * Sets up kdamond `index` for one {@link MigrationSpec}: `paddr` operations on the node's ranges,
 * one scheme with its action, `target_nid`, the memcg filter on `memcgPath`, quota weights and
 * the first parameters. Does not start it.
 *
 * @example
 * ```ts ignore
 * configureMigration(fs, 0, spec, "/tiermem-4321", params, 1000, hotMin);
 * ```
 */
export function configureMigration(
  fs: DamonFs,
  index: number,
  spec: MigrationSpec,
  memcgPath: string,
  params: SchemeParams,
  intervalMs: number,
  hotMinAccesses: number,
  attrs: MonitoringAttrs = DEFAULT_MONITORING,
): void {
  const ctx = configureContext(fs, index, "paddr", attrs);
  const regions = `${ctx}/targets/0/regions`;
  fs.write(`${regions}/nr_regions`, String(spec.ranges.length));
  spec.ranges.forEach((r, i) => {
    fs.write(`${regions}/${i}/start`, String(r.start));
    fs.write(`${regions}/${i}/end`, String(r.end));
  });
  fs.write(`${ctx}/schemes/nr_schemes`, "1");
  const scheme = `${ctx}/schemes/0`;
  fs.write(`${scheme}/action`, spec.action);
  fs.write(`${scheme}/target_nid`, String(spec.targetNid));
  fs.write(`${scheme}/access_pattern/sz/min`, "0");
  fs.write(`${scheme}/access_pattern/sz/max`, U64_MAX);
  fs.write(`${scheme}/quotas/ms`, "0");
  fs.write(`${scheme}/quotas/reset_interval_ms`, String(intervalMs));
  fs.write(`${scheme}/quotas/weights/sz_permil`, "0");
  fs.write(`${scheme}/quotas/weights/nr_accesses_permil`, "1000");
  fs.write(`${scheme}/quotas/weights/age_permil`, "1000");
  // Filters exclude what matches (6.12): first everything outside the program's group, then, page
  // by page at the moment of the move, pages not accessed lately (promotion) or accessed lately
  // (demotion). The page-level `young` check (6.10+) matters on physical addresses: a DAMON region
  // of 1 MiB or more mixes the program's hot and cold pages wherever the allocator put them.
  fs.write(`${scheme}/filters/nr_filters`, "2");
  fs.write(`${scheme}/filters/0/type`, "memcg");
  fs.write(`${scheme}/filters/0/memcg_path`, memcgPath);
  fs.write(`${scheme}/filters/0/matching`, "N");
  fs.write(`${scheme}/filters/1/type`, "young");
  fs.write(`${scheme}/filters/1/matching`, spec.action === "migrate_hot" ? "N" : "Y");
  writeSchemeParams(fs, index, spec.action, params, hotMinAccesses);
}

/**
 * Writes one scheme's access pattern and quota for `params` (takes effect at the next
 * `commit`). A paused `migrate_hot` gets `age/min` = U32_MAX (≈13 years of aggregation
 * intervals): a byte quota of 0 would mean no quota at all.
 *
 * @example
 * ```ts ignore
 * writeSchemeParams(fs, 1, "migrate_hot", params, 1);
 * ```
 */
export function writeSchemeParams(
  fs: DamonFs,
  index: number,
  action: MigrationSpec["action"],
  params: SchemeParams,
  hotMinAccesses: number,
): void {
  const p = `kdamonds/${index}/contexts/0/schemes/0`;
  if (action === "migrate_hot") {
    const paused = params.hotQuotaBytes === 0;
    fs.write(`${p}/access_pattern/nr_accesses/min`, String(hotMinAccesses));
    fs.write(`${p}/access_pattern/nr_accesses/max`, String(U32_MAX));
    fs.write(`${p}/access_pattern/age/min`, paused ? String(U32_MAX) : "0");
    fs.write(`${p}/access_pattern/age/max`, String(U32_MAX));
    fs.write(`${p}/quotas/bytes`, String(paused ? PAGE : params.hotQuotaBytes));
  } else {
    fs.write(`${p}/access_pattern/nr_accesses/min`, "0");
    fs.write(`${p}/access_pattern/nr_accesses/max`, String(params.coldMaxAccesses));
    fs.write(`${p}/access_pattern/age/min`, String(params.coldMinAge));
    fs.write(`${p}/access_pattern/age/max`, String(U32_MAX));
    fs.write(`${p}/quotas/bytes`, String(params.coldQuotaBytes));
  }
}

/** A scheme's cumulative statistics. */
export interface SchemeStats {
  /** Regions tried. */
  nrTried: number;
  /** Bytes of the regions tried. */
  szTried: number;
  /** Regions the action was applied to. */
  nrApplied: number;
  /** Bytes the action really moved (pages migrated × page size). */
  szApplied: number;
  /** Times the quota was exceeded. */
  qtExceeds: number;
}

/**
 * Asks kdamond `index` to refresh its schemes' statistics and reads scheme 0's.
 *
 * @example
 * ```ts ignore
 * readSchemeStats(fs, 1).szApplied; // bytes promoted so far
 * ```
 */
export function readSchemeStats(fs: DamonFs, index: number): SchemeStats {
  fs.write(`kdamonds/${index}/state`, "update_schemes_stats");
  const dir = `kdamonds/${index}/contexts/0/schemes/0/stats`;
  const n = (name: string): number => Number(fs.read(`${dir}/${name}`));
  return {
    nrTried: n("nr_tried"),
    szTried: n("sz_tried"),
    nrApplied: n("nr_applied"),
    szApplied: n("sz_applied"),
    qtExceeds: n("qt_exceeds"),
  };
}
