/**
 * DAMON's sysfs interface (`/sys/kernel/mm/damon/admin`), as much of it as tiering needs: claim a
 * kdamond without disturbing anyone else's, set it up to monitor one process's virtual address
 * space with a `stat` scheme, read the scheme's `tried_regions` (each region's `nr_accesses` and
 * `age`), and give back everything it created.
 *
 * Safety rules this module keeps (they are what a user relies on):
 * - Writing `kdamonds/nr_kdamonds` destroys every existing kdamond, so it is written only when it
 *   is 0 (nothing to destroy) — {@link claimKdamond} otherwise refuses with {@link DamonBusyError},
 *   or, when asked, reuses a *free* kdamond (off, no contexts), which it leaves free again.
 * - A new scheme's `access_pattern/{sz,nr_accesses,age}/max` are 0 (6.12), so it matches nothing
 *   until they are set: {@link configureVaddrStat} sets every bound.
 * - Each claim is recorded in a state file (`/run/tiermem/tier-PID.json`) so that
 *   `tier --cleanup` can undo it after the owner was killed with SIGKILL.
 *
 * All file access goes through {@link DamonFs}, so the decisions are tested on a fake tree.
 *
 * @module
 */

/** Where DAMON's sysfs interface lives. */
export const DAMON_ADMIN = "/sys/kernel/mm/damon/admin";

/** The few file operations the DAMON sysfs interface needs (paths relative to the admin dir). */
export interface DamonFs {
  /** Reads a file's text, trimmed. */
  read(path: string): string;
  /** Writes a value (the kernel reacts to the write: creating dirs, starting a kdamond). */
  write(path: string, value: string): void;
  /** Whether the path exists. */
  exists(path: string): boolean;
  /** The entries of a directory. */
  list(path: string): string[];
}

/**
 * The real interface under `root` (default `/`).
 *
 * @example
 * ```ts
 * import { sysfsDamonFs } from "./damon.ts";
 * const fs = sysfsDamonFs();
 * console.log(fs.exists("kdamonds")); // true where DAMON sysfs is built in and readable
 * ```
 */
export function sysfsDamonFs(root: string = "/"): DamonFs {
  const base = `${root.replace(/\/+$/, "")}${DAMON_ADMIN}`;
  return {
    read: (path: string): string => Deno.readTextFileSync(`${base}/${path}`).trim(),
    write: (path: string, value: string): void => Deno.writeTextFileSync(`${base}/${path}`, value),
    exists: (path: string): boolean => {
      try {
        Deno.statSync(`${base}/${path}`);
        return true;
      } catch {
        return false;
      }
    },
    list: (path: string): string[] => [...Deno.readDirSync(`${base}/${path}`)].map((e) => e.name),
  };
}

/** Kdamonds exist and none may be reused: tiermem will not destroy them. */
export class DamonBusyError extends Error {
  /** How many kdamonds exist. */
  readonly kdamonds: number;
  /**
   * @param kdamonds the current `nr_kdamonds`.
   * @param free whether a free one was looked for (and none found).
   */
  constructor(kdamonds: number, free: boolean) {
    super(
      free
        ? `${kdamonds} kdamond(s) exist and none is free (off, no contexts)`
        : `${kdamonds} kdamond(s) already exist (another DAMON user); tiermem will not replace them (--use-free-kdamond reuses a free one)`,
    );
    this.name = "DamonBusyError";
    this.kdamonds = kdamonds;
  }
}

/** A kdamond tiermem owns. */
export interface KdamondClaim {
  /** Its index under `kdamonds/`. */
  index: number;
  /** True when tiermem wrote `nr_kdamonds` to create it (false: a reused free one). */
  created: boolean;
}

/** Options of {@link claimKdamond}. */
export interface ClaimOptions {
  /** Reuse a free kdamond (off, no contexts) when kdamonds exist, instead of refusing. */
  useFree?: boolean;
}

/** `kdamonds/nr_kdamonds`. */
export function kdamondCount(fs: DamonFs): number {
  return Number(fs.read("kdamonds/nr_kdamonds"));
}

