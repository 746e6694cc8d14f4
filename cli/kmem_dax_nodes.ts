/**
 * Whether a KMEM_DAX tier can find its nodes, checked by the memtier launcher before the
 * program starts.
 *
 * libmemtier.so (`zig-src/src/memtier/tier_nodes.zig`) binds a KMEM_DAX tier to
 * `MEMKIND_DAX_KMEM_NODES` when set (numactl syntax, checked against the usable nodes), else
 * to the nodes that have memory and no CPU. When neither gives a node the library prints one
 * line and exits with status 2 before `main`; the launcher asks the same question first, so the
 * program is not started at all and the message comes from the launcher. Which of the
 * candidates is nearest the CPU is the library's business: it is decided at start-up, on the
 * CPU the program runs on, and cannot fail once a candidate exists.
 *
 * @module
 */

import {
  type NodeTopology,
  parseKernelNodeList,
  parseNodeList,
  readNodeTopology,
} from "../lib/node_list.ts";

/** The node directory of sysfs. */
const NODE_DIR = "/sys/devices/system/node";

/** Where {@link kmemDaxProblem} reads the machine (tests point it at a fake sysfs). */
export interface KmemDaxMachine {
  /** Online and allowed nodes (default: {@link readNodeTopology}). */
  readonly topology?: NodeTopology;
  /** Root of the file system holding `sys/devices/system/node` (default `/`). */
  readonly root?: string;
}

/**
 * The reason a KMEM_DAX tier would find no node (the library's own message, `KMEM_DAX: …`),
 * or null when it finds one.
 *
 * @param override `MEMKIND_DAX_KMEM_NODES`, or undefined when unset.
 * @param machine where to read the nodes from.
 *
 * @example
 * ```ts
 * import { kmemDaxProblem } from "./kmem_dax_nodes.ts";
 * kmemDaxProblem(undefined); // on a one-node machine: "KMEM_DAX: no memory-only NUMA node found …"
 * kmemDaxProblem("0"); // null: node 0 is usable
 * ```
 */
export function kmemDaxProblem(
  override: string | undefined,
  machine: KmemDaxMachine = {},
): string | null {
  const root = (machine.root ?? "/").replace(/\/$/, "");
  const topology = machine.topology ?? readNodeTopology({
    online: `${root}${NODE_DIR}/online`,
  });
  if (override !== undefined) {
    try {
      parseNodeList(override, topology);
      return null;
    } catch (error) {
      if (error instanceof TypeError || error instanceof RangeError) {
        return `KMEM_DAX: MEMKIND_DAX_KMEM_NODES: ${error.message}`;
      }
      throw error;
    }
  }
  const memory = readList(`${root}${NODE_DIR}/has_memory`);
  if (memory === null) return `KMEM_DAX: cannot read ${NODE_DIR}/has_memory`;
  const cpus = new Set(readList(`${root}${NODE_DIR}/has_cpu`) ?? []);
  const usable = new Set(topology.online.filter((n: number) => topology.allowed.includes(n)));
  const candidates = memory.filter((n: number) => !cpus.has(n) && usable.has(n));
  if (candidates.length > 0) return null;
  return `KMEM_DAX: no memory-only NUMA node found (nodes with memory: ${memory.length}, ` +
    `none without CPUs); set MEMKIND_DAX_KMEM_NODES`;
}

function readList(path: string): number[] | null {
  try {
    return parseKernelNodeList(Deno.readTextFileSync(path));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}
