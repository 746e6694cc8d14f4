/**
 * The memory cgroup of the kernel tiering engine: DAMOS's `memcg` filter is the only way to keep
 * physical-address schemes (`migrate_hot` / `migrate_cold`) to one program's pages, so tiermem
 * makes a cgroup v2 group `tiermem-OWNERPID` directly under the mounted cgroup2 hierarchy, starts
 * the program in it, reads its `memory.numa_stat` for the budget, and removes it at the end.
 *
 * - The group sits under the hierarchy's root, whose `cgroup.subtree_control` gets `+memory` when
 *   it lacks it (the root may enable controllers while it holds processes; a non-root parent may
 *   not). tiermem leaves that setting as it found it only when it did not change it: turning the
 *   controller off again would fail or disturb other groups created since.
 * - A process's memory stays charged to the group that allocated it (cgroup v2 never moves
 *   charges), so only a program *started* in the group is seen whole: a running `--pid` is not.
 * - Removal moves any process still inside back to its home group, then removes the directory
 *   (an empty group with charged pages left goes away too: the kernel keeps the memcg until they
 *   are freed).
 *
 * All access goes through {@link CgroupFs}, so it is tested on a fake tree.
 *
 * @module
 */

/** The file operations the cgroup code needs (absolute paths). */
export interface CgroupFs {
  /** Reads a file's text. */
  read(path: string): string;
  /** Writes a value. */
  write(path: string, value: string): void;
  /** Whether the path exists. */
  exists(path: string): boolean;
  /** Creates a directory (a cgroup). */
  mkdir(path: string): void;
  /** Removes an (empty) cgroup directory. */
  rmdir(path: string): void;
}

/** The real file system. */
export const realCgroupFs: CgroupFs = {
  read: (path: string): string => Deno.readTextFileSync(path),
  write: (path: string, value: string): void => Deno.writeTextFileSync(path, value),
  exists: (path: string): boolean => {
    try {
      Deno.statSync(path);
      return true;
    } catch {
      return false;
    }
  },
  mkdir: (path: string): void => Deno.mkdirSync(path),
  rmdir: (path: string): void => Deno.removeSync(path),
};

/**
 * The mount point of the first cgroup2 hierarchy in `/proc/mounts` text, or undefined.
 *
 * @example
 * ```ts
 * import { cgroup2Mount } from "./tiering_cgroup.ts";
 * cgroup2Mount("cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n"); // "/sys/fs/cgroup"
 * ```
 */
export function cgroup2Mount(mounts: string): string | undefined {
  const f = mounts.split("\n").map((l) => l.split(" ")).find((x) => x[2] === "cgroup2");
  return f?.[1];
}

function mountedCgroup2(): string {
  const mount = cgroup2Mount(Deno.readTextFileSync("/proc/mounts"));
  if (mount === undefined) throw new Error("no cgroup v2 hierarchy is mounted");
  return mount;
}

/** A memory cgroup tiermem made for one program. */
export interface ProgramCgroup {
  /** The cgroup2 mount point, e.g. `/sys/fs/cgroup`. */
  mount: string;
  /** Its path below the mount, as DAMOS's `memcg_path` wants it, e.g. `/tiermem-1234`. */
  path: string;
  /** Where processes still inside go back to when it is removed (below the mount; `/` = root). */
  home: string;
}

/** The directory of a cgroup path below the mount. */
export function cgroupDir(mount: string, path: string): string {
  return path === "/" ? mount : `${mount}${path}`;
}

/**
 * The cgroup of process `pid` (`/proc/PID/cgroup`'s `0::PATH` line), `/` when unknown.
 *
 * @example
 * ```ts
 * import { cgroupOf } from "./tiering_cgroup.ts";
 * cgroupOf("self"); // e.g. "/user.slice/user-1000.slice/session-2.scope"
 * ```
 */
export function cgroupOf(pid: number | "self", fs: CgroupFs = realCgroupFs): string {
  try {
    const m = /^0::(\S+)$/m.exec(fs.read(`/proc/${pid}/cgroup`));
    return m === null ? "/" : m[1];
  } catch {
    return "/";
  }
}

/**
 * Creates `tiermem-OWNER` under the root of the cgroup2 hierarchy at `mount` (default: the mounted
 * one), enabling the memory controller for the root's children first when it is off. For the
 * kernel engine from Deno: create it, {@link moveToCgroup} your own process into it, spawn the
 * program, move yourself back to {@link ProgramCgroup.home}, and pass it to `startTiering`.
 *
 * @throws {Error} when the memory controller is not available or the group cannot be made.
 *
 * @example
 * ```ts ignore
 * import { createProgramCgroup } from "./tiering_cgroup.ts";
 * import { createProgramCgroup, moveToCgroup } from "./tiering_cgroup.ts";
 * import { startTiering } from "./tiering.ts";
 * const cg = createProgramCgroup(undefined, Deno.pid, undefined, "/"); // { path: "/tiermem-4321", ... }
 * moveToCgroup(cg.mount, cg.path, Deno.pid);
 * const child = new Deno.Command("./prog").spawn(); // born inside
 * moveToCgroup(cg.mount, cg.home, Deno.pid);
 * const session = startTiering({ pid: child.pid, fast: [0], slow: [2], engine: "kernel", cgroup: cg });
 * ```
 */
