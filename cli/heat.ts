/**
 * `cli.ts usage PID --heat`: the process's memory as DAMON sees it — one cell per DAMON region,
 * shaded (and, on a terminal, coloured) by access frequency, with the node holding most of its
 * pages underneath — followed by one line per region.
 *
 * It watches for `durationMs` (default 2 s) with a kdamond of its own (claimed and released as
 * `tier` does: never someone else's), then samples up to {@link NODE_SAMPLES} pages of each
 * region with move_pages(2) to find its node.
 *
 * @module
 */

import {
  claimKdamond,
  configureVaddrStat,
  DamonBusyError,
  type DamonFs,
  type DamonRegion,
  DEFAULT_MONITORING,
  readTriedRegions,
  releaseKdamond,
  startKdamond,
  sysfsDamonFs,
} from "../lib/damon.ts";
import { sym } from "../lib/registry.ts";
import { checkAccess, TieringError } from "../lib/tiering.ts";

/** Pages sampled per region to find its node. */
export const NODE_SAMPLES = 64;

/** One region of the heat view. */
export interface HeatRegion extends DamonRegion {
  /** The node holding most of the sampled present pages, or -1 when none is present. */
  node: number;
}

/** Options of {@link sampleHeat}. */
export interface HeatOptions {
  /** How long to watch, ms (default 2000). */
  durationMs?: number;
  /** DAMON's sysfs (default: the real one). */
  damon?: DamonFs;
  /** Reuse a free kdamond when kdamonds exist. */
  useFreeKdamond?: boolean;
}

function majorityNode(pid: number, region: DamonRegion): number {
  const page = 4096;
  const pages = Math.max(1, Math.floor((region.end - region.start) / page));
  const step = Math.max(1, Math.floor(pages / NODE_SAMPLES));
  const addrs = new BigUint64Array(Math.min(pages, NODE_SAMPLES));
  for (let i = 0; i < addrs.length; i++) {
    addrs[i] = BigInt(Math.floor(region.start / page) * page + i * step * page);
  }
  const status = new Int32Array(addrs.length);
  if (sym().hm_move_pages(pid, BigInt(addrs.length), addrs, null, status, 0) < 0n) return -1;
  const counts = new Map<number, number>();
  for (const s of status) if (s >= 0) counts.set(s, (counts.get(s) ?? 0) + 1);
  let best = -1;
  for (const [node, n] of counts) if (best < 0 || n > (counts.get(best) ?? 0)) best = node;
  return best;
}

/**
 * Watches process `pid` with DAMON for a while and returns its regions with their nodes.
 *
 * @throws {DamonBusyError} when kdamonds exist and none may be used.
 *
 * @example
 * ```ts ignore
 * import { sampleHeat } from "./heat.ts";
 * for (const r of await sampleHeat(1234)) console.log(r.nrAccesses, r.node);
 * ```
 */
export async function sampleHeat(pid: number, options: HeatOptions = {}): Promise<HeatRegion[]> {
  const damon = options.damon ?? sysfsDamonFs();
  const claim = claimKdamond(damon, { useFree: options.useFreeKdamond });
  try {
    configureVaddrStat(damon, claim.index, pid);
    startKdamond(damon, claim.index);
    await new Promise((r) => setTimeout(r, options.durationMs ?? 2000));
    const regions = readTriedRegions(damon, claim.index);
    return regions.map((r) => ({ ...r, node: majorityNode(pid, r) }));
  } finally {
    releaseKdamond(damon, claim);
  }
}

const SHADES = ["·", "░", "▒", "▓", "█"];
const COLOURS = [90, 34, 32, 33, 31]; // grey, blue, green, yellow, red

/** Heat level 0..4 of `nrAccesses` out of `max` samples per aggregation. */
export function heatLevel(nrAccesses: number, max: number): number {
  if (nrAccesses <= 0) return 0;
  return Math.min(4, 1 + Math.floor((3 * nrAccesses) / Math.max(1, max)));
}

/**
 * The heat view's text: the strip (heat, then node per region) and one line per region.
 *
 * @example
 * ```ts
 * import { heatText } from "./heat.ts";
 * const text = heatText([
 *   { start: 0x1000, end: 0x401000, nrAccesses: 20, age: 3, node: 0 },
 *   { start: 0x401000, end: 0x4401000, nrAccesses: 0, age: 90, node: 2 },
 * ], { color: false });
 * console.log(text.split("\n")[1]); // "heat  █·"
 * ```
 */
export function heatText(
  regions: readonly HeatRegion[],
  options: { color: boolean; maxAccesses?: number },
): string {
  const max = options.maxAccesses ?? DEFAULT_MONITORING.aggrUs / DEFAULT_MONITORING.sampleUs;
  const cell = (r: HeatRegion): string => {
    const level = heatLevel(r.nrAccesses, max);
    return options.color ? `\x1b[${COLOURS[level]}m${SHADES[level]}\x1b[0m` : SHADES[level];
  };
  const nodeChar = (r: HeatRegion): string => r.node < 0 ? "-" : r.node < 10 ? String(r.node) : "+";
  const lines = [
    `${regions.length} DAMON regions, hottest ${SHADES[4]} (${max} of ${max} samples) to cold ${
      SHADES[0]
    }`,
    `heat  ${regions.map(cell).join("")}`,
    `node  ${regions.map(nodeChar).join("")}`,
    "",
    "start            end              MiB        accesses  age  node",
  ];
  for (const r of regions) {
    lines.push(
      `${r.start.toString(16).padStart(16, "0")} ${r.end.toString(16).padStart(16, "0")} ${
        ((r.end - r.start) / 2 ** 20).toFixed(1).padStart(10)
      } ${String(r.nrAccesses).padStart(9)} ${String(r.age).padStart(4)}  ${
        r.node < 0 ? "-" : r.node
      }`,
    );
  }
  return lines.join("\n") + "\n";
}

/**
 * The `--heat` branch of `usage PID`: checks root and DAMON sysfs (exit 2 with one line naming
 * the problem), watches, prints. Returns the exit status.
 *
 * @example
 * ```ts ignore
 * import { runHeatView } from "./heat.ts";
 * await runHeatView(1234, { out: console.log, err: console.error, color: false });
 * ```
 */
export async function runHeatView(
  pid: number,
  io: { out: (text: string) => void; err: (text: string) => void; color: boolean },
  options: HeatOptions = {},
): Promise<number> {
  const damon = options.damon ?? sysfsDamonFs();
  try {
    checkAccess({ uid: Deno.uid(), damonPresent: damon.exists("kdamonds/nr_kdamonds") });
    io.out(heatText(await sampleHeat(pid, { ...options, damon }), { color: io.color }));
    return 0;
  } catch (error) {
    if (error instanceof TieringError || error instanceof DamonBusyError) {
      io.err(`usage: --heat: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
}
