/**
 * The CLI's two views, `topology` and `usage PID`: text with bar charts for people, `--json` for
 * scripts, both built from {@link readTopology} and {@link processNumaUsage}.
 *
 * Bars are Unicode blocks: in the topology view a node's bar is as long as its memory relative to
 * the largest node, with the used part filled (`█`) and the free part shaded (`░`); in the usage
 * view a node's bar is its share of the process's present memory. Colour (ANSI) only when stdout is
 * a terminal and `NO_COLOR` is unset or empty (https://no-color.org), so piped output is plain
 * text; `FORCE_COLOR` forces it (the rules of `node:util`'s `styleText`).
 *
 * Exit status: 0, 1 when the data cannot be read (no such process), 2 for usage errors (a line on
 * stderr naming the bad argument, then the usage line).
 *
 * @module
 */

import process from "node:process";
import { stripVTControlCharacters, styleText } from "node:util";
import { runHeatView } from "./heat.ts";
import { writeAllSync } from "./write_all.ts";
import { formatNodeList } from "../lib/node_list.ts";
import { type MappingKind, processNumaUsage } from "../lib/numa_maps.ts";
import {
  currentNode,
  highestBandwidthNodes,
  highestCapacityNodes,
  lowestLatencyNodes,
  readTopology,
  sysfsReader,
  type Topology,
} from "../lib/topology.ts";

/** Where a view reads and writes; every field defaults to the real process. */
export interface ViewOptions {
  /** The directory standing for `/` when reading sysfs and procfs (default `/`). */
  root?: string;
  /** Writes to stdout (default: `Deno.stdout`). */
  write?: (text: string) => void;
  /** Writes to stderr (default: `Deno.stderr`). */
  writeError?: (text: string) => void;
  /** Whether stdout is a terminal (default: `Deno.stdout.isTerminal()`). */
  isTerminal?: boolean;
  /** Reads an environment variable (default `Deno.env.get`), for `NO_COLOR`. */
  env?: (name: string) => string | undefined;
}

/** The memspace choices in `topology --json`. */
export interface TopologyJsonMemspaces {
  /** The initiator node the bandwidth/latency choices are for (the calling CPU's node). */
  initiator: number;
  /** Memory nodes, largest first. */
  highestCapacity: number[];
  /** Best-bandwidth nodes from `initiator`. */
  highestBandwidth: number[];
  /** Lowest-latency nodes from `initiator`. */
  lowestLatency: number[];
}

/** `topology --json`: the {@link Topology} plus the memspace choices. */
export interface TopologyJson extends Topology {
  /** Memspace choices (absent when no node is visible). */
  memspaces?: TopologyJsonMemspaces;
}

/** One node's line of `usage --json`. */
export interface UsageJsonNode {
  /** Node id. */
  node: number;
  /** Present bytes on the node. */
  bytes: number;
  /** The same in MiB. */
  mib: number;
  /** Present bytes per mapping kind. */
  byKind: Record<MappingKind, number>;
}

/** `usage PID --json`. */
export interface UsageJson {
  /** The process. */
  pid: number;
  /** Its command name (`/proc/PID/comm`), `""` if unreadable. */
  command: string;
  /** Present bytes on all nodes. */
  totalBytes: number;
  /** Number of mappings. */
  mappings: number;
  /** Every online node and every node holding pages, by id. */
  nodes: UsageJsonNode[];
}

const barWidth = 30;
const mib = 1024 * 1024;
const kinds: readonly MappingKind[] = ["anon", "heap", "stack", "file"];

interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
  color: boolean;
  root: string;
}

/**
 * Whether to colour: `node:util`'s `styleText` decides for the real stdout (`NO_COLOR`,
 * `FORCE_COLOR`, whether it is a terminal); injected `isTerminal`/`env` (tests) follow the same
 * no-color.org rule by hand, since `styleText` reads only the real process.
 */
function colorOf(options: ViewOptions): boolean {
  if (options.isTerminal === undefined && options.env === undefined) {
    return styleText("bold", "x", { stream: process.stdout }) !== "x";
  }
  const env = options.env ?? ((name: string) => Deno.env.get(name));
  const noColor = env("NO_COLOR");
  const terminal = options.isTerminal ?? Deno.stdout.isTerminal();
  return terminal && (noColor === undefined || noColor === "");
}