/** Whether kdamond `index` is off and has no context (nobody's). */
export function kdamondIsFree(fs: DamonFs, index: number): boolean {
  const dir = `kdamonds/${index}`;
  return fs.read(`${dir}/state`) === "off" && Number(fs.read(`${dir}/contexts/nr_contexts`)) === 0;
}

/**
 * Takes a kdamond for tiermem: creates the first one when none exists, or (with `useFree`)
 * reuses a free one. Never writes `nr_kdamonds` when it is not 0.
 *
 * @throws {DamonBusyError} when kdamonds exist and none may be used.
 *
 * @example
 * ```ts ignore
 * import { claimKdamond, sysfsDamonFs } from "./damon.ts";
 * const claim = claimKdamond(sysfsDamonFs()); // { index: 0, created: true }
 * ```
 */
export function claimKdamond(fs: DamonFs, options: ClaimOptions = {}): KdamondClaim {
  const count = kdamondCount(fs);
  if (count === 0) {
    fs.write("kdamonds/nr_kdamonds", "1");
    return { index: 0, created: true };
  }
  if (options.useFree) {
    for (let i = 0; i < count; i++) if (kdamondIsFree(fs, i)) return { index: i, created: false };
  }
  throw new DamonBusyError(count, options.useFree === true);
}

/** Monitoring attributes (DAMON's units). */
export interface MonitoringAttrs {
  /** Sampling interval, µs (default 5000). */
  sampleUs: number;
  /** Aggregation interval, µs (default 100000). */
  aggrUs: number;
  /** Regions update interval, µs (default 1000000). */
  updateUs: number;
  /** Minimum number of regions (default 10). */
  minRegions: number;
  /** Maximum number of regions (default 1000). */
  maxRegions: number;
}

/** The defaults of {@link MonitoringAttrs}. */
export const DEFAULT_MONITORING: MonitoringAttrs = {
  sampleUs: 5_000,
  aggrUs: 100_000,
  updateUs: 1_000_000,
  minRegions: 10,
  maxRegions: 1000,
};

const U64_MAX = "18446744073709551615";
const U32_MAX = "4294967295";

/**
 * Gives kdamond `index` one context with `operations` ("vaddr" or "paddr"), the monitoring
 * attributes and one target; returns the context's sysfs path (relative to the admin root).
 *
 * @example
 * ```ts ignore
 * const ctx = configureContext(fs, 0, "paddr", DEFAULT_MONITORING);
 * fs.write(`${ctx}/targets/0/regions/nr_regions`, "1");
 * ```
 */
export function configureContext(
  fs: DamonFs,
  index: number,
  operations: "vaddr" | "paddr",
  attrs: MonitoringAttrs,
): string {
  const ctx = `kdamonds/${index}/contexts/0`;
  fs.write(`kdamonds/${index}/contexts/nr_contexts`, "1");
  fs.write(`${ctx}/operations`, operations);
  const mon = `${ctx}/monitoring_attrs`;
  fs.write(`${mon}/intervals/sample_us`, String(attrs.sampleUs));
  fs.write(`${mon}/intervals/aggr_us`, String(attrs.aggrUs));
  fs.write(`${mon}/intervals/update_us`, String(attrs.updateUs));
  fs.write(`${mon}/nr_regions/min`, String(attrs.minRegions));
  fs.write(`${mon}/nr_regions/max`, String(attrs.maxRegions));
  fs.write(`${ctx}/targets/nr_targets`, "1");
  return ctx;
}

/**
 * Sets up kdamond `index` to monitor process `pid` (vaddr operations) with one `stat` scheme
 * matching every region, so that `tried_regions` lists all of them. Does not start it.
 *
 * @example
 * ```ts ignore
 * import { claimKdamond, configureVaddrStat, sysfsDamonFs } from "./damon.ts";
 * const fs = sysfsDamonFs();
 * configureVaddrStat(fs, claimKdamond(fs).index, 1234);
 * ```
 */
