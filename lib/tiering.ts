/**
 * Automatic tiering of one running process: its hot pages on the fast nodes within a budget, the
 * rest on the slow nodes, decided every interval from DAMON's view of its accesses.
 *
 * Two engines. The user engine: a kdamond of tiermem's own ({@link claimKdamond}) watches
 * the process's virtual address space with a `stat` scheme; every interval tiermem reads the
 * scheme's `tried_regions`, intersects them with the process's private writable mappings
 * (`/proc/PID/maps`), asks `move_pages(2)` where each present page is, plans with
 * {@link planMoves} (budget, hottest first, room only from the cold, rate) and moves the pages
 * with `move_pages(2)` on the process. The budget is checked against the process's pages on the
 * fast nodes from `/proc/PID/numa_maps` (all of them, monitored or not). The kernel engine
 * (`engine: "kernel"`, Linux 6.11+): one kdamond per node with DAMOS `migrate_hot` /
 * `migrate_cold` limited to the program's memory cgroup, steered by tiermem every interval to hold
 * the budget (`lib/tiering_kernel.ts`, `lib/tiering_cgroup.ts`).
 *
 * Preconditions are checked before anything is created ({@link checkTiering}); every failure is a
 * {@link TieringError} with one line naming the problem. Whatever was created is removed when the
 * session stops: on {@link TieringSession.stop}, disposal, the target's exit, or an error.
 *
 * @module
 */

import process from "node:process";
import {
  claimKdamond,
  configureVaddrStat,
  DAMON_ADMIN,
  DamonBusyError,
  type DamonFs,
  type DamonRegion,
  type KdamondClaim,
  type MonitoringAttrs,
  readTriedRegions,
  releaseKdamond,
  startKdamond,
  sysfsDamonFs,
} from "./damon.ts";
import { readNumaMaps, summarizeNumaMaps } from "./numa_maps.ts";
import {
  type CgroupFs,
  type ProgramCgroup,
  programNodeBytes,
  realCgroupFs,
  removeProgramCgroup,
} from "./tiering_cgroup.ts";
import {
  claimKdamonds,
  configureMigration,
  kernelSchemeParams,
  migrationSpecs,
  nodeMemoryRanges,
  readSchemeStats,
  releaseKdamonds,
  type SchemeParams,
  writeSchemeParams,
} from "./tiering_kernel.ts";
import { sym } from "./registry.ts";
import {
  DEFAULT_COLD_MIN_AGE,
  DEFAULT_HOT_SHARE,
  DEFAULT_IDLE_MIN_AGE,
  hotThreshold,
  type PlanLimits,
  planMoves,
  type PlanRegion,
} from "./tiering_plan.ts";
import { recordClaim, removeClaimRecord } from "./tiering_state.ts";
import { formatNodeList } from "./node_list.ts";
import { readTopology, type SysfsReader, sysfsReader, type Topology } from "./topology.ts";

/** A precondition or runtime failure of tiering: `message` is the one line to show. */
export class TieringError extends Error {
  /**
   * Makes the error.
   *
   * @param message one line naming the problem.
   */
  constructor(message: string) {
    super(message);
    this.name = "TieringError";
  }
}

/** The fast-node budget: bytes, or a percentage of the fast nodes' memory. */
export type FastMax = number | { percent: number };