function ioOf(options: ViewOptions): Io {
  return {
    out: options.write ?? ((text: string) => writeAllSync(Deno.stdout, text)),
    err: options.writeError ?? ((text: string) => writeAllSync(Deno.stderr, text)),
    color: colorOf(options),
    root: options.root ?? "/",
  };
}

type Style = "bold" | "dim" | "green" | "yellow" | "red" | "cyan";

function paint(io: Io, style: Style, text: string): string {
  return io.color && text !== "" ? styleText(style, text, { validateStream: false }) : text;
}

/** A bar of `width` cells, the first `filled` of them solid. */
function bar(io: Io, filled: number, width: number, style: Style): string {
  const solid = Math.max(0, Math.min(width, Math.round(filled)));
  return paint(io, style, "█".repeat(solid)) + paint(io, "dim", "░".repeat(width - solid));
}

function human(bytes: number): string {
  if (bytes >= 1024 * 1024 * 1024) return `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
  return `${(bytes / mib).toFixed(1)} MiB`;
}

function table(rows: string[][], rightAligned: ReadonlySet<number> = new Set()): string {
  // Colour codes take no columns.
  const visible = (s: string): number => stripVTControlCharacters(s).length;
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => widths[i] = Math.max(widths[i] ?? 0, visible(cell)));
  }
  return rows.map((row) =>
    row.map((cell, i) => {
      const pad = " ".repeat(widths[i] - visible(cell));
      if (i === row.length - 1) return rightAligned.has(i) ? pad + cell : cell;
      return rightAligned.has(i) ? pad + cell : cell + pad;
    }).join("  ").trimEnd()
  ).join("\n") + "\n";
}

function usageError(io: Io, message: string, usage: string): number {
  io.err(`${message}\nUsage: ${usage}\n`);
  return 2;
}

const topologyUsage = "cli.ts topology [--json]";
const usageUsage = "cli.ts usage PID [--json | --heat]";

/** Parses `[--json] [--help]` plus positional arguments. */
function parseArgs(
  args: readonly string[],
): { json: boolean; heat: boolean; help: boolean; positional: string[]; bad?: string } {
  const result = { json: false, heat: false, help: false, positional: [] as string[] };
  for (const arg of args) {
    if (arg === "--json") result.json = true;
    else if (arg === "--heat") result.heat = true;
    else if (arg === "--help" || arg === "-h") result.help = true;
    else if (arg.startsWith("-") && arg !== "-") return { ...result, bad: arg };
    else result.positional.push(arg);
  }
  return result;
}

function memspacesOf(topology: Topology, root: string): TopologyJsonMemspaces | undefined {
  if (topology.nodes.length === 0) return undefined;
  const initiator = currentNode(topology, sysfsReader(root));
  return {
    initiator,
    highestCapacity: highestCapacityNodes(topology),
    highestBandwidth: highestBandwidthNodes(topology, { initiator }),
    lowestLatency: lowestLatencyNodes(topology, { initiator }),
  };
}

function topologyText(io: Io, topology: Topology, memspaces: TopologyJsonMemspaces): string {
  const lines: string[] = [];
  lines.push(
    paint(io, "bold", `NUMA topology: ${topology.nodes.length} node(s) online`) +
      ` (${formatNodeList(topology.online)}; possible ${formatNodeList(topology.possible)})`,
    "",
  );
  const largest = Math.max(1, ...topology.nodes.map((n) => n.memTotalBytes));
  const rows: string[][] = [["node", "cpus", "tier", "total", "free", "memory (█ used ░ free)"]];
  for (const node of topology.nodes) {
    const used = node.memTotalBytes - node.memFreeBytes;
    const width = (node.memTotalBytes / largest) * barWidth;
    const ratio = node.memTotalBytes === 0 ? 0 : used / node.memTotalBytes;
    const style: Style = ratio > 0.9 ? "red" : ratio > 0.7 ? "yellow" : "green";
    rows.push([
      paint(io, "bold", `${node.id}`),
      node.hasCpu ? formatNodeList(node.cpus) : paint(io, "cyan", "none"),
      node.tier === undefined ? "-" : `${node.tier}`,
      human(node.memTotalBytes),
      human(node.memFreeBytes),
      bar(io, (used / largest) * barWidth, Math.round(width), style) +
      ` ${Math.round(ratio * 100)}% used`,
    ]);
  }
  lines.push(table(rows, new Set([0, 3, 4])));
  if (topology.cpuLessNodes.length > 0) {
    lines.push(`CPU-less memory nodes: ${formatNodeList(topology.cpuLessNodes)}`, "");
  }
  if (topology.tiers.length > 0) {
    lines.push(paint(io, "bold", "memory tiers") + " (fastest first)");
    topology.tiers.forEach((tier, i) => {
      const label = i === 0 ? "top tier" : i === topology.tiers.length - 1 ? "lowest tier" : "";
      lines.push(
        `  memory_tier${tier.id}: nodes ${formatNodeList(tier.nodes)}  ${label}`.trimEnd(),
      );
    });
    lines.push("");
  }
  const hmat = topology.nodes.filter((n) => n.access1 !== undefined || n.access0 !== undefined);
  if (hmat.length > 0) {
    lines.push(paint(io, "bold", "HMAT performance") + " (best initiators; access1, else access0)");
    const rows: string[][] = [[
      "node",
      "initiators",
      "read MB/s",
      "write MB/s",
      "read ns",
      "write ns",
    ]];
    for (const node of hmat) {
      const a = node.access1 ?? node.access0;
      const show = (v: number | undefined): string => v === undefined ? "-" : `${v}`;
      rows.push([
        `${node.id}`,
        formatNodeList(a?.initiators ?? []),
        show(a?.readBandwidthMBps),
        show(a?.writeBandwidthMBps),
        show(a?.readLatencyNs),
        show(a?.writeLatencyNs),
      ]);
    }
    lines.push(table(rows, new Set([0, 2, 3, 4, 5])).replace(/^/gm, "  ").trimEnd(), "");
  }
  lines.push(paint(io, "bold", "distances") + " (SLIT, 10 = local)");
  const matrix: string[][] = [["", ...topology.nodes.map((n) => `${n.id}`)]];
  for (const node of topology.nodes) {
    matrix.push([
      `${node.id}`,
      ...node.distances.map((d) => d === 10 ? paint(io, "green", "10") : `${d}`),
    ]);
  }
  lines.push(table(matrix, new Set(matrix[0].map((_, i) => i))).replace(/^/gm, "  ").trimEnd(), "");
  lines.push(
    paint(io, "bold", "memspaces") + ` (from node ${memspaces.initiator}, this process's CPU)`,
    `  highest capacity:  ${memspaces.highestCapacity.join(",")}`,
    `  highest bandwidth: ${formatNodeList(memspaces.highestBandwidth)}`,
    `  lowest latency:    ${formatNodeList(memspaces.lowestLatency)}`,
  );
  return lines.join("\n") + "\n";
}

