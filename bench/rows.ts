/**
 * What the benchmark suite measures: the peers (allocators and how a process gets each) and the
 * rows (a workload, its full and quick arguments, the printed key that is the row's number, its
 * reference and the target). bench/run.ts runs them.
 *
 * @example
 * ```ts
 * import { rowSpecs } from "./rows.ts";
 * console.log(rowSpecs.map((r) => r.id).join(" "));
 * ```
 */

export const root: string = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
export const libDir: string = Deno.env.get("TIERMEM_LIB_DIR") ?? `${root}/zig-src/zig-out/lib`;
export const includeDir: string = `${root}/zig-src/zig-out/include`;
const sysLib = "/usr/lib/x86_64-linux-gnu";
/** One DRAM tier: the memtier interposers serve every block from DRAM. */
const dramTier = "KIND:DRAM,RATIO:1;POLICY:STATIC_RATIO";
/**
 * Stands for the run's temporary directory in a peer's environment: bench/run.ts creates it
 * (mkdtemp), puts its path in place of this token, and removes it at the end.
 */
export const daxDirToken = "{daxDir}";
/**
 * Two tiers, DRAM and an FS_DAX file (created unlinked in the run's directory), 1:1; `limit`
 * (`PMEM_SIZE_LIMIT:4G,`) caps the file.
 */
const twoTiers = (limit: string = ""): string =>
  `KIND:DRAM,RATIO:1;KIND:FS_DAX,PATH:${daxDirToken},${limit}RATIO:1;POLICY:STATIC_RATIO`;
/**
 * For the callgrind rows: without a limit the FS_DAX tier reserves address space for twice its
 * filesystem's free space (~130 GB here), more than valgrind maps ("cannot map a file"); 4 GiB
 * (8 GiB reserved) is far above what mixed.c uses and leaves the counts as they were.
 */
const twoTiersValgrind: string = twoTiers("PMEM_SIZE_LIMIT:4G,");
/** C workloads of bench/, each built twice. */
export const programs: readonly string[] = [
  "mixed",
  "xthread",
  "larson",
  "xmalloc",
  "realloc",
  "large",
  "footprint",
  "mbind",
  "mleak",
  "manythreads",
];

/** An allocator under test and how a process gets it. */
export interface Peer {
  name: string;
  /** A competitor (the `best` reference ranges over these), not ours. */
  external: boolean;
  build: "malloc" | "hmalloc";
  /** Library to LD_PRELOAD, if any: an absolute path, or for our libraries (`ours`) a file name
   * in the run's snapshot of the build (bench/out/lib). */
  preload?: string;
  ours?: boolean;
  env: Record<string, string>;
}

export const allPeers: readonly Peer[] = [
  { name: "glibc", external: true, build: "malloc", env: {} },
  {
    name: "jemalloc",
    external: true,
    build: "malloc",
    preload: `${sysLib}/libjemalloc.so.2`,
    env: {},
  },
  {
    name: "mimalloc",
    external: true,
    build: "malloc",
    preload: `${sysLib}/libmimalloc.so.2`,
    env: {},
  },
  {
    name: "tcmalloc",
    external: true,
    build: "malloc",
    preload: `${sysLib}/libtcmalloc_minimal.so.4`,
    env: {},
  },
  { name: "hmalloc", external: false, build: "hmalloc", env: {} },
  {
    name: "memtier",
    external: false,
    build: "malloc",
    preload: "libmemtier.so",
    ours: true,
    env: { MEMKIND_MEM_TIERS: dramTier },
  },
  {
    name: "memtier-2t",
    external: false,
    build: "malloc",
    preload: "libmemtier.so",
    ours: true,
    env: { MEMKIND_MEM_TIERS: twoTiers() },
  },
  {
    name: "memkind",
    external: false,
    build: "malloc",
    preload: `${sysLib}/libmemtier.so.0`,
    env: { MEMKIND_MEM_TIERS: dramTier },
  },
];
const cPeers: readonly string[] = [
  "glibc",
  "jemalloc",
  "mimalloc",
  "tcmalloc",
  "hmalloc",
  "memtier",
];
/** The C peers and our library with two tiers (compared with `memtier`: see `tierTarget`). */
const cPeers2t: readonly string[] = [...cPeers, "memtier-2t"];
const pyPeers: readonly string[] = [
  "glibc",
  "jemalloc",
  "mimalloc",
  "tcmalloc",
  "memtier",
  "memkind",
];

