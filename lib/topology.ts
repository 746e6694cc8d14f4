/**
 * NUMA topology from sysfs alone (no hwloc): nodes, their CPUs and memory, SLIT distances,
 * memory tiers, HMAT access classes, and UMF-style "memspace" choices of nodes.
 *
 * Where it comes from:
 * - `/sys/devices/system/node/{possible,online,has_cpu,has_memory}` — node sets;
 * - `nodeN/cpulist`, `nodeN/meminfo` (`Node N MemTotal: … kB`), `nodeN/distance` (one SLIT
 *   distance per *online* node, in the order of `online`);
 * - `/sys/devices/virtual/memory_tiering/memory_tierK/nodelist` — the kernel's memory tiers. K is
 *   the tier's abstract distance divided by the chunk size, so a *larger* K is a *lower* (slower)
 *   tier: DRAM sits in `memory_tier4`, CXL / PMEM in higher-numbered tiers;
 * - `nodeN/accessC/initiators/{read,write}_{bandwidth,latency}` — HMAT performance of memory node
 *   N (MB/s, ns) as seen from the initiator nodes linked in the same directory (`nodeM` links).
 *   `access0` counts every initiator, `access1` only CPUs. The kernel lists only the *best*
 *   initiators of each target: from any other node, performance is unknown.
 *
 * Every read goes through a {@link SysfsReader} (default root `/`), so tests run against fake
 * trees in a temp directory. Missing or unreadable files read as absent: a kernel without tiers
 * or HMAT yields a topology without them, never an error.
 *
 * The memspace choices follow Intel UMF's predefined memspaces: {@link highestCapacityNodes}
 * (memory nodes, largest first), {@link highestBandwidthNodes} and {@link lowestLatencyNodes}
 * (the best memory nodes for the calling CPU's node, by HMAT, else by SLIT distance).
 *
 * @module
 */

import { formatNodeList, parseKernelNodeList } from "./node_list.ts";

/** Reads text files and directory listings below a root; the only door to sysfs and procfs. */
export interface SysfsReader {
  /** The directory that stands for `/`. */
  readonly root: string;
  /** The file's text, or `undefined` when it is missing or unreadable. `path` is absolute. */
  readText(path: string): string | undefined;
  /** The directory's entry names (sorted), or `[]` when it is missing or unreadable. */
  listDir(path: string): string[];
}

/**
 * A {@link SysfsReader} over the real file system, with `root` standing for `/`.
 *
 * @example
 * ```ts
 * import { sysfsReader } from "./topology.ts";
 * const reader = sysfsReader();
 * console.log(reader.readText("/sys/devices/system/node/online")?.trim());
 * ```
 */
export function sysfsReader(root: string = "/"): SysfsReader {
  if (typeof root !== "string" || root === "") {
    throw new TypeError(`sysfsReader: root must be a non-empty path, got ${JSON.stringify(root)}`);
  }
  const base = root.replace(/\/+$/, "");
  return {
    root,
    readText(path: string): string | undefined {
      try {
        return Deno.readTextFileSync(base + path);
      } catch {
        return undefined;
      }
    },
    listDir(path: string): string[] {
      try {
        return [...Deno.readDirSync(base + path)].map((e) => e.name).sort();
      } catch {
        return [];
      }
    },
  };
}

/** HMAT performance of one memory node for one access class (`access0` / `access1`). */
export interface AccessClass {
  /** Initiator nodes this performance applies to (the best initiators of the node). */
  initiators: number[];
  /** Read bandwidth, MB/s (undefined when not exposed). */
  readBandwidthMBps?: number;
  /** Write bandwidth, MB/s. */
  writeBandwidthMBps?: number;
  /** Read latency, ns. */
  readLatencyNs?: number;
  /** Write latency, ns. */
  writeLatencyNs?: number;
}

/** One online NUMA node. */
export interface NodeInfo {
  /** Node id. */
  id: number;
  /** CPUs of the node (empty for a CPU-less node). */
  cpus: number[];
  /** Whether the node has CPUs. */
  hasCpu: boolean;
  /** Whether the node has memory. */
  hasMemory: boolean;
  /** `MemTotal` of the node, bytes. */
  memTotalBytes: number;
  /** `MemFree` of the node, bytes. */
  memFreeBytes: number;
  /** SLIT distances to every node of {@link Topology.nodes}, in that order (10 = local). */
  distances: number[];
  /** Id of the memory tier holding the node (larger = lower, slower tier), if tiers exist. */
  tier?: number;
  /** HMAT access class 0 (any initiator), when the kernel exposes it. */
  access0?: AccessClass;
  /** HMAT access class 1 (CPU initiators only), when the kernel exposes it. */
  access1?: AccessClass;
}