/**
 * `topology [--json]`: nodes, CPUs, memory total/free with bars, tiers, HMAT numbers, the SLIT
 * distance matrix and the memspace choices. Returns the exit status.
 *
 * @example
 * ```ts
 * import { runTopologyView } from "./views.ts";
 * const status = await runTopologyView(["--json"], { write: (text) => console.log(text.length) });
 * console.log(status); // 0
 * ```
 */
export function runTopologyView(args: string[], options: ViewOptions = {}): Promise<number> {
  const io = ioOf(options);
  const parsed = parseArgs(args);
  if (parsed.bad !== undefined) {
    return Promise.resolve(usageError(io, `topology: unknown option ${parsed.bad}`, topologyUsage));
  }
  if (parsed.positional.length > 0) {
    return Promise.resolve(
      usageError(io, `topology: unexpected argument ${parsed.positional[0]}`, topologyUsage),
    );
  }
  if (parsed.help) {
    io.out(`Usage: ${topologyUsage}\nNUMA nodes, memory, tiers, HMAT and distances.\n`);
    return Promise.resolve(0);
  }
  const topology = readTopology({ root: io.root });
  const memspaces = memspacesOf(topology, io.root);
  if (parsed.json) {
    const json: TopologyJson = memspaces === undefined ? topology : { ...topology, memspaces };
    io.out(JSON.stringify(json, null, 2) + "\n");
  } else if (memspaces === undefined) {
    io.out("NUMA topology: no node visible (no /sys/devices/system/node)\n");
  } else {
    io.out(topologyText(io, topology, memspaces));
  }
  return Promise.resolve(0);
}

