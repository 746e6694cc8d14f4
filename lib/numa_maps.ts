/**
 * "Where are a process's pages?" — `/proc/PID/numa_maps` as data.
 *
 * Each line is one mapping: its start address, its memory policy in the kernel's own words, then
 * `key=value` fields and bare flags:
 *
 * ```
 * 7f48dbc78000 default file=/usr/lib/libc.so.6 mapped=38 mapmax=12 N0=38 kernelpagesize_kB=4
 * 56028f59f000 bind:2 heap anon=4 dirty=4 active=0 N2=4 kernelpagesize_kB=4
 * 7f0000000000 prefer (many):2-3 anon=512 dirty=512 N2=256 N3=256 kernelpagesize_kB=4
 * ```
 *
 * `Nn=count` is the number of pages (of `kernelpagesize_kB`) present on node n; a mapping with no
 * page present has no `N` field at all (and often nothing but its policy). The policy text is
 * `mode[=flags][:nodes]`, where mode may contain spaces (`weighted interleave`, `prefer (many)`);
 * we report it both raw and as the project's policy names (`preferred-many`,
 * `weighted-interleave`, …, see ARCHITECTURE.md). File paths are escaped by the kernel (space,
 * tab, newline and `=` as `\ooo` octal) and unescaped here.
 *
 * @module
 */

import { POLICY_MODES } from "./policy_names.ts";

/** What backs a mapping. */
export type MappingKind = "file" | "heap" | "stack" | "anon";

/** A mapping's memory policy as numa_maps prints it. */
export interface MappingPolicy {
  /** The kernel's text, e.g. `bind:2`, `prefer (many)=static:2-3`. */
  raw: string;
  /**
   * The mode in the project's names: `default`, `preferred`, `bind`, `interleave`,
   * `preferred-many`, `weighted-interleave`, `local`, or the kernel's word when unknown.
   */
  mode: string;
  /** Mode flags (`static`, `relative`, `balancing`). */
  flags: string[];
  /** The policy's node list as printed (`0-3`), or `""` when it has none. */
  nodes: string;
}

/** One line of numa_maps. */
export interface NumaMapping {
  /** Start address (hex, as printed). */
  address: string;
  /** The mapping's policy. */
  policy: MappingPolicy;
  /** What backs it. */
  kind: MappingKind;
  /** The file's path (unescaped) for `kind === "file"`. */
  file?: string;
  /** Whether it is a hugetlbfs mapping (`huge` flag). */
  huge: boolean;
  /** Page size of the counts, bytes (`kernelpagesize_kB` × 1024; 4096 when absent). */
  pageSizeBytes: number;
  /** Present pages per node (`Nn=count`). */
  pagesPerNode: Record<number, number>;
  /** Every other `key=value` field as a number (`anon`, `dirty`, `mapped`, `mapmax`, …). */
  counters: Record<string, number>;
}

/** Per-node totals of a process (or of any list of mappings). */
export interface NumaUsage {
  /** Bytes present per node, all mappings. */
  bytesPerNode: Record<number, number>;
  /** The same in MiB (bytes / 2^20, not rounded). */
  mibPerNode: Record<number, number>;
  /** Bytes present per node, per mapping kind. */
  bytesPerNodeByKind: Record<MappingKind, Record<number, number>>;
  /** Sum of `bytesPerNode`. */
  totalBytes: number;
  /** Number of mappings. */
  mappings: number;
}

/** numa_maps word → the project's name; `local` (MPOL_LOCAL) has no policy of ours. */
const modeNames: Record<string, string> = {
  ...Object.fromEntries(POLICY_MODES.map((m) => [m.numaMapsWord, m.name])),
  "local": "local",
};

const defaultPageSizeBytes = 4096;
const mib = 1024 * 1024;