export function configureVaddrStat(
  fs: DamonFs,
  index: number,
  pid: number,
  attrs: MonitoringAttrs = DEFAULT_MONITORING,
): void {
  const ctx = configureContext(fs, index, "vaddr", attrs);
  fs.write(`${ctx}/targets/0/pid_target`, String(pid));
  fs.write(`${ctx}/schemes/nr_schemes`, "1");
  const scheme = `${ctx}/schemes/0`;
  fs.write(`${scheme}/action`, "stat");
  // New schemes match nothing (every max is 0 on 6.12): open every bound.
  fs.write(`${scheme}/access_pattern/sz/min`, "0");
  fs.write(`${scheme}/access_pattern/sz/max`, U64_MAX);
  fs.write(`${scheme}/access_pattern/nr_accesses/min`, "0");
  fs.write(`${scheme}/access_pattern/nr_accesses/max`, U32_MAX);
  fs.write(`${scheme}/access_pattern/age/min`, "0");
  fs.write(`${scheme}/access_pattern/age/max`, U32_MAX);
}

/**
 * Turns kdamond `index` on.
 *
 * @example
 * ```ts ignore
 * startKdamond(fs, claim.index);
 * ```
 */
export function startKdamond(fs: DamonFs, index: number): void {
  fs.write(`kdamonds/${index}/state`, "on");
}

/** One monitored region as DAMON saw it in the last aggregation interval. */
export interface DamonRegion {
  /** Start address (inclusive). */
  start: number;
  /** End address (exclusive). */
  end: number;
  /** Samples (of `aggrUs / sampleUs`) in which the region was accessed. */
  nrAccesses: number;
  /** Aggregation intervals the region kept its access frequency. */
  age: number;
}

/**
 * Asks the kdamond for its scheme's tried regions (it answers after its next aggregation
 * interval) and reads them, sorted by address.
 *
 * @example
 * ```ts ignore
 * for (const r of readTriedRegions(fs, 0)) console.log(r.start.toString(16), r.nrAccesses);
 * ```
 */
export function readTriedRegions(fs: DamonFs, index: number): DamonRegion[] {
  fs.write(`kdamonds/${index}/state`, "update_schemes_tried_regions");
  const dir = `kdamonds/${index}/contexts/0/schemes/0/tried_regions`;
  const regions: DamonRegion[] = [];
  for (const name of fs.list(dir)) {
    if (!/^\d+$/.test(name)) continue;
    regions.push({
      start: Number(fs.read(`${dir}/${name}/start`)),
      end: Number(fs.read(`${dir}/${name}/end`)),
      nrAccesses: Number(fs.read(`${dir}/${name}/nr_accesses`)),
      age: Number(fs.read(`${dir}/${name}/age`)),
    });
  }
  return regions.sort((a, b) => a.start - b.start);
}

/** Whether kdamond `index` is running (its `state` is `on`). */
export function kdamondRunning(fs: DamonFs, index: number): boolean {
  return fs.exists(`kdamonds/${index}/state`) && fs.read(`kdamonds/${index}/state`) === "on";
}

/**
 * Undoes {@link claimKdamond} and {@link configureVaddrStat}: turns the kdamond off, removes its
 * context, and — when tiermem created it and it is still the only one — sets `nr_kdamonds` back
 * to 0. Safe to call twice.
 *
 * @example
 * ```ts ignore
 * releaseKdamond(fs, claim);
 * ```
 */
export function releaseKdamond(fs: DamonFs, claim: KdamondClaim): void {
  const dir = `kdamonds/${claim.index}`;
  if (!fs.exists(dir)) return;
  if (kdamondRunning(fs, claim.index)) fs.write(`${dir}/state`, "off");
  if (fs.exists(`${dir}/contexts/nr_contexts`) && fs.read(`${dir}/contexts/nr_contexts`) !== "0") {
    fs.write(`${dir}/contexts/nr_contexts`, "0");
  }
  if (claim.created && kdamondCount(fs) === claim.index + 1 && claim.index === 0) {
    fs.write("kdamonds/nr_kdamonds", "0");
  }
}