/** One kernel memory tier. */
export interface MemoryTier {
  /** The `K` of `memory_tierK`: abstract distance / chunk size (larger = slower). */
  id: number;
  /** Nodes in the tier. */
  nodes: number[];
}

/** The machine's NUMA topology as sysfs describes it. */
export interface Topology {
  /** Nodes that may ever come online. */
  possible: number[];
  /** Nodes online now. */
  online: number[];
  /** One entry per online node, by id. */
  nodes: NodeInfo[];
  /** Memory tiers, fastest (smallest id) first; empty when the kernel has none. */
  tiers: MemoryTier[];
  /** Online nodes with memory but no CPU (CXL expanders, PMEM, HBM-only). */
  cpuLessNodes: number[];
}

/** Options of {@link readTopology}. */
export interface TopologyOptions {
  /** The reader (default: `sysfsReader(root)`). */
  reader?: SysfsReader;
  /** Root of the file system when no reader is given (default `/`). */
  root?: string;
}

const nodeDir = "/sys/devices/system/node";
const tierDir = "/sys/devices/virtual/memory_tiering";
const kib = 1024;

function listFile(reader: SysfsReader, path: string): number[] | undefined {
  const text = reader.readText(path);
  return text === undefined ? undefined : parseKernelNodeList(text);
}

function meminfoBytes(text: string | undefined, key: string): number {
  if (text === undefined) return 0;
  const m = new RegExp(`\\b${key}:\\s+(\\d+)\\s*kB`).exec(text);
  return m === null ? 0 : Number(m[1]) * kib;
}

function readNumber(reader: SysfsReader, path: string): number | undefined {
  const text = reader.readText(path)?.trim();
  if (text === undefined || !/^\d+$/.test(text)) return undefined;
  return Number(text);
}

function readAccess(reader: SysfsReader, node: number, cls: number): AccessClass | undefined {
  const dir = `${nodeDir}/node${node}/access${cls}/initiators`;
  const entries = reader.listDir(dir);
  if (entries.length === 0) return undefined;
  const access: AccessClass = {
    initiators: entries.filter((e) => /^node\d+$/.test(e)).map((e) => Number(e.slice(4)))
      .sort((a, b) => a - b),
  };
  const fields = [
    ["read_bandwidth", "readBandwidthMBps"],
    ["write_bandwidth", "writeBandwidthMBps"],
    ["read_latency", "readLatencyNs"],
    ["write_latency", "writeLatencyNs"],
  ] as const;
  for (const [file, key] of fields) {
    const value = readNumber(reader, `${dir}/${file}`);
    if (value !== undefined) access[key] = value;
  }
  return access;
}

/**
 * Reads the kernel's memory tiers (`memory_tierK/nodelist`), fastest tier first.
 *
 * @example
 * ```ts
 * import { readMemoryTiers } from "./topology.ts";
 * for (const tier of readMemoryTiers()) console.log(tier.id, tier.nodes);
 * ```
 */
export function readMemoryTiers(reader: SysfsReader = sysfsReader()): MemoryTier[] {
  const tiers: MemoryTier[] = [];
  for (const name of reader.listDir(tierDir)) {
    const m = /^memory_tier(\d+)$/.exec(name);
    if (m === null) continue;
    const nodes = listFile(reader, `${tierDir}/${name}/nodelist`);
    if (nodes !== undefined) tiers.push({ id: Number(m[1]), nodes });
  }
  return tiers.sort((a, b) => a.id - b.id);
}

/**
 * Reads the whole topology. Without NUMA sysfs (a container without `/sys/devices/system/node`)
 * it reports no nodes: callers treat an empty `nodes` as "NUMA not visible".
 *
 * @example
 * ```ts
 * import { readTopology } from "./topology.ts";
 * const topology = readTopology();
 * for (const node of topology.nodes) {
 *   console.log(node.id, node.cpus, node.memTotalBytes, node.tier);
 * }
 * ```
 */
