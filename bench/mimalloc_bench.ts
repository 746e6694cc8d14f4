/**
 * mimalloc-bench against our libraries and the peers (`deno task bench:mimalloc --suite DIR`).
 *
 * The suite is not part of this repository: fetch it yourself
 * (`git clone https://github.com/daanx/mimalloc-bench ~/.cache/tiermem-bench/mimalloc-bench`)
 * and pass its path. This script builds its programs with CMake in `--build` (outside our tree;
 * sh6bench/sh8bench are skipped: their sources are downloaded by the suite's own setup script),
 * runs each program under every peer with `LD_PRELOAD`, thread counts scaled to this machine's
 * cores, in `--rounds` interleaved rounds (every peer once per round, so a slow phase of a shared
 * machine hits all alike), and prints the median wall time and max RSS (`/usr/bin/time`), each
 * as a ratio: time to the fastest of glibc, jemalloc, mimalloc and tcmalloc; RSS to glibc. The
 * last rows are the geomeans.
 *
 * Peers: glibc (no preload), jemalloc, mimalloc, tcmalloc, memkind (Debian's libraries, its
 * libmemtier.so with one DRAM tier), tiermem (our libmemtier.so, one DRAM tier) and tiermem-2t
 * (ours with DRAM + an FS_DAX file tier in /tmp, ratio 1:1).
 *
 * usage: deno run -A bench/mimalloc_bench.ts --suite DIR [--build DIR] [--rounds N]
 *                                             [--programs P,..] [--peers P,..] [--lib DIR]
 *
 * @example
 * ```sh
 * deno run -A bench/mimalloc_bench.ts --suite ~/.cache/tiermem-bench/mimalloc-bench --rounds 3
 * ```
 */