/** How a row's number is obtained. */
export type Kind = "time" | "footprint" | "strace" | "python" | "callgrind";

/** One row of the table: a workload, its arguments, and which printed key is the number. */
export interface RowSpec {
  id: string;
  title: string;
  unit: string;
  reference: string;
  target?: string;
  kind: Kind;
  program: string;
  args: (quick: boolean) => string[];
  key: string;
  reps: number;
  peers: readonly string[];
  /** Extra environment per peer name. */
  env?: Record<string, Record<string, string>>;
  /** callgrind rows: operations in the counted region (instructions per op = total / this). */
  ops?: (quick: boolean) => number;
}

const q = (quick: boolean, small: string, full: string): string => quick ? small : full;

export const rowSpecs: readonly RowSpec[] = [
  ...[1, 2].map((t: number): RowSpec => ({
    id: `mixed-${t}t`,
    title: `mixed 8 B-32 KiB, ${t} thread${t > 1 ? "s" : ""}`,
    unit: "ns/op",
    reference: "best",
    target: "≤ 1.0",
    kind: "time",
    program: "mixed",
    args: (quick: boolean) => [`${t}`, q(quick, "20000", "5000000")],
    key: "ns_per_op",
    reps: 5,
    peers: cPeers2t,
  })),
  {
    id: "xthread",
    title: "producer/consumer (cross-thread free)",
    unit: "ns/block",
    reference: "best",
    target: "≤ 1.0",
    kind: "time",
    program: "xthread",
    args: (quick: boolean) => [q(quick, "20000", "1000000")],
    key: "ns_per_block",
    reps: 5,
    peers: cPeers2t,
  },
  {
    id: "larson",
    title: "larson-like server, 2 threads",
    unit: "ns/op",
    reference: "best",
    target: "≤ 1.1",
    kind: "time",
    program: "larson",
    args: (quick: boolean) => ["2", q(quick, "2", "10"), q(quick, "20000", "2000000")],
    key: "ns_per_op",
    reps: 5,
    peers: cPeers2t,
  },
  {
    id: "xmalloc",
    title: "xmalloc-like, 2+2 threads",
    unit: "ns/block",
    reference: "best",
    target: "≤ 1.1",
    kind: "time",
    program: "xmalloc",
    args: (quick: boolean) => ["2", q(quick, "20000", "1000000")],
    key: "ns_per_block",
    reps: 5,
    peers: cPeers2t,
  },
  {
    id: "threads-32",
    title: "32 threads on 2 cores, mixed + passed blocks",
    unit: "ns/op",
    reference: "glibc",
    target: "≤ 1.0",
    kind: "time",
    program: "manythreads",
    args: (quick: boolean) => ["32", q(quick, "2", "4"), q(quick, "2000", "200000")],
    key: "ns_per_op",
    reps: 3,
    peers: cPeers2t,
  },
  ...(["time", "rss"] as const).map((k: "time" | "rss"): RowSpec => ({
    id: k === "time" ? "mleak" : "mleak-rss",
    title: `short-lived threads leaking blocks, ${k === "time" ? "time" : "peak RSS"}`,
    unit: k === "time" ? "µs/thread" : "KiB",
    reference: "best",
    kind: k === "time" ? "time" : "footprint",
    program: "mleak",
    args: (quick: boolean) => [q(quick, "200", "5000")],
    key: k === "time" ? "us_per_thread" : "peak_rss_kib",
    reps: k === "time" ? 5 : 1,
    peers: cPeers2t,
  })),
  {
    id: "realloc",
    title: "realloc growth 64 B → 1 GiB",
    unit: "ms",
    reference: "best",
    kind: "time",
    program: "realloc",
    args: (quick: boolean) => [q(quick, "4194304", "1073741824")],
    key: "ms_per_growth",
    reps: 3,
    peers: cPeers2t,
  },
  {
    id: "large",
    title: "large 64 KiB-64 MiB alloc/touch/free",
    unit: "µs/op",
    reference: "best",
    kind: "time",
    program: "large",
    args: (quick: boolean) => [q(quick, "4", "60")],
    key: "us_per_op",
    reps: 5,
    peers: cPeers2t,
  },
  {
    id: "rss-1m",
    title: "peak RSS, 1M × 100 B live",
    unit: "KiB",
    reference: "jemalloc",
    target: "≤ 1.1",
    kind: "footprint",
    program: "footprint",
    args: (quick: boolean) => [q(quick, "10000", "1000000"), "100"],
    key: "peak_rss_kib",
    reps: 1,
    peers: cPeers2t,
  },
  ...(["vmsize", "rss"] as const).map((k: "vmsize" | "rss"): RowSpec => ({
    id: `vm-20k-${k}`,
    title: `${k === "vmsize" ? "VmSize" : "RSS"}, 20,000 × 3000 B live`,
    unit: "KiB",
    reference: "best",
    target: "≤ 2",
    kind: "footprint",
    program: "footprint",
    args: (quick: boolean) => [q(quick, "2000", "20000"), "3000"],
    key: `${k}_kib`,
    reps: 1,
    // memtier-2t's VmSize is its FS_DAX reservation (~130 GB of address space, no memory).
    peers: k === "rss" ? cPeers2t : cPeers,
  })),
  {
    id: "mbind",
    title: "mbind calls per GiB (strace)",
    unit: "calls/GiB",
    reference: "none",
    target: "≤ 512",
    kind: "strace",
    program: "mbind",
    args: (quick: boolean) => [q(quick, "67108864", "1073741824")],
    key: "mbind_per_gib",
    reps: 1,
    peers: cPeers,
    env: { hmalloc: { HMALLOC_POLICY: "bind:0" } },
  },
  {
    id: "python-time",
    title: "python3 objects workload, time",
    unit: "s",
    reference: "glibc",
    target: "memtier ≤ 1.05",
    kind: "python",
    program: "py_objects.py",
    args: (quick: boolean) => [q(quick, "0.02", "1.0")],
    key: "seconds",
    reps: 5,
    peers: pyPeers,
  },
  {
    id: "python-rss",
    title: "python3 objects workload, peak RSS",
    unit: "KiB",
    reference: "glibc",
    target: "memtier ≤ 1.05",
    kind: "python",
    program: "py_objects.py",
    args: (quick: boolean) => [q(quick, "0.02", "1.0")],
    key: "peak_rss_kib",
    reps: 5,
    peers: pyPeers,
  },
];