export function readTopology(options: TopologyOptions = {}): Topology {
  const reader = options.reader ?? sysfsReader(options.root ?? "/");
  const online = listFile(reader, `${nodeDir}/online`) ?? [];
  const possible = listFile(reader, `${nodeDir}/possible`) ?? online;
  const hasCpu = listFile(reader, `${nodeDir}/has_cpu`);
  const hasMemory = listFile(reader, `${nodeDir}/has_memory`);
  const tiers = readMemoryTiers(reader);
  const tierOfNode = new Map<number, number>();
  for (const tier of tiers) for (const n of tier.nodes) tierOfNode.set(n, tier.id);

  const nodes: NodeInfo[] = online.map((id) => {
    const dir = `${nodeDir}/node${id}`;
    const cpus = listFile(reader, `${dir}/cpulist`) ?? [];
    const meminfo = reader.readText(`${dir}/meminfo`);
    const memTotalBytes = meminfoBytes(meminfo, "MemTotal");
    const distanceText = reader.readText(`${dir}/distance`)?.trim() ?? "";
    const distances = distanceText === "" ? [] : distanceText.split(/\s+/).map(Number);
    const node: NodeInfo = {
      id,
      cpus,
      hasCpu: hasCpu?.includes(id) ?? cpus.length > 0,
      hasMemory: hasMemory?.includes(id) ?? memTotalBytes > 0,
      memTotalBytes,
      memFreeBytes: meminfoBytes(meminfo, "MemFree"),
      distances,
    };
    const tier = tierOfNode.get(id);
    if (tier !== undefined) node.tier = tier;
    const access0 = readAccess(reader, id, 0);
    if (access0 !== undefined) node.access0 = access0;
    const access1 = readAccess(reader, id, 1);
    if (access1 !== undefined) node.access1 = access1;
    return node;
  });
  const cpuLessNodes = nodes.filter((n) => !n.hasCpu && n.hasMemory).map((n) => n.id);
  return { possible, online, nodes, tiers, cpuLessNodes };
}

/**
 * The SLIT distance from node `from` to node `to`, or `undefined` when either is unknown.
 *
 * @example
 * ```ts
 * import { nodeDistance, readTopology } from "./topology.ts";
 * console.log(nodeDistance(readTopology(), 0, 0)); // 10
 * ```
 */
export function nodeDistance(topology: Topology, from: number, to: number): number | undefined {
  const node = topology.nodes.find((n) => n.id === from);
  const index = topology.nodes.findIndex((n) => n.id === to);
  if (node === undefined || index < 0) return undefined;
  return node.distances[index];
}

/**
 * The node of the CPU the calling thread last ran on (`/proc/self/stat` field 39), or the first
 * node with CPUs when that cannot be read.
 *
 * @example
 * ```ts
 * import { currentNode, readTopology } from "./topology.ts";
 * console.log(currentNode(readTopology()));
 * ```
 */
export function currentNode(topology: Topology, reader: SysfsReader = sysfsReader()): number {
  const stat = reader.readText("/proc/self/stat");
  if (stat !== undefined) {
    // Fields after the command name, which may itself hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const processorField = 39 - 3;
    const cpu = Number(fields[processorField]);
    const node = topology.nodes.find((n) => n.cpus.includes(cpu));
    if (node !== undefined) return node.id;
  }
  const first = topology.nodes.find((n) => n.hasCpu) ?? topology.nodes[0];
  if (first === undefined) throw new RangeError("currentNode: the topology has no nodes");
  return first.id;
}

/**
 * The memory nodes, largest `MemTotal` first (UMF's HIGHEST_CAPACITY memspace).
 *
 * @example
 * ```ts
 * import { highestCapacityNodes, readTopology } from "./topology.ts";
 * console.log(highestCapacityNodes(readTopology())); // e.g. [0]
 * ```
 */
export function highestCapacityNodes(topology: Topology): number[] {
  return topology.nodes.filter((n) => n.hasMemory)
    .sort((a, b) => b.memTotalBytes - a.memTotalBytes || a.id - b.id)
    .map((n) => n.id);
}

/** Options of {@link highestBandwidthNodes} and {@link lowestLatencyNodes}. */
export interface InitiatorOptions {
  /** The initiator node (default: the calling CPU's node, {@link currentNode}). */
  initiator?: number;
  /** Reader for `/proc/self/stat` when `initiator` is not given (default: the real one). */
  reader?: SysfsReader;
}