/** Unescapes the kernel's `\ooo` octal escapes in a path. */
function unescapePath(text: string): string {
  return text.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/**
 * Parses a numa_maps policy text (`bind=static:2`, `prefer (many):2-3`, `default`).
 *
 * @example
 * ```ts
 * import { parseMappingPolicy } from "./numa_maps.ts";
 * console.log(parseMappingPolicy("weighted interleave:0-3").mode); // "weighted-interleave"
 * ```
 */
export function parseMappingPolicy(raw: string): MappingPolicy {
  const colon = raw.indexOf(":");
  const head = colon < 0 ? raw : raw.slice(0, colon);
  const nodes = colon < 0 ? "" : raw.slice(colon + 1);
  const eq = head.indexOf("=");
  const word = eq < 0 ? head : head.slice(0, eq);
  const flags = eq < 0 ? [] : head.slice(eq + 1).split("|").filter((f) => f !== "");
  return { raw, mode: modeNames[word] ?? word, flags, nodes };
}

// The policy may hold spaces ("weighted interleave", "prefer (many)"); everything else is a token.
const linePattern = /^([0-9a-f]+) (weighted interleave\S*|prefer \(many\)\S*|\S+)(?: (.*))?$/;

/**
 * Parses the text of a numa_maps file into mappings. Blank lines are skipped; a line that is not
 * `ADDRESS POLICY ...` throws a RangeError naming its line number and text.
 *
 * @example
 * ```ts
 * import { parseNumaMaps } from "./numa_maps.ts";
 * const [m] = parseNumaMaps("7f0000000000 bind:2 anon=4 dirty=4 N2=4 kernelpagesize_kB=4\n");
 * console.log(m.pagesPerNode); // { "2": 4 }
 * ```
 */
export function parseNumaMaps(text: string): NumaMapping[] {
  const mappings: NumaMapping[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.trim() === "") continue;
    const m = linePattern.exec(line);
    if (m === null) {
      throw new RangeError(`parseNumaMaps: line ${i + 1} is not ADDRESS POLICY ...: ${line}`);
    }
    const mapping: NumaMapping = {
      address: m[1],
      policy: parseMappingPolicy(m[2]),
      kind: "anon",
      huge: false,
      pageSizeBytes: defaultPageSizeBytes,
      pagesPerNode: {},
      counters: {},
    };
    for (const token of (m[3] ?? "").split(" ")) {
      if (token === "") continue;
      const eq = token.indexOf("=");
      const key = eq < 0 ? token : token.slice(0, eq);
      const value = eq < 0 ? "" : token.slice(eq + 1);
      if (key === "file") {
        mapping.kind = "file";
        mapping.file = unescapePath(value);
      } else if (key === "heap" || key === "stack") {
        mapping.kind = key;
      } else if (key === "huge") {
        mapping.huge = true;
      } else if (key === "kernelpagesize_kB") {
        mapping.pageSizeBytes = Number(value) * 1024;
      } else if (/^N\d+$/.test(key)) {
        mapping.pagesPerNode[Number(key.slice(1))] = Number(value);
      } else if (eq >= 0 && /^\d+$/.test(value)) {
        mapping.counters[key] = Number(value);
      }
    }
    mappings.push(mapping);
  }
  return mappings;
}

/**
 * Sums mappings into per-node bytes (overall and per kind).
 *
 * @example
 * ```ts
 * import { parseNumaMaps, summarizeNumaMaps } from "./numa_maps.ts";
 * const usage = summarizeNumaMaps(parseNumaMaps(
 *   "7f0000000000 interleave:0-1 anon=512 N0=256 N1=256 kernelpagesize_kB=4\n",
 * ));
 * console.log(usage.mibPerNode); // { "0": 1, "1": 1 }
 * ```
 */
export function summarizeNumaMaps(mappings: readonly NumaMapping[]): NumaUsage {
  const bytesPerNode: Record<number, number> = {};
  const bytesPerNodeByKind: Record<MappingKind, Record<number, number>> = {
    file: {},
    heap: {},
    stack: {},
    anon: {},
  };
  let totalBytes = 0;
  for (const mapping of mappings) {
    for (const [node, pages] of Object.entries(mapping.pagesPerNode)) {
      const bytes = pages * mapping.pageSizeBytes;
      const id = Number(node);
      bytesPerNode[id] = (bytesPerNode[id] ?? 0) + bytes;
      const byKind = bytesPerNodeByKind[mapping.kind];
      byKind[id] = (byKind[id] ?? 0) + bytes;
      totalBytes += bytes;
    }
  }
  const mibPerNode: Record<number, number> = {};
  for (const [node, bytes] of Object.entries(bytesPerNode)) mibPerNode[Number(node)] = bytes / mib;
  return { bytesPerNode, mibPerNode, bytesPerNodeByKind, totalBytes, mappings: mappings.length };
}

/** Options of {@link readNumaMaps}. */
export interface ReadNumaMapsOptions {
  /** The directory standing for `/` (default `/`; tests use a fake `proc/PID/numa_maps`). */
  root?: string;
}

function checkPid(pid: number | "self"): void {
  if (pid !== "self" && !(Number.isSafeInteger(pid) && pid > 0)) {
    throw new TypeError(`readNumaMaps: pid must be a positive integer or "self", got ${pid}`);
  }
}

/**
 * Reads and parses `/proc/PID/numa_maps`. A process that does not exist is a RangeError naming
 * the PID; one we may not inspect (another user's, without privileges) rethrows
 * `Deno.errors.PermissionDenied` with the PID in its message.
 *
 * @example
 * ```ts
 * import { readNumaMaps } from "./numa_maps.ts";
 * console.log(readNumaMaps("self").length > 0); // true
 * ```
 */
export function readNumaMaps(
  pid: number | "self",
  options: ReadNumaMapsOptions = {},
): NumaMapping[] {
  checkPid(pid);
  const path = `/proc/${pid}/numa_maps`;
  const root = (options.root ?? "/").replace(/\/+$/, "");
  let text: string;
  try {
    text = Deno.readTextFileSync(root + path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new RangeError(`no process ${pid}: ${path} does not exist`);
    }
    if (error instanceof Deno.errors.PermissionDenied) {
      throw new Deno.errors.PermissionDenied(`cannot read ${path} of process ${pid}: ${error}`);
    }
    throw error;
  }
  return parseNumaMaps(text);
}

/**
 * The per-node memory of a running process: {@link readNumaMaps} then {@link summarizeNumaMaps}.
 *
 * @example
 * ```ts
 * import { processNumaUsage } from "./numa_maps.ts";
 * const usage = processNumaUsage("self");
 * for (const [node, mib] of Object.entries(usage.mibPerNode)) console.log(node, mib.toFixed(1));
 * ```
 */
export function processNumaUsage(
  pid: number | "self",
  options: ReadNumaMapsOptions = {},
): NumaUsage {
  return summarizeNumaMaps(readNumaMaps(pid, options));
}