/**
 * The two-tier target for a row that runs memtier-2t, shown beside the row's
 * memtier-2t / memtier ratio: time ≤ 1.10x and peak or current RSS ≤ 1.2x the one-tier number;
 * none for other quantities (VmSize).
 */
export function tierTarget(spec: RowSpec): string | undefined {
  if (!spec.peers.includes("memtier-2t")) return undefined;
  if (spec.key.includes("rss")) return "≤ 1.2";
  return spec.kind === "time" || spec.kind === "callgrind" ? "≤ 1.10" : undefined;
}

/** Rows added by --instructions: callgrind counts over the timed region of the mixed workload. */
export const instructionSpecs: readonly RowSpec[] = [1, 2].map((t: number): RowSpec => ({
  id: `mixed-${t}t-instr`,
  title: `mixed 8 B-32 KiB, ${t} thread${t > 1 ? "s" : ""} (callgrind)`,
  unit: "instr/op",
  reference: "best",
  target: "≤ 1.0",
  kind: "callgrind",
  program: "mixed",
  args: (quick: boolean) => [`${t}`, q(quick, "20000", "300000")],
  key: "instructions",
  reps: 1,
  peers: cPeers2t,
  ops: (quick: boolean) => t * (quick ? 20000 : 300000),
  env: { "memtier-2t": { MEMKIND_MEM_TIERS: twoTiersValgrind } },
}));

/** One group of the Deno FFI rows (bench/ffi_bench.ts). */
export interface FfiSize {
  /** Group label, e.g. "64 B". */
  label: string;
  size: number;
  /** deno bench samples. */
  samples: number;
  /**
   * Operations per sample: small sizes run a batch, since deno bench's per-sample timing and
   * bookkeeping would otherwise be a large part of a ~0.5 µs operation; the runner divides.
   */
  batch: number;
}

/** The Deno FFI groups, shared by bench/ffi_bench.ts and the runner. */
export const ffiSizes: readonly FfiSize[] = [
  { label: "64 B", size: 64, samples: 4_000, batch: 100 },
  { label: "4 KiB", size: 4096, samples: 4_000, batch: 100 },
  { label: "1 MiB", size: 1 << 20, samples: 5_000, batch: 1 },
];
