/**
 * Hardening (issue 6), short CI versions: `tests/c/stress.c` through the hmalloc API and,
 * as a plain malloc program, under libmemtier.so — threads with cross-thread frees, realloc
 * chains and checksummed contents; RSS back near its baseline; fork/posix_spawn/vfork+exec
 * while other threads allocate; foreign pointers under the interposer; out of memory under
 * an address-space limit; the hmalloc build under valgrind memcheck with 0 errors.
 * The long versions: `bash tests/stress/run-long.sh`.
 */

import assert from "node:assert/strict";
import { hmallocLibraryStatus, includeDir, libDir, outDir } from "../support/c_programs.ts";
import { repoRoot } from "../support/vm.ts";

const decoder = new TextDecoder();
const inCI: boolean = Deno.env.get("CI") === "true";
const memtierLib = `${libDir}/libmemtier.so`;

/** Which allocator a run goes through. */
export type Api = "hmalloc" | "memtier" | "memtier+fsdax";

interface Outcome {
  code: number;
  signal: Deno.Signal | null;
  stdout: string;
  stderr: string;
}

/** One line of `stress threads`. */
export interface ThreadsReport {
  api: string;
  threads: number;
  ops: number;
  rss_before_kib: number;
  rss_peak_kib: number;
  rss_after_kib: number;
  mapped_bytes: number;
  checked_blocks: number;
}

const builds = new Map<string, Promise<string>>();

/** Compiles tests/c/stress.c for the hmalloc API or for plain malloc (once per process). */
export function buildStress(variant: "hmalloc" | "malloc"): Promise<string> {
  let exe = builds.get(variant);
  if (exe === undefined) {
    exe = compileStress(variant);
    builds.set(variant, exe);
  }
  return exe;
}