/** Options of {@link startTiering}. */
export interface TieringOptions {
  /** The process to tier. */
  pid: number;
  /** Fast (promotion) nodes. */
  fast: readonly number[];
  /** Slow (demotion) nodes. */
  slow: readonly number[];
  /** The process's fast-node budget (default: 100% of the fast nodes). */
  fastMax?: FastMax;
  /** Planning interval, ms (default 1000). */
  intervalMs?: number;
  /** Migration quota, bytes per second, both directions together (default 1 GiB/s). */
  rateBytesPerSec?: number;
  /** Reuse a free kdamond when kdamonds exist (default: refuse). */
  useFreeKdamond?: boolean;
  /** The topology (default: read from sysfs). */
  topology?: Topology;
  /** DAMON's sysfs (default: the real one). */
  damon?: DamonFs;
  /** DAMON monitoring attributes (default {@link DEFAULT_MONITORING}). */
  monitoring?: MonitoringAttrs;
  /** A region is hot from this `nr_accesses` on (default 1). */
  hotMinAccesses?: number;
  /** A region is hot only with this share (0-1) of the hottest region's `nr_accesses` (default 0.5). */
  hotShare?: number;
  /** Aggregation intervals unaccessed before a region may be demoted to make room (default 5: 0.5 s). */
  coldMinAge?: number;
  /** Aggregation intervals unaccessed before a region is demoted anyway (default 50: 5 s). */
  idleMinAge?: number;
  /** Directory of claim records for `tier --cleanup` (default `/run/tiermem`). */
  stateDir?: string;
  /**
   * `user` (default): DAMON vaddr + tiermem's move_pages. `kernel`: DAMOS migrate_hot/cold
   * (Linux 6.11+), which needs `cgroup`.
   */
  engine?: "user" | "kernel";
  /**
   * The kernel engine's memory cgroup (`createProgramCgroup`), in which the process was started
   * (a process moved in later keeps its existing pages charged elsewhere, unseen). The session
   * owns it: it is removed when the session ends.
   */
  cgroup?: ProgramCgroup;
  /** The cgroup file system (default: the real one). */
  cgroupFs?: CgroupFs;
  /** Where node memory blocks are read for the kernel engine (default: the real sysfs). */
  sysfs?: SysfsReader;
}

/** What the kernel engine steered this interval. */
export interface KernelEngineFigures {
  /** `room`, `short` (little room: cold pages go sooner), `full` (no room) or `over` (over budget). */
  mode: "room" | "short" | "full" | "over";
  /** migrate_hot's quota for the next interval, bytes (0: paused). */
  hotQuotaBytes: number;
  /** migrate_cold's minimum age for the next interval (aggregation intervals). */
  coldMinAge: number;
}

/** Figures of one interval (bytes unless named otherwise). */
export interface TieringFigures {
  /** Interval number, from 1. */
  interval: number;
  /** Milliseconds since the start. */
  elapsedMs: number;
  /** The engine that ran. */
  engine: "user" | "kernel";
  /** The process's bytes on the fast nodes after this interval's moves (numa_maps). */
  fastBytes: number;
  /** The budget. */
  budgetBytes: number;
  /** Present bytes of the hot regions (0 with the kernel engine: it sees no per-process regions). */
  hotBytes: number;
  /** Of those, on the fast nodes after the moves (0 with the kernel engine). */
  hotOnFastBytes: number;
  /** Bytes promoted / demoted this interval. */
  promotedBytes: number;
  /** Bytes demoted this interval. */
  demotedBytes: number;
  /** Totals since the start. */
  totalPromotedBytes: number;
  /** Bytes demoted since the start. */
  totalDemotedBytes: number;
  /** DAMON regions seen this interval (the kernel engine: regions its schemes tried). */
  regions: number;
  /** tiermem's own CPU time (user + system) this interval, ms. */
  cpuMs: number;
  /** The kernel engine's steering (kernel engine only). */
  kernel?: KernelEngineFigures;
}

/** How a session ended. */
export interface TieringEnd {
  /** `exited`: the process is gone; `stopped`: stop()/dispose; `error`: see `error`. */
  reason: "exited" | "stopped" | "error";
  /** The error, for `error`. */
  error?: Error;
  /** The last figures, if any interval ran. */
  last?: TieringFigures;
}

/** The resolved, checked request. */
export interface TieringPlanTarget {
  /** Fast nodes. */
  fast: number[];
  /** Slow nodes. */
  slow: number[];
  /** Budget, bytes. */
  budgetBytes: number;
}

const PAGE = 4096;
const MPOL_MF_MOVE = 2;
/** Pages sampled per interval to estimate where each region is. */
const SAMPLE_PAGES = 4096;

/** Human size, for messages. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}

/** What {@link checkTiering} looks at (the real machine by default; tests pass fakes). */
export interface TieringEnvironment {
  /** Effective uid (default `Deno.uid()`). */
  uid: number | null;
  /** Whether DAMON's sysfs exists. */
  damonPresent: boolean;
  /** The topology. */
  topology: Topology;
}

/**
 * The first two checks of {@link checkTiering}: root, and DAMON's sysfs.
 *
 * @throws {TieringError} naming the problem.
 *
 * @example
 * ```ts
 * import { checkAccess } from "./tiering.ts";
 * try {
 *   checkAccess({ uid: 1000, damonPresent: true });
 * } catch (e) {
 *   console.log((e as Error).message); // must run as root: ...
 * }
 * ```
 */
