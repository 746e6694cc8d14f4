/**
 * numactl's node-list syntax, resolved against the nodes this process may use.
 *
 * A node list names NUMA nodes the way `numactl` and SK hynix's `hmctl` accept them:
 *
 * | spec      | meaning                                                        |
 * |-----------|----------------------------------------------------------------|
 * | `2`       | node 2                                                         |
 * | `0,2`     | nodes 0 and 2                                                  |
 * | `1-2,5`   | nodes 1, 2 and 5 (nodes inside a range that are not usable are skipped, as numactl does) |
 * | `all`     | every usable node                                              |
 * | `!0`      | every usable node except 0 (`!` inverts the rest of the list)  |
 * | `+0`      | the first usable node (`+` makes the numbers indexes into the usable set) |
 *
 * `!` may precede `+` (`!+0`). "Usable" means online *and* in the process's
 * `Mems_allowed` (its cpuset): a list naming any other node is an error, never
 * silently narrowed — the reference `hmctl` ran the program unbound after an
 * invalid node. The parser is pure: it takes the topology as an argument, so tests
 * can describe a 4-node machine on a 1-node one; {@link readNodeTopology} reads the
 * real one from sysfs and procfs.
 *
 * Errors are `TypeError` (the text is not a node list) or `RangeError` (a node that
 * exists in the syntax but not on this machine), and their messages quote the bad
 * token.
 *
 * @module
 */

/** Nodes a node list can be resolved against. */
export interface NodeTopology {
  /** Online nodes (`/sys/devices/system/node/online`). */
  readonly online: readonly number[];
  /** Nodes the process may allocate from (`Mems_allowed_list` in `/proc/self/status`). */
  readonly allowed: readonly number[];
}

/** Files {@link readNodeTopology} reads; tests point them at fixtures. */
export interface TopologyFiles {
  /** Kernel list of online nodes; default `/sys/devices/system/node/online`. */
  readonly online?: string;
  /** A `/proc/PID/status` file with a `Mems_allowed_list:` line; default `/proc/self/status`. */
  readonly status?: string;
}

/** The highest node count tiermem's node masks hold (Zig `node_mask.max_nodes`). */
export const MAX_NODES = 1024;

const DIGITS = /^[0-9]+$/;

/**
 * Resolves a numactl node list to the ascending list of nodes it selects.
 *
 * @param spec the node list as the user wrote it (`0-3`, `0,2`, `all`, `!0`, `+0`).
 * @param topology online and allowed nodes; a selected node must be in both.
 * @returns the selected nodes, ascending, without duplicates, never empty.
 * @throws {TypeError} when `spec` is not a node list, naming the bad token.
 * @throws {RangeError} when a node is not online or not allowed, or nothing is selected.
 *
 * @example
 * ```ts
 * import { parseNodeList } from "./node_list.ts";
 * const fourNodes = { online: [0, 1, 2, 3], allowed: [0, 1, 2, 3] };
 * parseNodeList("1-2", fourNodes); // [1, 2]
 * parseNodeList("!0", fourNodes); // [1, 2, 3]
 * parseNodeList("+1", { online: [0, 2, 3], allowed: [2, 3] }); // [3]
 * ```
 */
export function parseNodeList(spec: string, topology: NodeTopology): number[] {
  if (spec === "") throw new TypeError(`invalid node list "" (empty)`);
  const online = new Set(topology.online);
  const usable = uniqueSorted(topology.allowed.filter((n) => online.has(n)));
  let rest = spec;
  const invert = rest.startsWith("!");
  if (invert) rest = rest.slice(1);
  const relative = rest.startsWith("+");
  if (relative) rest = rest.slice(1);

  let selected: number[];
  if (rest === "all") {
    selected = usable;
  } else if (rest === "") {
    throw new TypeError(`invalid node list "${spec}" (no node after "${spec}")`);
  } else {
    const picked = new Set<number>();
    for (const element of rest.split(",")) {
      if (element === "") throw new TypeError(`invalid node list "${spec}" (empty element)`);
      for (const node of resolveElement(element, relative, usable, topology)) picked.add(node);
    }
    selected = uniqueSorted([...picked]);
  }
  if (invert) {
    const excluded = new Set(selected);
    selected = usable.filter((n) => !excluded.has(n));
  }
  if (selected.length === 0) throw new RangeError(`node list "${spec}" selects no node`);
  return selected;
}

