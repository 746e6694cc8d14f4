/**
 * `cli.ts tier`: run a program (or attach to a PID) and keep its memory tiered until it exits
 * (or, with `--pid`, until SIGINT/SIGTERM/SIGHUP), then remove everything the session created.
 *
 * Order of work, so that a refused request starts nothing: parse the options
 * ({@link parseTierArgs}), choose the engine, check root and DAMON sysfs, resolve the nodes,
 * check the budget and that the kdamonds can be claimed — and only then start the program and the
 * session. Every refusal is one line `tier: PROBLEM` on stderr and exit status 2.
 *
 * With the kernel engine, tier makes the program's memory cgroup (`tiermem-PID` under the cgroup2
 * root), steps into it itself for the moment of the spawn so that the program is born inside (and
 * every page it allocates is charged there), steps back out, and the session removes the group at
 * the end.
 *
 * Figures go to stderr, so the program keeps stdout: on a terminal one status line updated in
 * place; with `--json` one JSON line per interval ({@link TieringFigures}).
 *
 * Signals: SIGINT, SIGTERM and SIGHUP are forwarded to the program (which then exits, and the
 * session ends with it); with `--pid` they stop the session. `tier --cleanup` releases what a
 * session killed with SIGKILL left behind.
 *
 * @module
 */

import { constants } from "node:os";
import { DamonBusyError, kdamondCount, kdamondIsFree, sysfsDamonFs } from "../lib/damon.ts";
import { parseNodeList, readNodeTopology } from "../lib/node_list.ts";
import { parseTierArgs, TIER_USAGE, type TierRequest } from "./tier_options.ts";
import {
  checkAccess,
  checkTiering,
  formatBytes,
  startTiering,
  TieringError,
  type TieringFigures,
  type TieringSession,
} from "../lib/tiering.ts";
import { chooseEngine } from "../lib/tiering_engine.ts";
import {
  cgroup2Mount,
  cgroupOf,
  createProgramCgroup,
  moveToCgroup,
  type ProgramCgroup,
  removeProgramCgroup,
} from "../lib/tiering_cgroup.ts";
import { cleanupLeftovers } from "../lib/tiering_state.ts";
import { lowerTierNodes, readTopology, type Topology, topTierNodes } from "../lib/topology.ts";
import { parseKernelNodeList } from "../lib/node_list.ts";

/** Exit status of refused requests. */
export const EXIT_REFUSED = 2;

/** Where `tier` writes (defaults: the real stderr). */
export interface TierIo {
  /** Writes to stderr. */
  err(text: string): void;
  /** Whether stderr is a terminal. */
  isTerminal: boolean;
}

const encoder = new TextEncoder();
const realIo: TierIo = {
  err: (text: string): void => {
    const bytes = encoder.encode(text);
    for (let done = 0; done < bytes.length;) done += Deno.stderr.writeSync(bytes.subarray(done));
  },
  isTerminal: Deno.stderr.isTerminal(),
};

function stateDir(): string {
  return Deno.env.get("TIERMEM_STATE_DIR") ?? "/run/tiermem";
}

function cpusAllowed(pid: number | "self"): number[] {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const m = /^Cpus_allowed_list:\s*(\S+)/m.exec(status);
    return m === null ? [] : parseKernelNodeList(m[1]);
  } catch {
    return [];
  }
}

/**
 * The default fast nodes: the top tier's nodes that hold CPUs the program may run on (all of the
 * top tier when none does).
 *
 * @example
 * ```ts
 * import { defaultFastNodes } from "./tier_run.ts";
 * import { readTopology } from "../lib/topology.ts";
 * console.log(defaultFastNodes(readTopology(), [0])); // e.g. [0]
 * ```
 */
export function defaultFastNodes(topology: Topology, cpus: readonly number[]): number[] {
  const top = topTierNodes(topology);
  const near = top.filter((id) =>
    topology.nodes.find((n) => n.id === id)?.cpus.some((c) => cpus.includes(c))
  );
  return near.length > 0 ? near : top;
}

/**
 * The default slow nodes: every memory node below the top tier.
 *
 * @example
 * ```ts
 * import { defaultSlowNodes } from "./tier_run.ts";
 * import { readTopology } from "../lib/topology.ts";
 * console.log(defaultSlowNodes(readTopology())); // [] on a one-tier machine
 * ```
 */
