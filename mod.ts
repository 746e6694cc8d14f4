/**
 * tiermem for Deno: NUMA topology, memory tiers and "where are my pages" from sysfs and procfs,
 * and libhmalloc.so (the tier-placing allocator) located, built and opened through FFI.
 *
 * @example
 * ```ts
 * import { lowerTierNodes, processNumaUsage, readTopology } from "./mod.ts";
 * const topology = readTopology();
 * console.log(topology.nodes.map((n) => n.id), lowerTierNodes(topology));
 * console.log(processNumaUsage("self").mibPerNode);
 * ```
 *
 * @module
 */

export * from "./lib/topology.ts";
export * from "./lib/numa_maps.ts";
export * from "./ffi/library.ts";