export function checkAccess(env: Pick<TieringEnvironment, "uid" | "damonPresent">): void {
  if (env.uid !== 0) {
    throw new TieringError(
      "must run as root: DAMON's sysfs and moving another process's pages need it",
    );
  }
  if (!env.damonPresent) {
    throw new TieringError(
      `no DAMON sysfs interface (${DAMON_ADMIN}): the kernel needs CONFIG_DAMON_SYSFS and CONFIG_DAMON_VADDR`,
    );
  }
}

/**
 * Checks a tiering request before anything is created or started, in the order a user fixes
 * them: root, DAMON sysfs, nodes online, fast and slow disjoint, a slow node exists, the budget
 * fits the fast nodes. Returns the resolved budget.
 *
 * @throws {TieringError} with one line naming the problem.
 *
 * @example
 * ```ts
 * import { checkTiering } from "./tiering.ts";
 * import { readTopology } from "./topology.ts";
 * try {
 *   checkTiering({ fast: [0], slow: [], fastMax: 1 << 20 }, {
 *     uid: 0,
 *     damonPresent: true,
 *     topology: readTopology(),
 *   });
 * } catch (e) {
 *   console.log((e as Error).message); // no lower-tier node to demote to ...
 * }
 * ```
 */
export function checkTiering(
  request: { fast: readonly number[]; slow: readonly number[]; fastMax?: FastMax },
  env: TieringEnvironment,
): TieringPlanTarget {
  checkAccess(env);
  const online = new Set(env.topology.online);
  for (const n of [...request.fast, ...request.slow]) {
    if (!online.has(n)) {
      throw new TieringError(
        `node ${n} is not online (online: ${formatNodeList(env.topology.online)})`,
      );
    }
  }
  if (request.fast.length === 0) throw new TieringError("no fast node to promote to");
  if (request.slow.length === 0) {
    throw new TieringError(
      "no lower-tier node to demote to (the kernel shows one memory tier): give --slow NODES",
    );
  }
  const both = request.fast.filter((n) => request.slow.includes(n));
  if (both.length > 0) {
    throw new TieringError(`node ${both[0]} is both fast and slow`);
  }
  const fastTotal = request.fast.reduce(
    (s, n) => s + (env.topology.nodes.find((x) => x.id === n)?.memTotalBytes ?? 0),
    0,
  );
  const max = request.fastMax ?? { percent: 100 };
  const budgetBytes = typeof max === "number" ? max : Math.floor((fastTotal * max.percent) / 100);
  if (!Number.isFinite(budgetBytes) || budgetBytes <= 0) {
    throw new TieringError(`the fast-node budget must be positive`);
  }
  if (budgetBytes > fastTotal) {
    throw new TieringError(
      `fast-node budget ${formatBytes(budgetBytes)} is larger than the fast nodes' memory (${
        formatBytes(fastTotal)
      } on node ${formatNodeList([...request.fast])})`,
    );
  }
  return { fast: [...request.fast], slow: [...request.slow], budgetBytes };
}

/** A private writable mapping of the process: pages tiermem may move. */
interface Span {
  start: number;
  end: number;
}

function readWritableSpans(pid: number): Span[] {
  const text = Deno.readTextFileSync(`/proc/${pid}/maps`);
  const spans: Span[] = [];
  for (const line of text.split("\n")) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) (....)/.exec(line);
    if (m === null || m[3][0] !== "r" || m[3][1] !== "w" || m[3][3] !== "p") continue;
    spans.push({ start: parseInt(m[1], 16), end: parseInt(m[2], 16) });
  }
  return spans;
}

/** Page-aligned `[start, end)` pieces of one region inside the writable spans. */
type Pieces = Array<[number, number]>;

function piecesOf(region: DamonRegion, spans: readonly Span[]): Pieces {
  const own: Pieces = [];
  for (const s of spans) {
    const a = Math.ceil(Math.max(region.start, s.start) / PAGE) * PAGE;
    const b = Math.floor(Math.min(region.end, s.end) / PAGE) * PAGE;
    if (a < b) own.push([a, b]);
  }
  return own;
}

function pageCount(pieces: Pieces): number {
  return pieces.reduce((n, [a, b]) => n + (b - a) / PAGE, 0);
}