type Metric = "readBandwidthMBps" | "readLatencyNs";

function bestNodes(topology: Topology, options: InitiatorOptions, metric: Metric): number[] {
  const initiator = options.initiator ?? currentNode(topology, options.reader);
  const self = topology.nodes.find((n) => n.id === initiator);
  if (self === undefined) {
    throw new RangeError(
      `initiator node ${initiator} is not online (online: ${formatNodeList(topology.online)})`,
    );
  }
  const memory = topology.nodes.filter((n) => n.hasMemory);
  const larger = metric === "readBandwidthMBps";
  // HMAT: CPU initiators (access1) first, any initiator (access0) otherwise.
  const measured: Array<[number, number]> = [];
  for (const node of memory) {
    const access = node.access1 ?? node.access0;
    const value = access?.[metric];
    if (access !== undefined && value !== undefined && access.initiators.includes(initiator)) {
      measured.push([node.id, value]);
    }
  }
  if (measured.length > 0) {
    const best = measured.reduce(
      (acc, [, v]) => larger ? Math.max(acc, v) : Math.min(acc, v),
      larger ? -Infinity : Infinity,
    );
    return measured.filter(([, v]) => v === best).map(([id]) => id).sort((a, b) => a - b);
  }
  // No HMAT for this initiator: the smallest SLIT distance stands for both.
  const withDistance = memory.map((n) => [n.id, nodeDistance(topology, initiator, n.id)] as const)
    .filter((pair): pair is readonly [number, number] => pair[1] !== undefined);
  if (withDistance.length === 0) return memory.map((n) => n.id);
  const nearest = Math.min(...withDistance.map(([, d]) => d));
  return withDistance.filter(([, d]) => d === nearest).map(([id]) => id);
}

/**
 * The memory nodes with the highest HMAT read bandwidth from the initiator node (default: the
 * calling CPU's node) — UMF's HIGHEST_BANDWIDTH memspace. Without HMAT numbers for that
 * initiator, the nodes at the smallest SLIT distance.
 *
 * @example
 * ```ts
 * import { highestBandwidthNodes, readTopology } from "./topology.ts";
 * console.log(highestBandwidthNodes(readTopology(), { initiator: 0 })); // e.g. [0]
 * ```
 */
export function highestBandwidthNodes(
  topology: Topology,
  options: InitiatorOptions = {},
): number[] {
  return bestNodes(topology, options, "readBandwidthMBps");
}

/**
 * The memory nodes with the lowest HMAT read latency from the initiator node (default: the
 * calling CPU's node) — UMF's LOWEST_LATENCY memspace. Without HMAT numbers for that
 * initiator, the nodes at the smallest SLIT distance.
 *
 * @example
 * ```ts
 * import { lowestLatencyNodes, readTopology } from "./topology.ts";
 * console.log(lowestLatencyNodes(readTopology(), { initiator: 0 })); // e.g. [0]
 * ```
 */
export function lowestLatencyNodes(topology: Topology, options: InitiatorOptions = {}): number[] {
  return bestNodes(topology, options, "readLatencyNs");
}

/**
 * The nodes of the lowest (slowest, largest id) memory tier, or `[]` when there is a single tier
 * or none: where to demote cold data.
 *
 * @example
 * ```ts
 * import { lowerTierNodes, readTopology } from "./topology.ts";
 * console.log(lowerTierNodes(readTopology())); // [] on a one-tier machine
 * ```
 */
export function lowerTierNodes(topology: Topology): number[] {
  if (topology.tiers.length < 2) return [];
  return [...topology.tiers[topology.tiers.length - 1].nodes];
}

/**
 * The nodes of the top (fastest, smallest id) memory tier, or every memory node when the kernel
 * has no tiers: where to promote hot data.
 *
 * @example
 * ```ts
 * import { topTierNodes, readTopology } from "./topology.ts";
 * console.log(topTierNodes(readTopology())); // e.g. [0]
 * ```
 */
export function topTierNodes(topology: Topology): number[] {
  if (topology.tiers.length === 0) {
    return topology.nodes.filter((n) => n.hasMemory).map((n) => n.id);
  }
  return [...topology.tiers[0].nodes];
}