export function defaultSlowNodes(topology: Topology): number[] {
  if (topology.tiers.length < 2) return lowerTierNodes(topology);
  return topology.tiers.slice(1).flatMap((t) => t.nodes).sort((a, b) => a - b);
}

function statusLine(f: TieringFigures): string {
  const mib = (b: number): string => (b / (1 << 20)).toFixed(1);
  const hotPct = f.hotBytes > 0 ? Math.round((100 * f.hotOnFastBytes) / f.hotBytes) : 0;
  if (f.kernel !== undefined) {
    return `tier kernel: fast ${mib(f.fastBytes)}/${
      mib(f.budgetBytes)
    } MiB (${f.kernel.mode}), promoted ${mib(f.totalPromotedBytes)} MiB, demoted ${
      mib(f.totalDemotedBytes)
    } MiB`;
  }
  return `tier ${f.engine}: fast ${mib(f.fastBytes)}/${mib(f.budgetBytes)} MiB, hot ${
    mib(f.hotBytes)
  } MiB (${hotPct}% on fast), promoted ${mib(f.totalPromotedBytes)} MiB, demoted ${
    mib(f.totalDemotedBytes)
  } MiB`;
}

async function report(session: TieringSession, json: boolean, io: TierIo): Promise<void> {
  let shown = false;
  for await (const f of session) {
    if (json) io.err(JSON.stringify(f) + "\n");
    else if (io.isTerminal) {
      io.err(`\r\x1b[K${statusLine(f)}`);
      shown = true;
    }
  }
  if (shown) io.err("\n");
}

const SIGNALS: readonly Deno.Signal[] = ["SIGINT", "SIGTERM", "SIGHUP"];

/**
 * The `tier` subcommand: arguments after `tier` in, exit status out.
 *
 * @example
 * ```ts ignore
 * import { runTier } from "./tier_run.ts";
 * const status = await runTier(["--fast", "0", "--slow", "2", "--fast-max", "128M", "./prog"]);
 * ```
 */