/** Every `stride`-th page of `pieces`, from page `phase` of each piece. */
function samplePages(pieces: Pieces, stride: number, phase: number): BigUint64Array {
  let n = 0;
  for (const [a, b] of pieces) n += Math.max(0, Math.ceil(((b - a) / PAGE - phase) / stride));
  const out = new BigUint64Array(n);
  let k = 0;
  for (const [a, b] of pieces) {
    for (let p = a + phase * PAGE; p < b; p += stride * PAGE) out[k++] = BigInt(p);
  }
  return out;
}

/** Where the process's pages are: node or -errno per page. */
function queryPages(pid: number, pages: BigUint64Array): Int32Array {
  const status = new Int32Array(pages.length);
  if (pages.length === 0) return status;
  const rc = sym().hm_move_pages(pid, BigInt(pages.length), pages, null, status, 0);
  if (rc < 0n) throw new TieringError(`move_pages query of process ${pid} failed (errno ${-rc})`);
  return status;
}

/** Moves `pages` round-robin over `nodes`; returns how many landed there. */
function movePages(pid: number, pages: BigUint64Array, nodes: readonly number[]): number {
  if (pages.length === 0) return 0;
  const targets = new Int32Array(pages.length);
  for (let i = 0; i < targets.length; i++) targets[i] = nodes[i % nodes.length];
  const status = new Int32Array(pages.length);
  const rc = sym().hm_move_pages(pid, BigInt(pages.length), pages, targets, status, MPOL_MF_MOVE);
  if (rc < 0n) {
    if (rc === -3n) return 0; // ESRCH: the process just exited
    throw new TieringError(`move_pages of process ${pid} failed (errno ${-rc})`);
  }
  let moved = 0;
  for (let i = 0; i < status.length; i++) if (status[i] === targets[i]) moved++;
  return moved;
}

function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return !/^\d+ \(.*\) [ZX]/.test(stat);
  } catch {
    return false;
  }
}

