/**
 * The one table of the placement-policy modes' names: the project's name (`HMALLOC_POLICY`,
 * ARCHITECTURE.md), Linux's `MPOL_*` number, hmctl's option, the `PoolPolicy` option key
 * and the word the kernel writes in `/proc/PID/numa_maps`. `cli/hmctl_options.ts`, `pool.ts` and
 * `numa_maps.ts` derive their names from it; `tests/unit/policy_names_test.ts` and
 * `zig-src/src/placement/policy_names_test.zig` hold it and Zig's `policy.Mode` to the same test
 * table (`zig-src/src/testdata/policy_names.json`).
 *
 * @module
 */

/** The name of a policy mode, as in `HMALLOC_POLICY` (`weighted-interleave:0,2`). */
export type PolicyModeName =
  | "default"
  | "bind"
  | "preferred"
  | "preferred-many"
  | "interleave"
  | "weighted-interleave";

/** The `PoolPolicy` keys, one per mode but the default (`{}`). */
export type PoolPolicyKey = "bind" | "preferred" | "preferredMany" | "interleave" | "weighted";

/** Every spelling of one mode. */
export interface PolicyModeNames {
  /** The project's name. */
  readonly name: PolicyModeName;
  /** Linux's `MPOL_*` number (`HMALLOC_MPOL_MODE`). */
  readonly mpol: number;
  /** hmctl's short option letter (`m` for `-m`), `null` for none. */
  readonly hmctlShort: string | null;
  /** hmctl's long option (`membind` for `--membind`), `null` for none. */
  readonly hmctlLong: string | null;
  /** The `PoolPolicy` key, `null` for the default (`{}`). */
  readonly poolKey: PoolPolicyKey | null;
  /** The word before `:`/`=` in `/proc/PID/numa_maps` (the kernel's `policy_modes[]`). */
  readonly numaMapsWord: string;
}

/**
 * Every mode, in hmctl's option order.
 *
 * @example
 * ```ts
 * import { POLICY_MODES } from "./policy_names.ts";
 * const weighted = POLICY_MODES.find((m) => m.name === "weighted-interleave");
 * console.log(weighted?.mpol, weighted?.numaMapsWord); // 6 "weighted interleave"
 * ```
 */
export const POLICY_MODES: readonly PolicyModeNames[] = [
  {
    name: "default",
    mpol: 0,
    hmctlShort: null,
    hmctlLong: null,
    poolKey: null,
    numaMapsWord: "default",
  },
  {
    name: "bind",
    mpol: 2,
    hmctlShort: "m",
    hmctlLong: "membind",
    poolKey: "bind",
    numaMapsWord: "bind",
  },
  {
    name: "preferred",
    mpol: 1,
    hmctlShort: "p",
    hmctlLong: "preferred",
    poolKey: "preferred",
    numaMapsWord: "prefer",
  },
  {
    name: "preferred-many",
    mpol: 5,
    hmctlShort: "P",
    hmctlLong: "preferred-many",
    poolKey: "preferredMany",
    numaMapsWord: "prefer (many)",
  },
  {
    name: "interleave",
    mpol: 3,
    hmctlShort: "i",
    hmctlLong: "interleave",
    poolKey: "interleave",
    numaMapsWord: "interleave",
  },
  {
    name: "weighted-interleave",
    mpol: 6,
    hmctlShort: "w",
    hmctlLong: "weighted-interleave",
    poolKey: "weighted",
    numaMapsWord: "weighted interleave",
  },
];