export async function runTier(args: string[], io: TierIo = realIo): Promise<number> {
  const refuse = (message: string): number => {
    io.err(`tier: ${message}\n`);
    return EXIT_REFUSED;
  };
  let request: TierRequest;
  try {
    request = parseTierArgs(args);
  } catch (error) {
    if (error instanceof TypeError) return refuse(error.message);
    throw error;
  }
  if (request.kind === "help") {
    io.err(TIER_USAGE);
    return 0;
  }
  const damon = sysfsDamonFs();
  const damonPresent = damon.exists("kdamonds/nr_kdamonds");
  try {
    checkAccess({ uid: Deno.uid(), damonPresent });
  } catch (error) {
    if (error instanceof TieringError) return refuse(error.message);
    throw error;
  }
  if (request.kind === "cleanup") {
    const { released, live } = cleanupLeftovers(damon, stateDir());
    for (const r of released) {
      const what = r.claims !== undefined
        ? `kdamonds ${r.claims.map((c) => c.index).join(",")}`
        : `kdamond ${r.claim?.index}`;
      const cg = r.cgroup !== undefined ? ` and cgroup ${r.cgroup.path}` : "";
      io.err(`tier: released ${what}${cg} of tier process ${r.owner} (target ${r.target})\n`);
    }
    for (const r of live) io.err(`tier: process ${r.owner} still runs; its kdamond left alone\n`);
    if (released.length === 0 && live.length === 0) io.err("tier: nothing to clean up\n");
    return 0;
  }
  let note: string;
  let engine: "user" | "kernel";
  try {
    ({ note, engine } = chooseEngine(request.engine, undefined, request.pid !== undefined));
  } catch (error) {
    if (error instanceof TypeError) return refuse(error.message);
    throw error;
  }
  const topology = readTopology();
  const nodeTopology = readNodeTopology();
  let fast: number[];
  let slow: number[];
  try {
    fast = request.fast === undefined
      ? defaultFastNodes(topology, cpusAllowed(request.pid ?? "self"))
      : parseNodeList(request.fast, nodeTopology);
    slow = request.slow === undefined
      ? defaultSlowNodes(topology)
      : parseNodeList(request.slow, nodeTopology);
  } catch (error) {
    if (error instanceof TypeError || error instanceof RangeError) {
      const which = error.message.includes(`"${request.fast}"`) ? "--fast" : "--slow";
      return refuse(`${which}: ${error.message}`);
    }
    throw error;
  }
  try {
    checkTiering({ fast, slow, fastMax: request.fastMax }, {
      uid: Deno.uid(),
      damonPresent,
      topology,
    });
    // The user engine takes one kdamond, the kernel engine one per node.
    const need = engine === "kernel" ? fast.length + slow.length : 1;
    const count = kdamondCount(damon);
    if (count > 0) {
      let free = 0;
      for (let i = 0; i < count && request.useFreeKdamond; i++) {
        if (kdamondIsFree(damon, i)) free++;
      }
      if (free < need) {
        throw new TieringError(new DamonBusyError(count, request.useFreeKdamond).message);
      }
    }
  } catch (error) {
    if (error instanceof TieringError) return refuse(error.message);
    throw error;
  }
  if (request.pid !== undefined) {
    try {
      Deno.statSync(`/proc/${request.pid}`);
    } catch {
      return refuse(`no process ${request.pid}`);
    }
  }

  let child: Deno.ChildProcess | undefined;
  let cgroup: ProgramCgroup | undefined;
  if (engine === "kernel") {
    // Born inside: tier steps into the group for the spawn, then back to where it was.
    try {
      const mount = cgroup2Mount(Deno.readTextFileSync("/proc/mounts"));
      if (mount === undefined) throw new Error("no cgroup v2 hierarchy is mounted");
      cgroup = createProgramCgroup(mount, Deno.pid, undefined, cgroupOf("self"));
      moveToCgroup(cgroup.mount, cgroup.path, Deno.pid);
    } catch (error) {
      if (cgroup !== undefined) removeProgramCgroup(cgroup);
      return refuse(`cannot make the program's memory cgroup: ${(error as Error).message}`);
    }
  }
  const stepOut = (): void => {
    if (cgroup !== undefined) moveToCgroup(cgroup.mount, cgroup.home, Deno.pid);
  };
  if (request.pid === undefined) {
    try {
      child = new Deno.Command(request.command[0], {
        args: request.command.slice(1),
        stdin: "inherit",
        stdout: "inherit",
        stderr: "inherit",
      }).spawn();
    } catch (error) {
      const why = error instanceof Deno.errors.NotFound ? "command not found" : String(error);
      if (cgroup !== undefined) {
        stepOut();
        removeProgramCgroup(cgroup);
      }
      return refuse(`cannot run ${request.command[0]}: ${why}`);
    }
  }
  try {
    stepOut();
  } catch (error) {
    child?.kill("SIGKILL");
    await child?.status;
    removeProgramCgroup(cgroup!);
    return refuse(`cannot leave the program's memory cgroup: ${(error as Error).message}`);
  }
  const pid = child?.pid ?? request.pid!;
  let session: TieringSession;
  try {
    session = startTiering({
      pid,
      fast,
      slow,
      fastMax: request.fastMax,
      intervalMs: request.intervalMs,
      rateBytesPerSec: request.rateBytesPerSec,
      useFreeKdamond: request.useFreeKdamond,
      topology,
      damon,
      stateDir: stateDir(),
      engine,
      cgroup,
    });
  } catch (error) {
    if (child !== undefined) {
      child.kill("SIGTERM");
      await child.status;
    }
    if (cgroup !== undefined) removeProgramCgroup(cgroup);
    if (error instanceof TieringError) return refuse(error.message);
    throw error;
  }
  io.err(
    `tier: ${note}; process ${pid}, fast ${fast.join(",")}, slow ${slow.join(",")}, budget ${
      formatBytes(session.target.budgetBytes)
    }\n`,
  );
  let caught: string | undefined;
  const handlers = SIGNALS.map((signal) => {
    const handler = (): void => {
      caught ??= signal;
      if (child !== undefined) {
        try {
          child.kill(signal);
        } catch {
          // Already gone.
        }
      } else void session.stop();
    };
    Deno.addSignalListener(signal, handler);
    return [signal, handler] as const;
  });
  const reporting = report(session, request.json, io);
  try {
    let status = 0;
    if (child !== undefined) {
      const s = await child.status;
      status = s.signal !== null
        ? 128 + ((constants.signals as Record<string, number>)[s.signal] ?? 0)
        : s.code;
      await session.stop();
    }
    const end = await session.done;
    await reporting;
    if (end.reason === "error") io.err(`tier: stopped tiering: ${end.error?.message}\n`);
    if (child === undefined && caught !== undefined) status = 0;
    return status;
  } finally {
    await session.stop();
    for (const [signal, handler] of handlers) Deno.removeSignalListener(signal, handler);
  }
}