function cpuMsNow(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** A running tiering session (see {@link startTiering}). */
export interface TieringSession extends AsyncIterable<TieringFigures>, AsyncDisposable {
  /** The process being tiered. */
  readonly pid: number;
  /** The resolved nodes and budget. */
  readonly target: TieringPlanTarget;
  /** The latest figures (undefined before the first interval ends). */
  stats(): TieringFigures | undefined;
  /** Resolves when the session ends (target exited, stopped, or an error), after cleanup. */
  readonly done: Promise<TieringEnd>;
  /** Stops, turns the kdamond off and removes what was created. */
  stop(): Promise<TieringEnd>;
}

/**
 * Starts tiering process `pid`: checks the request ({@link checkTiering}), claims a kdamond,
 * monitors the process and moves its pages every interval until it exits or the session stops.
 *
 * @throws {TieringError} when a precondition fails (nothing is created then).
 *
 * @example
 * ```ts ignore
 * import { startTiering } from "./tiering.ts";
 * await using session = startTiering({ pid: 1234, fast: [0], slow: [2], fastMax: 128 << 20 });
 * for await (const f of session) {
 *   console.log(`${f.fastBytes >> 20} MiB on fast, ${f.totalPromotedBytes >> 20} MiB promoted`);
 *   if (f.interval === 10) break;
 * }
 * ```
 */
export function startTiering(options: TieringOptions): TieringSession {
  if (!Number.isSafeInteger(options.pid) || options.pid <= 0) {
    throw new TypeError(`startTiering: pid must be a positive integer, got ${options.pid}`);
  }
  const damon = options.damon ?? sysfsDamonFs();
  const topology = options.topology ?? readTopology();
  const target = checkTiering(options, {
    uid: Deno.uid(),
    damonPresent: damon.exists("kdamonds/nr_kdamonds"),
    topology,
  });
  if (options.engine === "kernel" && options.cgroup === undefined) {
    throw new TieringError(
      "the kernel engine needs the memory cgroup the process was started in (createProgramCgroup)",
    );
  }
  if (!alive(options.pid)) throw new TieringError(`no process ${options.pid}`);
  const intervalMs = options.intervalMs ?? 1000;
  const rate = options.rateBytesPerSec ?? 1 << 30;
  if (!(intervalMs > 0) || !(rate > 0)) {
    throw new RangeError("startTiering: intervalMs and rateBytesPerSec must be positive");
  }
  const engine = options.engine === "kernel"
    ? kernelEngine(options, target, damon, intervalMs, rate)
    : userEngine(options, target, damon, intervalMs, rate);
  return runSession(options.pid, target, intervalMs, engine);
}

/** One interval's figures as an engine makes them (the session adds `elapsedMs`). */
type EngineFigures = Omit<TieringFigures, "elapsedMs">;

/** One engine's work: a step per interval, and the release of what it created. */
interface Engine {
  /** Does one interval's work; `interval` counts from 1. */
  step(interval: number): EngineFigures;
  /** Removes what the engine created (safe to call twice). */
  release(): void;
}

function claimOrRefuse<T>(claim: () => T): T {
  try {
    return claim();
  } catch (error) {
    if (error instanceof DamonBusyError) throw new TieringError(error.message);
    throw error;
  }
}

function userEngine(
  options: TieringOptions,
  target: TieringPlanTarget,
  damon: DamonFs,
  intervalMs: number,
  rate: number,
): Engine {
  const claim: KdamondClaim = claimOrRefuse(() =>
    claimKdamond(damon, { useFree: options.useFreeKdamond })
  );
  const stateDir = options.stateDir ?? "/run/tiermem";
  const release = (): void => {
    releaseKdamond(damon, claim);
    removeClaimRecord(stateDir);
  };
  try {
    recordClaim(stateDir, { owner: Deno.pid, target: options.pid, claim });
    configureVaddrStat(damon, claim.index, options.pid, options.monitoring);
    startKdamond(damon, claim.index);
  } catch (error) {
    release();
    throw new TieringError(`cannot start DAMON: ${error instanceof Error ? error.message : error}`);
  }

  const limits = {
    hotMinAccesses: options.hotMinAccesses ?? 1,
    hotShare: options.hotShare ?? DEFAULT_HOT_SHARE,
    coldMinAge: options.coldMinAge ?? DEFAULT_COLD_MIN_AGE,
    idleMinAge: options.idleMinAge ?? DEFAULT_IDLE_MIN_AGE,
    ratePages: Math.max(1, Math.floor((rate * intervalMs) / 1000 / PAGE)),
  };
  const fastSet = new Set(target.fast);
  const slowSet = new Set(target.slow);
  let totalPromoted = 0;
  let totalDemoted = 0;

  const fastBytesOf = (pid: number): number => {
    const usage = summarizeNumaMaps(readNumaMaps(pid));
    let bytes = 0;
    for (const n of target.fast) bytes += usage.bytesPerNode[n] ?? 0;
    return bytes;
  };

  const step = (interval: number): EngineFigures => {
    const cpu0 = cpuMsNow();
    const regions = readTriedRegions(damon, claim.index);
    const spans = readWritableSpans(options.pid);
    const pieces = regions.map((r) => piecesOf(r, spans));
    // Estimate each region's fast and slow pages from a sample (the query costs ~1 µs a page
    // in the kernel); the sample's phase turns every interval so every page is seen in time.
    const totalPages = pieces.reduce((n, p) => n + pageCount(p), 0);
    const stride = Math.max(1, Math.ceil(totalPages / SAMPLE_PAGES));
    const phase = (interval - 1) % stride;
    const planRegions: PlanRegion[] = regions.map((r, i) => {
      const status = queryPages(options.pid, samplePages(pieces[i], stride, phase));
      let fast = 0;
      let slow = 0;
      for (const node of status) {
        if (fastSet.has(node)) fast++;
        else if (slowSet.has(node)) slow++;
      }
      return {
        nrAccesses: r.nrAccesses,
        age: r.age,
        fastPages: fast * stride,
        slowPages: slow * stride,
      };
    });
    const fastBefore = fastBytesOf(options.pid);
    const planLimits: PlanLimits = {
      ...limits,
      budgetPages: Math.floor(target.budgetBytes / PAGE),
      fastUsedPages: Math.ceil(fastBefore / PAGE),
    };
    const plan = planMoves(planRegions, planLimits);
    // Exact pages of the regions to move: query them all, take the first `want` on `from`.
    const pick = (i: number, want: number, from: Set<number>): bigint[] => {
      const pages = samplePages(pieces[i], 1, 0);
      const status = queryPages(options.pid, pages);
      const out: bigint[] = [];
      for (let k = 0; k < pages.length && out.length < want; k++) {
        if (from.has(status[k])) out.push(pages[k]);
      }
      return out;
    };
    const toSlow: bigint[] = [];
    const toFast: bigint[] = [];
    plan.demote.forEach((n, i) => n > 0 && toSlow.push(...pick(i, n, fastSet)));
    plan.promote.forEach((n, i) => n > 0 && toFast.push(...pick(i, n, slowSet)));
    // Demote first, so the budget holds at every instant.
    const demoted = movePages(options.pid, BigUint64Array.from(toSlow), target.slow);
    const promoted = movePages(options.pid, BigUint64Array.from(toFast), target.fast);
    let hotPages = 0;
    let hotOnFast = 0;
    const hotFrom = hotThreshold(planRegions, limits);
    planRegions.forEach((r, i) => {
      if (r.nrAccesses < hotFrom) return;
      hotPages += r.fastPages + r.slowPages;
      hotOnFast += Math.max(0, r.fastPages + plan.promote[i] - plan.demote[i]);
    });
    totalPromoted += promoted * PAGE;
    totalDemoted += demoted * PAGE;
    return {
      interval,
      engine: "user",
      fastBytes: Math.max(0, fastBefore + (promoted - demoted) * PAGE),
      budgetBytes: target.budgetBytes,
      hotBytes: hotPages * PAGE,
      hotOnFastBytes: Math.min(hotOnFast, hotPages) * PAGE,
      promotedBytes: promoted * PAGE,
      demotedBytes: demoted * PAGE,
      totalPromotedBytes: totalPromoted,
      totalDemotedBytes: totalDemoted,
      regions: regions.length,
      cpuMs: Math.round((cpuMsNow() - cpu0) * 100) / 100,
    };
  };
  return { step, release };
}

function kernelEngine(
  options: TieringOptions,
  target: TieringPlanTarget,
  damon: DamonFs,
  intervalMs: number,
  rate: number,
): Engine {
  const cg = options.cgroup!;
  const cgFs = options.cgroupFs ?? realCgroupFs;
  const reader = options.sysfs ?? sysfsReader();
  const specs = migrationSpecs(target.fast, target.slow, (n) => nodeMemoryRanges(n, reader));
  const empty = specs.find((s) => s.ranges.length === 0);
  if (empty !== undefined) {
    removeProgramCgroup(cg, cgFs);
    throw new TieringError(`node ${empty.node} has no online memory block to monitor`);
  }
  let claims;
  try {
    claims = claimOrRefuse(() => claimKdamonds(damon, specs.length, options.useFreeKdamond));
  } catch (error) {
    removeProgramCgroup(cg, cgFs);
    throw error;
  }
  const stateDir = options.stateDir ?? "/run/tiermem";
  const release = (): void => {
    let failure: unknown;
    for (
      const undo of [
        () => releaseKdamonds(damon, claims),
        () => removeProgramCgroup(cg, cgFs),
        () => removeClaimRecord(stateDir),
      ]
    ) {
      try {
        undo();
      } catch (error) {
        failure ??= error;
      }
    }
    if (failure !== undefined) throw failure;
  };
  const inputs = {
    budgetBytes: target.budgetBytes,
    rateBytesPerSec: rate,
    intervalMs,
    coldMinAge: options.coldMinAge ?? DEFAULT_COLD_MIN_AGE,
    idleMinAge: options.idleMinAge ?? DEFAULT_IDLE_MIN_AGE,
  };
  const hotMin = options.hotMinAccesses ?? 1;
  const fastBytesNow = (): number => {
    const perNode = programNodeBytes(cg, cgFs);
    return target.fast.reduce((s, n) => s + (perNode[n] ?? 0), 0);
  };
  let params: SchemeParams;
  try {
    params = kernelSchemeParams({ ...inputs, fastBytes: fastBytesNow(), hotHeldBack: false });
    recordClaim(stateDir, { owner: Deno.pid, target: options.pid, claims, cgroup: cg });
    specs.forEach((spec, i) =>
      configureMigration(
        damon,
        claims[i].index,
        spec,
        cg.path,
        params,
        intervalMs,
        hotMin,
        options.monitoring,
      )
    );
    for (const c of claims) startKdamond(damon, c.index);
  } catch (error) {
    release();
    throw new TieringError(
      `cannot start DAMOS migrate_hot/migrate_cold: ${
        error instanceof Error ? error.message : error
      }`,
    );
  }
  let promotedBefore = 0;
  let demotedBefore = 0;
  let exceedsBefore = 0;
  let triedBefore = 0;
  const step = (interval: number): EngineFigures => {
    const cpu0 = cpuMsNow();
    let promoted = 0;
    let demoted = 0;
    let exceeds = 0;
    let tried = 0;
    specs.forEach((spec, i) => {
      const s = readSchemeStats(damon, claims[i].index);
      tried += s.nrTried;
      if (spec.action === "migrate_hot") {
        promoted += s.szApplied;
        exceeds += s.qtExceeds;
      } else demoted += s.szApplied;
    });
    const fastBytes = fastBytesNow();
    const next = kernelSchemeParams({
      ...inputs,
      fastBytes,
      hotHeldBack: exceeds > exceedsBefore,
    });
    if (JSON.stringify(next) !== JSON.stringify(params)) {
      specs.forEach((spec, i) =>
        writeSchemeParams(damon, claims[i].index, spec.action, next, hotMin)
      );
      for (const c of claims) damon.write(`kdamonds/${c.index}/state`, "commit");
      params = next;
    }
    const figures: EngineFigures = {
      interval,
      engine: "kernel",
      fastBytes,
      budgetBytes: target.budgetBytes,
      hotBytes: 0,
      hotOnFastBytes: 0,
      promotedBytes: promoted - promotedBefore,
      demotedBytes: demoted - demotedBefore,
      totalPromotedBytes: promoted,
      totalDemotedBytes: demoted,
      regions: tried - triedBefore,
      cpuMs: Math.round((cpuMsNow() - cpu0) * 100) / 100,
      kernel: {
        mode: params.mode,
        hotQuotaBytes: params.hotQuotaBytes,
        coldMinAge: params.coldMinAge,
      },
    };
    promotedBefore = promoted;
    demotedBefore = demoted;
    exceedsBefore = exceeds;
    triedBefore = tried;
    return figures;
  };
  return { step, release };
}

function runSession(
  pid: number,
  target: TieringPlanTarget,
  intervalMs: number,
  engine: Engine,
): TieringSession {
  const started = performance.now();
  let last: TieringFigures | undefined;
  let interval = 0;
  let stopping = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const waiters: Array<(f: TieringFigures | undefined) => void> = [];
  let resolveDone!: (end: TieringEnd) => void;
  const done = new Promise<TieringEnd>((r) => (resolveDone = r));
  let ended: TieringEnd | undefined;

  const finish = (end: TieringEnd): void => {
    if (ended !== undefined) return;
    ended = end;
    if (timer !== undefined) clearTimeout(timer);
    try {
      engine.release();
    } catch (error) {
      if (end.reason !== "error") {
        ended = { reason: "error", error: error as Error, last };
      }
    }
    for (const w of waiters.splice(0)) w(undefined);
    resolveDone(ended);
  };

  const tick = (): void => {
    timer = undefined;
    if (stopping || ended !== undefined) return;
    if (!alive(pid)) return finish({ reason: "exited", last });
    try {
      const { interval: n, ...rest } = engine.step(interval + 1);
      // Measured when the interval's work is done, as before the engines were split.
      last = { interval: n, elapsedMs: Math.round(performance.now() - started), ...rest };
      interval++;
      for (const w of waiters.splice(0)) w(last);
    } catch (error) {
      if (!alive(pid)) return finish({ reason: "exited", last });
      return finish({ reason: "error", error: error as Error, last });
    }
    timer = setTimeout(tick, intervalMs);
  };
  timer = setTimeout(tick, intervalMs);

  const session: TieringSession = {
    pid,
    target,
    stats: () => last,
    done,
    stop: (): Promise<TieringEnd> => {
      stopping = true;
      finish({ reason: "stopped", last });
      return done;
    },
    [Symbol.asyncIterator](): AsyncIterator<TieringFigures> {
      return {
        next: (): Promise<IteratorResult<TieringFigures>> => {
          if (ended !== undefined) return Promise.resolve({ done: true, value: undefined });
          return new Promise((resolve) =>
            waiters.push((f) =>
              resolve(
                f === undefined ? { done: true, value: undefined } : { done: false, value: f },
              )
            )
          );
        },
        return: (): Promise<IteratorResult<TieringFigures>> =>
          Promise.resolve({ done: true, value: undefined }),
      };
    },
    [Symbol.asyncDispose]: async (): Promise<void> => {
      await session.stop();
    },
  };
  return session;
}