async function compileStress(variant: "hmalloc" | "malloc"): Promise<string> {
  const status = hmallocLibraryStatus();
  if (!status.ok) throw new Error(status.reason);
  await Deno.mkdir(outDir, { recursive: true });
  const exe = `${outDir}/stress_${variant}`;
  let include = includeDir;
  try {
    Deno.statSync(`${includeDir}/hmalloc.h`);
  } catch {
    include = `${repoRoot}/zig-src/include`;
  }
  const common = ["-O2", "-g", "-Wall", "-Wextra", "-Werror", "-std=gnu11", "-pthread"];
  const args = variant === "hmalloc"
    ? [...common, "-DSTRESS_HMALLOC", "-I", include, "-o", exe, `${repoRoot}/tests/c/stress.c`]
      .concat(["-L", libDir, "-lhmalloc", `-Wl,-rpath,${libDir}`])
    : [...common, "-o", exe, `${repoRoot}/tests/c/stress.c`];
  const out = await new Deno.Command("gcc", { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) throw new Error(`gcc stress.c (${variant}):\n${decoder.decode(out.stderr)}`);
  return exe;
}

/** Runs `stress ARGS` through `api`; `wrap` prefixes a command (e.g. valgrind). */
export async function runStress(
  api: Api,
  args: string[],
  wrap: string[] = [],
): Promise<Outcome> {
  const exe = await buildStress(api === "hmalloc" ? "hmalloc" : "malloc");
  const env: Record<string, string> = {};
  let dax: string | undefined;
  if (api !== "hmalloc") env.LD_PRELOAD = memtierLib;
  if (api === "memtier+fsdax") {
    dax = await Deno.makeTempDir({ prefix: "tiermem-fsdax-" });
    env.MEMKIND_MEM_TIERS = `KIND:DRAM,RATIO:1;KIND:FS_DAX,PATH:${dax},RATIO:4;POLICY:STATIC_RATIO`;
  }
  const cmd = [...wrap, exe, ...args];
  try {
    const out = await new Deno.Command(cmd[0], {
      args: cmd.slice(1),
      env,
      stdout: "piped",
      stderr: "piped",
    }).output();
    return {
      code: out.code,
      signal: out.signal,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
    };
  } finally {
    if (dax !== undefined) await Deno.remove(dax, { recursive: true });
  }
}

/**
 * "Near baseline" after every block is freed (the last ones by a thread that then exits): at
 * most 20 MiB per pool + 5% of the peak's growth above the baseline. The fixed part is what the
 * allocator keeps by design once all is freed: up to 2 MiB of free pages not yet purged
 * (pool.zig `dirty_max_pages` + `hard_extra_pages`), ~64 KiB (at least two) empty slabs per size
 * class, all bin shards together (slab.zig),
 * chunk headers; measured +6.6 to +13 MiB for 1-8 threads. The proportional part is what grows
 * with the peak: chunk metadata, glibc's cache of exited threads' stacks (measured +19 MiB at
 * 64 threads with a 288 MiB peak). glibc's malloc keeps 129 MiB of a 181 MiB peak in the same
 * run: the rule tells "returned" from "kept".
 */
export function rssSlackKib(report: ThreadsReport, pools: number = 1): number {
  return pools * 20 * 1024 + 0.05 * Math.max(0, report.rss_peak_kib - report.rss_before_kib);
}

/**
 * Pools the run's blocks come from: memtier with an FS_DAX tier has two (DRAM and the file tier),
 * and each keeps its own empty slabs (up to 3.2 MiB over the 41 classes), dirty pages (up to
 * 1 MiB) and partly used chunks once all is freed. Measured with 8 threads: 10-27 MiB kept, most of
 * it in the file tier's mapping, against 7-14 MiB for memtier with DRAM alone. Since the
 * allocator changes of 2026-12-07's third stop, 8 threads with two tiers keep 22-37 MiB (11-24 MiB
 * before, same machine, same day): the per-pool constant went from 16 to 20 MiB. Not located:
 * forcing a single bin shard, with per-bin empty-slab budgets, still kept 22-32 MiB; noted on
 * issue 13. Located since: each pool still had 11-12% of its peak in page runs after all was freed
 * (empty slabs kept for their classes), above the 1/8 line under which a pool counted as shrinking,
 * so up to 26 MiB per pool stayed dirty; with the line at 1/4 (and RSS read after stress.c's
 * settle_after_shrink), two tiers keep 25-33 MiB at 1:1 (35-85 before), one tier 16-18 MiB: the
 * pages in runs, 1 MiB dirty, the huge-mapping cache's 10 MiB floor (for a second), metadata.
 */
function poolsOf(api: Api): number {
  return api === "memtier+fsdax" ? 2 : 1;
}

function parseThreads(out: Outcome): ThreadsReport {
  const line = out.stdout.trim().split("\n").reverse().find((l: string) => l.startsWith("{"));
  assert(line !== undefined, `no JSON line: ${out.stdout}${out.stderr}`);
  return JSON.parse(line) as ThreadsReport;
}

function libsBuilt(): string | undefined {
  const status = hmallocLibraryStatus();
  if (!status.ok) return status.reason;
  try {
    Deno.statSync(memtierLib);
  } catch {
    return `${memtierLib} not built`;
  }
  return undefined;
}

const notBuilt = libsBuilt();

const threadRuns: readonly { api: Api; threads: number; ops: number }[] = [
  { api: "hmalloc", threads: 2, ops: 20000 },
  { api: "hmalloc", threads: 8, ops: 10000 },
  { api: "hmalloc", threads: 64, ops: 1000 },
  { api: "memtier", threads: 8, ops: 10000 },
  { api: "memtier", threads: 64, ops: 1000 },
  { api: "memtier+fsdax", threads: 8, ops: 10000 },
];

for (const run of threadRuns) {
  Deno.test({
    name:
      `stress ${run.api}: ${run.threads} threads x ${run.ops} mixed ops, cross-thread frees and realloc chains keep every checksum; RSS returns near baseline`,
    ignore: notBuilt !== undefined,
    async fn() {
      const out = await runStress(run.api, ["threads", `${run.threads}`, `${run.ops}`]);
      assert.equal(out.code, 0, `${out.stdout}${out.stderr}`);
      const r = parseThreads(out);
      assert.equal(r.threads, run.threads);
      assert(r.checked_blocks > run.threads * run.ops / 4, `few blocks checked: ${out.stdout}`);
      const grown = r.rss_after_kib - r.rss_before_kib;
      const slack = rssSlackKib(r, poolsOf(run.api));
      assert(
        grown <= slack,
        `RSS ${r.rss_before_kib} -> peak ${r.rss_peak_kib} -> ${r.rss_after_kib} KiB after freeing all: +${grown} KiB > ${
          slack.toFixed(0)
        }`,
      );
    },
  });
}

const forkRuns: readonly { api: Api; args: string[]; expect: RegExp; what: string }[] = [
  {
    api: "hmalloc",
    args: ["fork", "4", "50"],
    expect: /^ok fork 50$/m,
    what:
      "50 forks while 4 threads allocate: each child frees a pre-fork block, allocates and exits 0",
  },
  {
    api: "hmalloc",
    args: ["spawn", "4", "30"],
    expect: /^ok spawn 30$/m,
    what: "30 posix_spawn and 30 vfork+execve while 4 threads allocate, each child exits 0",
  },
  {
    api: "memtier",
    args: ["spawn", "4", "30"],
    expect: /^ok spawn 30$/m,
    what: "30 posix_spawn and 30 vfork+execve while 4 threads allocate, each child exits 0",
  },
  {
    api: "memtier+fsdax",
    args: ["spawn", "4", "20"],
    expect: /^ok spawn 20$/m,
    what: "20 posix_spawn and 20 vfork+execve while 4 threads allocate, each child exits 0",
  },
];

for (const run of forkRuns) {
  Deno.test({
    name: `${run.api}: ${run.what}`,
    ignore: notBuilt !== undefined,
    async fn() {
      const out = await runStress(run.api, run.args);
      assert.equal(out.code, 0, `${out.stdout}${out.stderr}`);
      assert.match(out.stdout, run.expect);
    },
  });
}

const stackRuns: readonly { api: Api; bytes: number; knownBug?: string }[] = [
  { api: "hmalloc", bytes: 32768 },
  { api: "memtier", bytes: 32768 },
  // PTHREAD_STACK_MIN: the placement path's frames must fit (policy.zig keeps the ~11 KiB of
  // weighted-interleave emulation out of apply's frame).
  { api: "hmalloc", bytes: 16384 },
  { api: "memtier", bytes: 16384 },
];

for (const run of stackRuns) {
  Deno.test({
    name: `${run.knownBug ?? ""}${run.api}: a thread with a ${
      run.bytes / 1024
    } KiB stack allocates 8 MiB (new chunks) and frees it (node's inspector thread has 32 KiB)`,
    ignore: notBuilt !== undefined || run.knownBug !== undefined,
    async fn() {
      const out = await runStress(run.api, ["small_stacks", `${run.bytes}`]);
      assert.equal(out.code, 0, `signal ${out.signal}: ${out.stdout}${out.stderr}`);
      assert.match(out.stdout, new RegExp(`^ok small_stacks ${run.bytes}$`, "m"));
    },
  });
}

Deno.test({
  name:
    "memtier: free() of a static buffer, an interior static address and a stack address is ignored (glibc aborts)",
  ignore: notBuilt !== undefined,
  async fn() {
    const out = await runStress("memtier", ["foreign_free"]);
    assert.equal(out.code, 0, `${out.stdout}${out.stderr}`);
    assert.match(out.stdout, /^ok foreign_free$/m);
  },
});

Deno.test({
  name:
    "memtier: realloc() of a static buffer ends in one line naming realloc, then SIGABRT (like glibc)",
  ignore: notBuilt !== undefined,
  async fn() {
    const out = await runStress("memtier", ["foreign_realloc"]);
    assert.equal(out.signal, "SIGABRT", `code ${out.code}: ${out.stdout}${out.stderr}`);
    assert.match(
      out.stderr,
      /^memtier: realloc\(0x[0-9a-f]+\): invalid pointer: not allocated by /m,
    );
    assert.equal(out.stderr.trim().split("\n").length, 1, out.stderr);
    assert(!out.stdout.includes("not detected"), out.stdout);
  },
});

for (const api of ["hmalloc", "memtier"] as const) {
  Deno.test({
    name:
      `${api}: under a 256 MiB address-space limit, 1 MiB, 4 KiB and 64 B blocks run out with NULL + ENOMEM (never MAP_FAILED), and after freeing the program allocates again`,
    ignore: notBuilt !== undefined,
    async fn() {
      const out = await runStress(api, ["oom", "256"]);
      assert.equal(out.code, 0, `${out.stdout}${out.stderr}`);
      assert.match(out.stdout, /^ok oom \d+$/m);
    },
  });
}

function haveValgrind(): boolean {
  try {
    return new Deno.Command("valgrind", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

const valgrindMissing = !haveValgrind();
const valgrindRuns: readonly string[][] = [
  ["threads", "4", "3000"],
  ["fork", "2", "5"],
  ["spawn", "2", "5"],
  ["oom", "128"],
];

for (const args of valgrindRuns) {
  Deno.test({
    name: `valgrind memcheck, hmalloc API: stress ${args.join(" ")} has 0 errors (no suppressions)`,
    // CI installs valgrind (scripts/install-deps.sh): there a missing valgrind fails.
    ignore: notBuilt !== undefined || (valgrindMissing && !inCI),
    async fn() {
      const out = await runStress("hmalloc", args, [
        "valgrind",
        "--error-exitcode=99",
        "--child-silent-after-fork=yes",
      ]);
      assert.equal(out.code, 0, `valgrind exit ${out.code}:\n${out.stderr.slice(-4000)}`);
      assert.match(out.stderr, /ERROR SUMMARY: 0 errors from 0 contexts \(suppressed: 0 from 0\)/);
      assert.match(out.stdout, /^(ok|\{)/m);
    },
  });
}