/** One element of a list: `N` or `A-B`, absolute or relative to the usable set. */
function resolveElement(
  element: string,
  relative: boolean,
  usable: readonly number[],
  topology: NodeTopology,
): number[] {
  const dash = element.indexOf("-");
  if (dash < 0) return [resolveNode(element, relative, usable, topology)];
  const startText = element.slice(0, dash);
  const endText = element.slice(dash + 1);
  if (startText === "" || endText === "") {
    throw new TypeError(`invalid node range "${element}" (needs START-END)`);
  }
  const start = resolveNode(startText, relative, usable, topology);
  const end = resolveNode(endText, relative, usable, topology);
  if (start > end) throw new TypeError(`invalid node range "${element}" (start above end)`);
  // Both ends are usable; nodes between them that are not (a sparse topology) are
  // skipped, as numactl does.
  return usable.filter((n) => n >= start && n <= end);
}

/** A single node number, checked against the topology; relative numbers index `usable`. */
function resolveNode(
  text: string,
  relative: boolean,
  usable: readonly number[],
  topology: NodeTopology,
): number {
  if (!DIGITS.test(text)) throw new TypeError(`invalid node "${text}" (not a number)`);
  const n = Number(text);
  if (relative) {
    if (n >= usable.length) {
      throw new RangeError(
        `invalid relative node "+${text}" (${usable.length} usable nodes: +0 to +${
          usable.length - 1
        })`,
      );
    }
    return usable[n];
  }
  if (!topology.online.includes(n)) {
    throw new RangeError(
      `invalid node "${text}" (not online; online nodes: ${formatNodeList(topology.online)})`,
    );
  }
  if (!usable.includes(n)) {
    throw new RangeError(
      `invalid node "${text}" (not in this process's Mems_allowed: ${formatNodeList(usable)})`,
    );
  }
  return n;
}

/**
 * Parses the kernel's own list format (`0-3,8`, as in `/sys/devices/system/node/online`
 * and `Mems_allowed_list`). An empty or blank text is the empty list.
 *
 * @throws {TypeError} naming the bad element when the text is not such a list.
 *
 * @example
 * ```ts
 * import { parseKernelNodeList } from "./node_list.ts";
 * parseKernelNodeList("0-2,8\n"); // [0, 1, 2, 8]
 * ```
 */
export function parseKernelNodeList(text: string): number[] {
  const trimmed = text.trim();
  if (trimmed === "") return [];
  const nodes: number[] = [];
  for (const element of trimmed.split(",")) {
    const [startText, endText, extra] = element.split("-");
    const end = endText ?? startText;
    if (extra !== undefined || !DIGITS.test(startText) || !DIGITS.test(end)) {
      throw new TypeError(`invalid kernel node list "${trimmed}" (element "${element}")`);
    }
    for (let n = Number(startText); n <= Number(end); n++) nodes.push(n);
  }
  return uniqueSorted(nodes);
}

/**
 * Writes nodes in the kernel's compact list format, ranges collapsed.
 *
 * @example
 * ```ts
 * import { formatNodeList } from "./node_list.ts";
 * formatNodeList([0, 1, 2, 3, 5]); // "0-3,5"
 * formatNodeList([]); // "none"
 * ```
 */
export function formatNodeList(nodes: readonly number[]): string {
  const sorted = uniqueSorted(nodes);
  if (sorted.length === 0) return "none";
  const parts: string[] = [];
  let start = sorted[0];
  let prev = start;
  for (const n of [...sorted.slice(1), Number.NaN]) {
    if (n === prev + 1) {
      prev = n;
      continue;
    }
    parts.push(start === prev ? `${start}` : `${start}-${prev}`);
    start = n;
    prev = n;
  }
  return parts.join(",");
}

/**
 * Reads this machine's online nodes and the process's allowed nodes. A machine
 * without NUMA support (no sysfs node directory) is one node, 0; a missing
 * `Mems_allowed_list` line means every online node is allowed.
 *
 * @example
 * ```ts
 * import { readNodeTopology } from "./node_list.ts";
 * const topology = readNodeTopology();
 * console.log(topology.online, topology.allowed); // e.g. [0] [0]
 * ```
 */
export function readNodeTopology(files: TopologyFiles = {}): NodeTopology {
  const onlinePath = files.online ?? "/sys/devices/system/node/online";
  const statusPath = files.status ?? "/proc/self/status";
  const onlineText = readOptional(onlinePath);
  const online = onlineText === null ? [0] : parseKernelNodeList(onlineText);
  const status = readOptional(statusPath);
  const line = status?.split("\n").find((l) => l.startsWith("Mems_allowed_list:"));
  const allowed = line === undefined
    ? online
    : parseKernelNodeList(line.slice("Mems_allowed_list:".length));
  return { online, allowed };
}

function readOptional(path: string): string | null {
  try {
    return Deno.readTextFileSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

function uniqueSorted(nodes: readonly number[]): number[] {
  return [...new Set(nodes)].sort((a, b) => a - b);
}