function usageJson(pid: number, root: string): UsageJson {
  const usage = processNumaUsage(pid, { root });
  const command = sysfsReader(root).readText(`/proc/${pid}/comm`)?.trim() ?? "";
  const online = readTopology({ root }).online;
  const ids = [...new Set([...online, ...Object.keys(usage.bytesPerNode).map(Number)])]
    .sort((a, b) => a - b);
  const nodes = ids.map((node): UsageJsonNode => {
    const bytes = usage.bytesPerNode[node] ?? 0;
    const byKind = Object.fromEntries(
      kinds.map((k) => [k, usage.bytesPerNodeByKind[k][node] ?? 0]),
    ) as Record<MappingKind, number>;
    return { node, bytes, mib: bytes / mib, byKind };
  });
  return { pid, command, totalBytes: usage.totalBytes, mappings: usage.mappings, nodes };
}

function usageText(io: Io, data: UsageJson): string {
  const holding = data.nodes.filter((n) => n.bytes > 0).length;
  const lines = [
    paint(io, "bold", `process ${data.pid} (${data.command})`) +
    `: ${(data.totalBytes / mib).toFixed(1)} MiB present on ${holding} node(s), ` +
    `${data.mappings} mappings`,
    "",
  ];
  const rows: string[][] = [["node", "MiB", ...kinds.map((k) => `${k} MiB`), "share"]];
  for (const node of data.nodes) {
    const share = data.totalBytes === 0 ? 0 : node.bytes / data.totalBytes;
    rows.push([
      paint(io, "bold", `${node.node}`),
      node.mib.toFixed(1),
      ...kinds.map((k) => (node.byKind[k] / mib).toFixed(1)),
      bar(io, share * barWidth, barWidth, "cyan") + ` ${Math.round(share * 100)}%`,
    ]);
  }
  lines.push(table(rows, new Set([0, 1, 2, 3, 4, 5])).trimEnd());
  return lines.join("\n") + "\n";
}

/**
 * `usage PID [--json | --heat]` (`--heat`: DAMON's view, `heat.ts`): the per-node MiB of a running process (from `/proc/PID/numa_maps`), split
 * by mapping kind, with a share bar per node. Returns the exit status (1 when the process cannot
 * be read, 2 for usage errors).
 *
 * @example
 * ```ts
 * import { runUsageView } from "./views.ts";
 * const status = await runUsageView([`${Deno.pid}`], { write: (text) => console.log(text) });
 * console.log(status); // 0
 * ```
 */
export function runUsageView(args: string[], options: ViewOptions = {}): Promise<number> {
  const io = ioOf(options);
  const parsed = parseArgs(args);
  if (parsed.bad !== undefined) {
    return Promise.resolve(usageError(io, `usage: unknown option ${parsed.bad}`, usageUsage));
  }
  if (parsed.help) {
    io.out(`Usage: ${usageUsage}\nPer-node memory of a running process (numa_maps).\n`);
    return Promise.resolve(0);
  }
  if (parsed.positional.length !== 1) {
    const problem = parsed.positional.length === 0
      ? "missing PID"
      : `unexpected argument ${parsed.positional[1]}`;
    return Promise.resolve(usageError(io, `usage: ${problem}`, usageUsage));
  }
  const text = parsed.positional[0];
  const pid = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(pid) || pid <= 0) {
    return Promise.resolve(
      usageError(io, `usage: PID must be a positive integer, got ${text}`, usageUsage),
    );
  }
  let data: UsageJson;
  try {
    data = usageJson(pid, io.root);
  } catch (error) {
    if (error instanceof RangeError || error instanceof Deno.errors.PermissionDenied) {
      io.err(`usage: ${error.message}\n`);
      return Promise.resolve(1);
    }
    throw error;
  }
  if (parsed.heat) return runHeatView(pid, io);
  io.out(parsed.json ? JSON.stringify(data, null, 2) + "\n" : usageText(io, data));
  return Promise.resolve(0);
}
