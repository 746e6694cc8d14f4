/**
 * Choosing the tiering engine: `user` (DAMON vaddr monitoring + tiermem's own move_pages, works on
 * any kernel with DAMON sysfs) or `kernel` (DAMOS `migrate_hot`/`migrate_cold` with `target_nid`,
 * Linux 6.11+, scoped to the program by a memory cgroup). `auto` takes the kernel engine when it
 * can run and the user engine otherwise, and says why.
 *
 * The kernel engine needs, besides 6.11+, DAMON's `paddr` operations and a mounted cgroup v2
 * hierarchy with the memory controller: DAMOS's `memcg` filter is the only way to limit
 * physical-address schemes to one program. tiermem does not mount cgroup2 on a user's machine
 * behind their back. It cannot tier a running process (`--pid`): cgroup v2 never moves a process's
 * existing memory charges, so the filter would not see the pages it already has.
 *
 * @module
 */

/** Which engine the user asked for (`tiermem tier --engine`). */
export type EngineChoice = "user" | "kernel" | "auto";

/** What the machine offers the kernel engine. */
export interface KernelEngineFacts {
  /** `uname -r`, e.g. `6.12.95+deb12-amd64`. */
  release: string;
  /** `/proc/mounts` text. */
  mounts: string;
  /** `cgroup.controllers` of the cgroup2 mount, or undefined. */
  controllers?: string;
  /** Whether the kernel has DAMON's paddr operations (`CONFIG_DAMON_PADDR`); undefined: unknown. */
  paddr?: boolean;
}

/** Reads {@link KernelEngineFacts} from this machine. */
export function readKernelEngineFacts(): KernelEngineFacts {
  const read = (path: string): string | undefined => {
    try {
      return Deno.readTextFileSync(path);
    } catch {
      return undefined;
    }
  };
  const mounts = read("/proc/mounts") ?? "";
  const cg = mounts.split("\n").map((l) => l.split(" ")).find((f) => f[2] === "cgroup2");
  const controllers = cg === undefined ? undefined : read(`${cg[1]}/cgroup.controllers`);
  const release = Deno.osRelease();
  const config = read(`/boot/config-${release}`);
  const paddr = config === undefined ? undefined : /^CONFIG_DAMON_PADDR=y/m.test(config);
  return { release, mounts, controllers, paddr };
}

/**
 * Why the kernel engine cannot run here, or undefined when it can.
 *
 * @example
 * ```ts
 * import { kernelEngineUnavailable } from "./tiering_engine.ts";
 * kernelEngineUnavailable({ release: "6.1.0", mounts: "" });
 * // "Linux 6.1.0 has no DAMOS migrate_hot/migrate_cold (6.11+)"
 * ```
 */
export function kernelEngineUnavailable(facts: KernelEngineFacts): string | undefined {
  const m = /^(\d+)\.(\d+)/.exec(facts.release);
  const version = m === null ? 0 : Number(m[1]) * 1000 + Number(m[2]);
  if (version < 6011) return `Linux ${facts.release} has no DAMOS migrate_hot/migrate_cold (6.11+)`;
  if (facts.paddr === false) {
    return `Linux ${facts.release} is built without DAMON's paddr operations (CONFIG_DAMON_PADDR)`;
  }
  const hasCgroup2 = facts.mounts.split("\n").some((l) => l.split(" ")[2] === "cgroup2");
  if (!hasCgroup2) {
    return "no cgroup v2 hierarchy is mounted, so DAMOS cannot be scoped to the program";
  }
  if (!(facts.controllers ?? "").split(/\s+/).includes("memory")) {
    return "the cgroup v2 hierarchy has no memory controller, so DAMOS cannot be scoped to the program";
  }
  return undefined;
}

/** Why the kernel engine cannot tier an already running process. */
export const KERNEL_PID_REASON =
  "--pid: a running process's memory stays charged to its own cgroup (cgroup v2 never moves charges), so DAMOS's memcg filter would not see it; start the program under tier instead";

/** The engine that will run, and the note to show. */
export interface EngineDecision {
  /** The engine. */
  engine: "user" | "kernel";
  /** One line saying which engine and why. */
  note: string;
}

/**
 * Resolves `--engine`.
 *
 * @throws {TypeError} for `kernel` when it cannot run, with the reason.
 *
 * @example
 * ```ts
 * import { chooseEngine } from "./tiering_engine.ts";
 * chooseEngine("auto", { release: "6.12.0", mounts: "" }).engine; // "user"
 * ```
 */
export function chooseEngine(
  choice: EngineChoice,
  facts: KernelEngineFacts = readKernelEngineFacts(),
  attach: boolean = false,
): EngineDecision {
  if (choice === "user") {
    return { engine: "user", note: "engine user (DAMON vaddr monitoring, move_pages by tiermem)" };
  }
  const why = kernelEngineUnavailable(facts) ?? (attach ? KERNEL_PID_REASON : undefined);
  if (why === undefined) {
    return {
      engine: "kernel",
      note: choice === "kernel"
        ? "engine kernel (asked for: DAMOS migrate_hot/migrate_cold in a memory cgroup)"
        : `engine kernel (Linux ${facts.release}: DAMOS migrate_hot/migrate_cold, cgroup v2 memory controller)`,
    };
  }
  if (choice === "kernel") throw new TypeError(`the kernel engine cannot run: ${why}`);
  return { engine: "user", note: `engine user (kernel engine unavailable: ${why})` };
}