import { parseOptions } from "../scripts/support/options.ts";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { cpus, homedir, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** One program of the suite: its table name, binary and arguments. */
export interface Program {
  name: string;
  binary: string;
  args: string[];
  /**
   * For a program that runs for a fixed time and reports its throughput: how mimalloc-bench's
   * bench.sh turns that output into a "relative time" (its wall time says nothing).
   */
  relativeTime?: (output: string) => number | undefined;
}

/** The first number `pattern` captures in `output`, if any. */
function captured(output: string, pattern: RegExp): number | undefined {
  const m = output.match(pattern);
  return m === null ? undefined : Number(m[1]);
}

/** larson's own "relative time" line (bench.sh: `s/.* time: \([0-9.]*\).*\/\1/`). */
const larsonTime = (out: string): number | undefined => captured(out, / time: ([\d.]+)/);
/** rptest: 2,000,000 / its memory ops per second. */
const rptestTime = (out: string): number | undefined => {
  const ops = captured(out, /\.\.\.(\d+) memory ops/);
  return ops === undefined || ops === 0 ? undefined : 2_000_000 / ops;
};
/** xmalloc-test's `rtime:` line. */
const xmallocTime = (out: string): number | undefined => captured(out, /rtime: ([\d.]+)/);
/** glibc-thread: 10^9 / the iterations it prints first. */
const glibcThreadTime = (out: string): number | undefined => {
  const iterations = captured(out, /^\s*([\d.]+)/);
  return iterations === undefined || iterations === 0 ? undefined : 1e9 / iterations;
};

/** One allocator under test: extra environment (LD_PRELOAD and tier settings). */
export interface Peer {
  name: string;
  env: Record<string, string>;
}

/** Median wall seconds and max RSS (KiB) of one program under one peer. */
export interface Measure {
  seconds: number;
  rssKib: number;
}

const here = dirname(fileURLToPath(import.meta.url));
const systemLibs = "/usr/lib/x86_64-linux-gnu";
/** The peers time ratios are taken against. */
const referencePeers = ["glibc", "jemalloc", "mimalloc", "tcmalloc"];

/**
 * The suite's programs with mimalloc-bench's own arguments (bench.sh), `procs` threads.
 *
 * @example
 * ```ts
 * const programs = suitePrograms("/src/mimalloc-bench", 2);
 * ```
 */
export function suitePrograms(suite: string, procs: number): Program[] {
  const p = String(procs);
  const espresso = join(suite, "bench/espresso/largest.espresso");
  return [
    { name: "cfrac", binary: "cfrac", args: ["17545186520507317056371138836327483792789528"] },
    { name: "espresso", binary: "espresso", args: [espresso] },
    { name: "barnes", binary: "barnes", args: [] },
    { name: "alloc-test1", binary: "alloc-test", args: ["1"] },
    { name: "alloc-testN", binary: "alloc-test", args: [p] },
    {
      name: "larsonN",
      binary: "larson",
      args: ["5", "8", "1000", "5000", "100", "4141", p],
      relativeTime: larsonTime,
    },
    {
      name: "larsonN-sized",
      binary: "larson-sized",
      args: ["5", "8", "1000", "5000", "100", "4141", p],
      relativeTime: larsonTime,
    },
    {
      name: "xmalloc-testN",
      binary: "xmalloc-test",
      args: ["-w", p, "-t", "5", "-s", "64"],
      relativeTime: xmallocTime,
    },
    { name: "cache-thrash1", binary: "cache-thrash", args: ["1", "1000", "1", "2000000", p] },
    { name: "cache-thrashN", binary: "cache-thrash", args: [p, "1000", "1", "2000000", p] },
    { name: "cache-scratch1", binary: "cache-scratch", args: ["1", "1000", "1", "2000000", p] },
    { name: "cache-scratchN", binary: "cache-scratch", args: [p, "1000", "1", "2000000", p] },
    { name: "malloc-large", binary: "malloc-large", args: [] },
    { name: "mstressN", binary: "mstress", args: [p, "50", "25"] },
    // Threads far beyond the cores (issue 13's "test-stress, 32 threads, scale 50, 50 rounds").
    { name: "mstress32", binary: "mstress", args: ["32", "50", "50"] },
    { name: "mleak10", binary: "mleak", args: ["5"] },
    { name: "mleak100", binary: "mleak", args: ["50"] },
    {
      name: "rptestN",
      binary: "rptest",
      args: [p, "0", "1", "2", "500", "1000", "100", "8", "16000"],
      relativeTime: rptestTime,
    },
    { name: "glibc-simple", binary: "glibc-simple", args: [] },
    { name: "glibc-thread", binary: "glibc-thread", args: [p], relativeTime: glibcThreadTime },
  ];
}

/**
 * The peers, given our library directory and a directory for the FS_DAX tier's file.
 *
 * @example
 * ```ts
 * const peers = allPeers("zig-src/zig-out/lib", "/tmp/dax");
 * ```
 */
export function allPeers(libDir: string, daxDir: string): Peer[] {
  const ours = join(libDir, "libmemtier.so");
  return [
    { name: "glibc", env: {} },
    { name: "jemalloc", env: { LD_PRELOAD: `${systemLibs}/libjemalloc.so.2` } },
    { name: "mimalloc", env: { LD_PRELOAD: `${systemLibs}/libmimalloc.so.2` } },
    { name: "tcmalloc", env: { LD_PRELOAD: `${systemLibs}/libtcmalloc_minimal.so.4` } },
    {
      name: "memkind",
      env: {
        LD_PRELOAD: `${systemLibs}/libmemtier.so`,
        MEMKIND_MEM_TIERS: "KIND:DRAM,RATIO:1",
      },
    },
    { name: "tiermem", env: { LD_PRELOAD: ours } },
    {
      name: "tiermem-2t",
      env: {
        LD_PRELOAD: ours,
        MEMKIND_MEM_TIERS:
          `KIND:DRAM,RATIO:1;KIND:FS_DAX,PATH:${daxDir},RATIO:1;POLICY:STATIC_RATIO`,
      },
    },
  ];
}

/** Builds the suite's programs into `build` unless they are there already. */
async function buildSuite(suite: string, build: string): Promise<void> {
  if (existsSync(join(build, "glibc-thread"))) return;
  mkdirSync(build, { recursive: true });
  // APPLE=ON only skips sh6bench/sh8bench, whose sources the suite downloads separately.
  await run("cmake", [join(suite, "bench"), "-DCMAKE_BUILD_TYPE=Release", "-DAPPLE=ON"], build);
  await run("make", [`-j${cpus().length}`], build);
}

async function run(cmd: string, args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command(cmd, { args, cwd, stdout: "null", stderr: "inherit" })
    .output();
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")} failed in ${cwd}`);
}

/**
 * One run of `program` under `peer`: wall seconds (or the program's relative time, for those
 * that run for a fixed time) and max RSS from /usr/bin/time.
 */
async function measureOnce(build: string, program: Program, peer: Peer): Promise<Measure> {
  const out = await new Deno.Command("/usr/bin/time", {
    args: ["-f", "TIME %e %M", join(build, program.binary), ...program.args],
    cwd: build,
    env: peer.env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stderr);
  const match = text.match(/TIME ([\d.]+) (\d+)/);
  if (!out.success || match === null) {
    throw new Error(`${program.name} under ${peer.name} failed:\n${text.slice(-2000)}`);
  }
  let seconds = Number(match[1]);
  if (program.relativeTime !== undefined) {
    const output = new TextDecoder().decode(out.stdout) + text;
    const relative = program.relativeTime(output);
    if (relative === undefined) {
      throw new Error(`${program.name} under ${peer.name}: no throughput in its output`);
    }
    seconds = relative;
  }
  return { seconds, rssKib: Number(match[2]) };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function geomean(values: number[]): number {
  return Math.exp(values.reduce((sum, v) => sum + Math.log(v), 0) / values.length);
}

/**
 * The table: per program, time ratio to the fastest reference peer and RSS ratio to glibc,
 * then the geomeans; absolute numbers in a second table. Without any reference peer (say
 * `--peers tiermem,tiermem-2t`), both ratios are to the first peer.
 *
 * @example
 * ```ts
 * console.log(formatTable(results, ["glibc", "tiermem"]));
 * ```
 */
export function formatTable(results: Map<string, Map<string, Measure>>, peers: string[]): string {
  const lines: string[] = [];
  const pad = (s: string, n: number) => s.padStart(n);
  const header = (title: string) =>
    lines.push(pad(title, 16) + peers.map((p) => pad(p, 11)).join(""));
  const timeRatios = new Map<string, number[]>(peers.map((p) => [p, []]));
  const rssRatios = new Map<string, number[]>(peers.map((p) => [p, []]));
  const baseline: string | undefined = peers.some((p) => referencePeers.includes(p))
    ? undefined
    : peers[0];
  header(baseline === undefined ? "time / fastest" : `time / ${baseline}`);
  for (const [program, row] of results) {
    const refs = baseline === undefined
      ? referencePeers.filter((p) => row.has(p)).map((p) => row.get(p)!.seconds)
      : [row.get(baseline)?.seconds ?? 0.01];
    const fastest = Math.max(Math.min(...refs), 0.01);
    const rssReference = row.get(baseline ?? "glibc")?.rssKib ?? 1;
    lines.push(
      pad(program, 16) + peers.map((p) => {
        const m = row.get(p);
        if (m === undefined) return pad("-", 11);
        const ratio = Math.max(m.seconds, 0.01) / fastest;
        timeRatios.get(p)!.push(ratio);
        rssRatios.get(p)!.push(m.rssKib / rssReference);
        return pad(ratio.toFixed(2), 11);
      }).join(""),
    );
  }
  lines.push(
    pad("geomean time", 16) +
      peers.map((p) => pad(geomean(timeRatios.get(p)!).toFixed(2), 11)).join(""),
  );
  lines.push(
    pad("geomean RSS", 16) +
      peers.map((p) => pad(geomean(rssRatios.get(p)!).toFixed(2), 11)).join(""),
  );
  lines.push("");
  header("s / max RSS MiB");
  for (const [program, row] of results) {
    lines.push(
      pad(program, 16) + peers.map((p) => {
        const m = row.get(p);
        return pad(
          m === undefined ? "-" : `${m.seconds.toFixed(2)}/${(m.rssKib / 1024).toFixed(0)}`,
          11,
        );
      }).join(""),
    );
  }
  return lines.join("\n");
}

async function main(): Promise<void> {
  const { values } = parseOptions("mimalloc_bench", {
    options: {
      suite: { type: "string", default: Deno.env.get("MIMALLOC_BENCH") },
      build: { type: "string", default: join(homedir(), ".cache/tiermem-bench/build") },
      rounds: { type: "string", default: "3" },
      programs: { type: "string" },
      peers: { type: "string" },
      lib: { type: "string", default: resolve(here, "../zig-src/zig-out/lib") },
    },
  });
  if (values.suite === undefined || !existsSync(join(values.suite, "bench/CMakeLists.txt"))) {
    console.error(
      "mimalloc_bench: --suite DIR must name a mimalloc-bench checkout " +
        "(git clone https://github.com/daanx/mimalloc-bench DIR)",
    );
    Deno.exit(2);
  }
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) {
    console.error(`mimalloc_bench: --rounds: bad value "${values.rounds}": expected a count`);
    Deno.exit(2);
  }
  if (!existsSync(join(values.lib, "libmemtier.so"))) {
    console.error(
      `mimalloc_bench: --lib: no libmemtier.so in "${values.lib}" (bash scripts/build.sh)`,
    );
    Deno.exit(2);
  }
  const build = resolve(values.build);
  await buildSuite(resolve(values.suite), build);
  const dax = mkdtempSync(join(tmpdir(), "tiermem-dax-"));
  try {
    let programs = suitePrograms(resolve(values.suite), cpus().length);
    let peers = allPeers(values.lib, dax);
    if (values.programs !== undefined) {
      const want = values.programs.split(",");
      for (const w of want) {
        if (!programs.some((p) => p.name === w)) {
          console.error(`mimalloc_bench: --programs: unknown program "${w}"`);
          Deno.exit(2);
        }
      }
      programs = programs.filter((p) => want.includes(p.name));
    }
    if (values.peers !== undefined) {
      const want = values.peers.split(",");
      for (const w of want) {
        if (!peers.some((p) => p.name === w)) {
          console.error(`mimalloc_bench: --peers: unknown peer "${w}"`);
          Deno.exit(2);
        }
      }
      peers = peers.filter((p) => want.includes(p.name));
    }
    const samples = new Map<string, Map<string, Measure[]>>();
    for (let round = 0; round < rounds; round++) {
      for (const program of programs) {
        const row = samples.get(program.name) ?? new Map<string, Measure[]>();
        samples.set(program.name, row);
        for (const peer of peers) {
          const m = await measureOnce(build, program, peer);
          row.set(peer.name, [...(row.get(peer.name) ?? []), m]);
          console.error(
            `round ${round + 1} ${program.name} ${peer.name}: ${m.seconds} s ${m.rssKib} KiB`,
          );
        }
      }
    }
    const results = new Map<string, Map<string, Measure>>();
    for (const [program, row] of samples) {
      results.set(
        program,
        new Map(
          [...row].map((
            [peer, ms],
          ) => [peer, {
            seconds: median(ms.map((m) => m.seconds)),
            rssKib: median(ms.map((m) => m.rssKib)),
          }]),
        ),
      );
    }
    console.log(formatTable(results, peers.map((p) => p.name)));
  } finally {
    rmSync(dax, { recursive: true, force: true });
  }
}

if (import.meta.main) await main();
