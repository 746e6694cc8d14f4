/**
 * Choosing the tiering engine: `user` (DAMON vaddr monitoring + tiermem's own move_pages, works on
 * any kernel with DAMON sysfs) or `kernel` (DAMOS `migrate_hot`/`migrate_cold` with `target_nid`,
 * Linux 6.11+, scoped to the program by a memory cgroup). `auto` takes the kernel engine when it
 * can run and the user engine otherwise, and says why.
 *
 * The kernel engine needs, besides 6.11+, a mounted cgroup v2 hierarchy with the memory
 * controller: DAMOS's `memcg` filter is the only way to limit physical-address schemes to one
 * program. tiermem does not mount cgroup2 on a user's machine behind their back. The memcg-scoped
 * schemes themselves are not built yet (see docs/tiering.md, "Limits"), so today `kernel` always
 * reports why it is unavailable and `auto` picks `user`.
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
}

/** Reads {@link KernelEngineFacts} from this machine. */
export function readKernelEngineFacts(): KernelEngineFacts {
  const mounts = (() => {
    try {
      return Deno.readTextFileSync("/proc/mounts");
    } catch {
      return "";
    }
  })();
  const cg = mounts.split("\n").map((l) => l.split(" ")).find((f) => f[2] === "cgroup2");
  let controllers: string | undefined;
  if (cg !== undefined) {
    try {
      controllers = Deno.readTextFileSync(`${cg[1]}/cgroup.controllers`);
    } catch {
      controllers = undefined;
    }
  }
  return { release: Deno.osRelease(), mounts, controllers };
}

/**
 * Why the kernel engine cannot run here (always a reason today: see the module doc).
 *
 * @example
 * ```ts
 * import { kernelEngineUnavailable } from "./tiering_engine.ts";
 * kernelEngineUnavailable({ release: "6.1.0", mounts: "" });
 * // "Linux 6.1.0 has no DAMOS migrate_hot/migrate_cold (6.11+)"
 * ```
 */
export function kernelEngineUnavailable(facts: KernelEngineFacts): string {
  const m = /^(\d+)\.(\d+)/.exec(facts.release);
  const version = m === null ? 0 : Number(m[1]) * 1000 + Number(m[2]);
  if (version < 6011) return `Linux ${facts.release} has no DAMOS migrate_hot/migrate_cold (6.11+)`;
  const hasCgroup2 = facts.mounts.split("\n").some((l) => l.split(" ")[2] === "cgroup2");
  if (!hasCgroup2) {
    return "no cgroup v2 hierarchy is mounted, so DAMOS cannot be scoped to the program";
  }
  if (!(facts.controllers ?? "").split(/\s+/).includes("memory")) {
    return "the cgroup v2 hierarchy has no memory controller, so DAMOS cannot be scoped to the program";
  }
  return "its memcg-scoped DAMOS schemes are not built in this version of tiermem";
}

/** The engine that will run, and the note to show. */
export interface EngineDecision {
  /** Always `user` today. */
  engine: "user";
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
): EngineDecision {
  if (choice === "user") return { engine: "user", note: "engine user (asked for)" };
  const why = kernelEngineUnavailable(facts);
  if (choice === "kernel") throw new TypeError(`the kernel engine cannot run: ${why}`);
  return { engine: "user", note: `engine user (kernel engine unavailable: ${why})` };
}