export function createProgramCgroup(
  mount: string = mountedCgroup2(),
  owner: number = Deno.pid,
  fs: CgroupFs = realCgroupFs,
  home: string = "/",
): ProgramCgroup {
  const controllers = fs.read(`${mount}/cgroup.controllers`).split(/\s+/);
  if (!controllers.includes("memory")) {
    throw new Error(`the cgroup2 hierarchy at ${mount} has no memory controller`);
  }
  const subtree = fs.read(`${mount}/cgroup.subtree_control`).split(/\s+/);
  if (!subtree.includes("memory")) fs.write(`${mount}/cgroup.subtree_control`, "+memory");
  const path = `/tiermem-${owner}`;
  fs.mkdir(cgroupDir(mount, path));
  return { mount, path, home };
}

/**
 * Moves process `pid` (all its threads) into the cgroup at `path` below `mount`.
 *
 * @example
 * ```ts ignore
 * moveToCgroup(cg.mount, cg.path, 1234);
 * ```
 */
export function moveToCgroup(
  mount: string,
  path: string,
  pid: number,
  fs: CgroupFs = realCgroupFs,
): void {
  fs.write(`${cgroupDir(mount, path)}/cgroup.procs`, String(pid));
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Removes the program's cgroup: moves processes still inside to its home group, then removes the
 * directory (retried briefly: a process that just exited leaves the group a moment later). Safe
 * to call twice.
 *
 * @throws {Error} when the group cannot be removed.
 *
 * @example
 * ```ts ignore
 * removeProgramCgroup(cg);
 * ```
 */
export function removeProgramCgroup(cg: ProgramCgroup, fs: CgroupFs = realCgroupFs): void {
  const dir = cgroupDir(cg.mount, cg.path);
  if (!fs.exists(dir)) return;
  const homeDir = fs.exists(cgroupDir(cg.mount, cg.home)) ? cg.home : "/";
  for (let attempt = 0;; attempt++) {
    let procs: string[] = [];
    try {
      procs = fs.read(`${dir}/cgroup.procs`).split("\n").filter((l) => /^\d+$/.test(l));
    } catch {
      // Gone meanwhile.
    }
    for (const pid of procs) {
      try {
        moveToCgroup(cg.mount, homeDir, Number(pid), fs);
      } catch {
        // Exited meanwhile.
      }
    }
    try {
      fs.rmdir(dir);
      return;
    } catch (error) {
      if (!fs.exists(dir)) return;
      if (attempt >= 20) {
        throw new Error(`cannot remove cgroup ${dir}: ${(error as Error).message}`);
      }
      sleepMs(50);
    }
  }
}

/**
 * Bytes per node of a `memory.numa_stat` text: `anon` + `file` (every user page charged to the
 * group: anonymous, page cache, shmem).
 *
 * @example
 * ```ts
 * import { numaStatBytes } from "./tiering_cgroup.ts";
 * numaStatBytes("anon N0=4096 N2=8192\nfile N0=4096 N2=0\nshmem N0=0 N2=0\n");
 * // [ 8192, 0, 8192 ]  (index = node)
 * ```
 */
export function numaStatBytes(text: string): number[] {
  const out: number[] = [];
  for (const line of text.split("\n")) {
    const [key, ...fields] = line.trim().split(/\s+/);
    if (key !== "anon" && key !== "file") continue;
    for (const f of fields) {
      const m = /^N(\d+)=(\d+)$/.exec(f);
      if (m === null) continue;
      const n = Number(m[1]);
      for (let i = out.length; i <= n; i++) out.push(0);
      out[n] += Number(m[2]);
    }
  }
  return out;
}

/**
 * The program group's bytes per node ({@link numaStatBytes} of its `memory.numa_stat`).
 *
 * @example
 * ```ts ignore
 * const perNode = programNodeBytes(cg); // [ 70123520, 0, 467664896, 0 ]
 * ```
 */
export function programNodeBytes(cg: ProgramCgroup, fs: CgroupFs = realCgroupFs): number[] {
  return numaStatBytes(fs.read(`${cgroupDir(cg.mount, cg.path)}/memory.numa_stat`));
}
