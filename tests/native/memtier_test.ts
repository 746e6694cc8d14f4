/**
 * libmemtier.so through LD_PRELOAD, for real (issue 4): the configuration matrix, the whole
 * malloc family, malloc(0)/free(NULL), the byte split of STATIC_RATIO and DYNAMIC_THRESHOLD,
 * FS_DAX on tmpfs with a size limit and fallback, the program's last output, fork from a
 * threaded program, and real programs (python3, grep, git, node, deno, sqlite3) giving the same
 * output with and without the interposer.
 *
 * The C side is `tests/c/memtier_probe.c` (plain C, no hmalloc). FS_DAX tiers live in a fresh
 * directory under /dev/shm (tmpfs), removed at the end.
 */
import assert from "node:assert/strict";
import { buildCProgram, missingLibrary } from "../support/c_programs.ts";
import { repoRoot } from "../support/vm.ts";
import { parseTierSpec } from "../../lib/tier_spec.ts";

const LIB = `${repoRoot}/zig-src/zig-out/lib/libmemtier.so`;
const libraryMissing = missingLibrary(LIB);
if (libraryMissing) console.log(`memtier tests skipped: ${libraryMissing}`);
const ignore = libraryMissing !== false;

const fsDaxDir: string = ignore ? "/dev/shm" : Deno.makeTempDirSync({
  dir: "/dev/shm",
  prefix: "memtier_test",
});
globalThis.addEventListener("unload", () => {
  if (fsDaxDir !== "/dev/shm") Deno.removeSync(fsDaxDir, { recursive: true });
});

const DRAM_ONLY = "KIND:DRAM,RATIO:1;POLICY:STATIC_RATIO";
const DRAM_FSDAX = `KIND:DRAM,RATIO:1;KIND:FS_DAX,PATH:${fsDaxDir},RATIO:4;POLICY:STATIC_RATIO`;
/** One tier that is not DRAM: malloc's plain path through a pool other than the default. */
const FSDAX_ONLY = `KIND:FS_DAX,PATH:${fsDaxDir},RATIO:1;POLICY:STATIC_RATIO`;
const realProgramConfigs: readonly { name: string; tiers: string }[] = [
  { name: "DRAM only", tiers: DRAM_ONLY },
  { name: "DRAM:1 + FS_DAX:4", tiers: DRAM_FSDAX },
];
const configs: readonly { name: string; tiers: string }[] = [
  ...realProgramConfigs,
  { name: "FS_DAX only", tiers: FSDAX_ONLY },
];

interface Result {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout's raw bytes (to look for NULs). */
  raw: Uint8Array;
}

/** The environment a test program gets: ours (PATH, HOME, ...) minus any tier variable. */
function cleanEnv(): Record<string, string> {
  const env = Deno.env.toObject();
  for (const name of Object.keys(env)) {
    if (name.startsWith("MEMKIND_") || name === "LD_PRELOAD") delete env[name];
  }
  return env;
}

/** Runs `cmd args` with `extra` env (LD_PRELOAD etc.); `preload` false runs it bare. */
async function exec(
  cmd: string,
  args: readonly string[],
  extra: Record<string, string> = {},
  opts: { cwd?: string } = {},
): Promise<Result> {
  const out = await new Deno.Command(cmd, {
    args: [...args],
    env: { ...cleanEnv(), ...extra },
    clearEnv: true,
    cwd: opts.cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array): string => new TextDecoder().decode(b);
  return {
    code: out.code,
    stdout: decode(out.stdout),
    stderr: decode(out.stderr),
    raw: out.stdout,
  };
}

/** The environment that puts a program under libmemtier with `tiers` (null: unset). */
function under(tiers: string | null, more: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = { LD_PRELOAD: LIB, ...more };
  if (tiers !== null) env.MEMKIND_MEM_TIERS = tiers;
  return env;
}

let probePath: Promise<string> | undefined;
function probe(): Promise<string> {
  probePath ??= buildCProgram("memtier_probe", { hmalloc: false, extra: ["-pthread"] });
  return probePath;
}

async function runProbe(args: string[], env: Record<string, string>): Promise<Result> {
  return await exec(await probe(), args, env);
}

/** One exit-summary line per tier (log level 1). */
interface TierSummary {
  kind: string;
  bytesNow: number;
  bytesPeak: number;
  allocations: number;
  fallbacks: number;
}

function summary(stderr: string): TierSummary[] {
  const re =
    /MEMKIND_MEM_TIERING_LOG_INFO: tier (\d+) (\w+): (-?\d+) bytes now, (-?\d+) bytes peak, (\d+) allocations, (\d+) fallbacks/g;
  const tiers: TierSummary[] = [];
  for (const m of stderr.matchAll(re)) {
    tiers[Number(m[1])] = {
      kind: m[2],
      bytesNow: Number(m[3]),
      bytesPeak: Number(m[4]),
      allocations: Number(m[5]),
      fallbacks: Number(m[6]),
    };
  }
  if (tiers.length === 0) throw new Error(`no summary in stderr:\n${stderr}`);
  return tiers;
}

function expectOk(r: Result, what: string): void {
  assert.equal(r.code, 0, `${what}: exit ${r.code}\nstderr: ${r.stderr}`);
}

// ---- the configuration matrix -----------------------------------------------------

interface SpecCase {
  name: string;
  tiers: string;
  thresholds: string | null;
  message?: string;
  expect?: { tiers: { kind: string; path: string }[] };
}

const cases: SpecCase[] = JSON.parse(
  Deno.readTextFileSync(`${repoRoot}/zig-src/src/testdata/tier_spec_cases.json`),
);

Deno.test({
  name: "every invalid configuration of the shared table: one exact line on stderr, non-zero exit",
  ignore,
  fn: async () => {
    const invalid = cases.filter((c: SpecCase) => c.message !== undefined);
    assert.ok(invalid.length >= 90, `only ${invalid.length} invalid cases`);
    for (const c of invalid) {
      const env = under(c.tiers);
      if (c.thresholds !== null) env.MEMKIND_MEM_THRESHOLDS = c.thresholds;
      const r = await runProbe(["freenull", "0"], env);
      assert.equal(r.stderr, `${c.message}\n`, c.name);
      assert.notEqual(r.code, 0, c.name);
      assert.equal(r.stdout, "", `${c.name}: the program ran`);
    }
  },
});

Deno.test({
  name: "every valid configuration of the shared table runs the program (FS_DAX paths on tmpfs)",
  ignore,
  fn: async () => {
    let ran = 0;
    for (const c of cases.filter((x: SpecCase) => x.expect !== undefined)) {
      let tiers = c.tiers;
      for (const t of c.expect?.tiers ?? []) {
        if (t.kind === "FS_DAX") tiers = tiers.replace(`PATH:${t.path}`, `PATH:${fsDaxDir}`);
      }
      const again = parseTierSpec(tiers, c.thresholds);
      if (!again.ok || again.spec.tiers.some((t) => t.kind === "FS_DAX" && t.path !== fsDaxDir)) {
        continue; // a PATH that cannot be rewritten alone (it is what the case is about)
      }
      // This machine has no memory-only node: KMEM_DAX binds to node 0 instead.
      const env = under(tiers, { MEMKIND_DAX_KMEM_NODES: "0" });
      if (c.thresholds !== null) env.MEMKIND_MEM_THRESHOLDS = c.thresholds;
      const r = await runProbe(["freenull", "0"], env);
      assert.equal(r.stdout, "freenull 0\n", `${c.name}: ${r.stderr}`);
      assert.equal(r.stderr, "", c.name);
      expectOk(r, c.name);
      ran++;
    }
    assert.ok(ran >= 12, `only ${ran} valid cases ran`);
  },
});

// memkind 1.14 segfaults with no message on each of these.
const referenceCrashes: { tiers: string; thresholds?: string; line: string }[] = [
  {
    tiers: "KIND:DRAM,RATIO",
    line: `MEMKIND_MEM_TIERS: bad token "RATIO" in "KIND:DRAM,RATIO": missing value`,
  },
  {
    tiers: `KIND:FS_DAX,PATH:/dev/shm,RATIO:1,PMEM_SIZE_LIMIT:1;POLICY:STATIC_RATIO`,
    line:
      `MEMKIND_MEM_TIERS: bad token "1" in "KIND:FS_DAX,PATH:/dev/shm,RATIO:1,PMEM_SIZE_LIMIT:1": ` +
      `below the minimum 16M (0 = unlimited)`,
  },
  {
    tiers: `KIND:FS_DAX,PATH:/dev/shm,RATIO:1,PMEM_SIZE_LIMIT;POLICY:STATIC_RATIO`,
    line: `MEMKIND_MEM_TIERS: bad token "PMEM_SIZE_LIMIT" in "KIND:FS_DAX,PATH:/dev/shm,RATIO:1,` +
      `PMEM_SIZE_LIMIT": missing value`,
  },
  {
    tiers: "KIND:DRAM,RATIO:1;KIND:FS_DAX,PATH:/dev/shm,RATIO:1;POLICY:DYNAMIC_THRESHOLD",
    thresholds: "INIT_VAL",
    line: `MEMKIND_MEM_THRESHOLDS: bad value "INIT_VAL": missing value`,
  },
  {
    tiers: "KIND:DRAM,RATIO:1;KIND:FS_DAX,PATH:/dev/shm,RATIO:1;KIND:FS_DAX,PATH:/tmp,RATIO:1;" +
      "POLICY:DYNAMIC_THRESHOLD",
    thresholds: "INIT_VAL:1K;",
    line: `MEMKIND_MEM_THRESHOLDS: bad token "" in "INIT_VAL:1K;": empty item`,
  },
];

for (const c of referenceCrashes) {
  Deno.test({
    name: `memkind's crash ${
      JSON.stringify(c.thresholds ?? c.tiers)
    }: one line naming the token here`,
    ignore,
    fn: async () => {
      const env = under(c.tiers);
      if (c.thresholds !== undefined) env.MEMKIND_MEM_THRESHOLDS = c.thresholds;
      const r = await runProbe(["freenull", "0"], env);
      assert.equal(r.stderr, `MEMKIND_MEM_TIERING_LOG_ERROR: ${c.line}\n`);
      assert.notEqual(r.code, 0);
      assert.notEqual(r.code, 128 + 11, "SIGSEGV");
      assert.equal(r.stdout, "");
    },
  });
}

// ---- the malloc family ------------------------------------------------------------

for (const config of configs) {
  Deno.test({
    name: `${config.name}: every malloc-family function's block can be freed with free()`,
    ignore,
    fn: async () => {
      const r = await runProbe(["family"], under(config.tiers));
      expectOk(r, "family");
      assert.equal(r.stdout, "family ok\n");
    },
  });
}

Deno.test({
  name: "malloc(0) returns unique non-NULL blocks (100000 live at once)",
  ignore,
  fn: async () => {
    for (const config of configs) {
      const r = await runProbe(["zero", "100000"], under(config.tiers));
      expectOk(r, config.name);
      assert.equal(r.stdout, "zero ok 100000\n");
    }
  },
});

Deno.test({
  name: "free(NULL) allocates nothing: a million calls leave the allocation count unchanged",
  ignore,
  fn: async () => {
    const counts: number[] = [];
    for (const n of ["0", "1000000"]) {
      const r = await runProbe(
        ["freenull", n],
        under(DRAM_FSDAX, { MEMKIND_MEM_TIERING_LOG_LEVEL: "1" }),
      );
      expectOk(r, `freenull ${n}`);
      counts.push(summary(r.stderr).reduce((s: number, t: TierSummary) => s + t.allocations, 0));
    }
    assert.equal(counts[1], counts[0]);
  },
});

for (const config of configs) {
  Deno.test({
    name:
      `${config.name}: C++ operator new and delete (all 9 forms probed) are the interposer's; aligned, sized, nothrow and throwing forms behave as the standard says`,
    ignore,
    fn: async () => {
      const exe = await buildCProgram("cxx_operators", {
        hmalloc: false,
        cxx: true,
        extra: ["-fsized-deallocation", "-ldl"],
      });
      const r = await exec(exe, ["libmemtier"], under(config.tiers));
      expectOk(r, "cxx_operators");
      assert.equal(r.stdout, "cxx ok 9\n");
    },
  });
}

// ---- the byte split -----------------------------------------------------------------

/** FS_DAX bytes / DRAM bytes from the summary, and its deviation from 4 in percent. */
async function split(tiers: string, thresholds?: string): Promise<{ ratio: number; off: number }> {
  const env = under(tiers, { MEMKIND_MEM_TIERING_LOG_LEVEL: "1" });
  if (thresholds !== undefined) env.MEMKIND_MEM_THRESHOLDS = thresholds;
  const r = await runProbe(["ratio", "96"], env);
  expectOk(r, "ratio");
  const [dram, fsDax] = summary(r.stderr);
  assert.equal(dram.kind, "DRAM");
  assert.equal(fsDax.kind, "FS_DAX");
  assert.ok(dram.bytesNow + fsDax.bytesNow >= 96 * 2 ** 20, "everything stays live");
  const ratio = fsDax.bytesNow / dram.bytesNow;
  const off = (100 * Math.abs(ratio - 4)) / 4;
  console.log(`  FS_DAX/DRAM = ${ratio.toFixed(4)} (${off.toFixed(2)}% from 4)`);
  return { ratio, off };
}

Deno.test({
  name: "STATIC_RATIO DRAM:1 + FS_DAX:4: 96 MiB of mixed sizes split 1:4 within 2%",
  ignore,
  fn: async () => {
    const { off } = await split(DRAM_FSDAX);
    assert.ok(off <= 2, `${off.toFixed(2)}% off`);
  },
});

Deno.test({
  name: "DYNAMIC_THRESHOLD DRAM:1 + FS_DAX:4 (threshold 64 B..1 MiB): split 1:4 within 2%",
  ignore,
  fn: async () => {
    const tiers = DRAM_FSDAX.replace("STATIC_RATIO", "DYNAMIC_THRESHOLD");
    const { off } = await split(tiers, "INIT_VAL:4K,MIN_VAL:64,MAX_VAL:1M");
    assert.ok(off <= 2, `${off.toFixed(2)}% off`);
  },
});

Deno.test({
  name:
    "STATIC_RATIO 1:1 under thread churn (servers handing their tables to new threads): where the live blocks really are, each tier's share within 2 points of 50%",
  ignore,
  fn: async () => {
    const tiers = DRAM_FSDAX.replace(",RATIO:4;", ",RATIO:1;");
    const r = await runProbe(["handover", "2", "12"], under(tiers));
    expectOk(r, "handover");
    // The probe sorts its live blocks by the mappings of /proc/self/maps: the file tier's
    // file (memtier.*) or not — the placement itself, not the interposer's statistics.
    const match = /^handover ok (\d+) (\d+)$/m.exec(r.stdout);
    assert.ok(match, r.stdout);
    const live = Number(match[1]);
    const inFile = Number(match[2]);
    assert.ok(live > 4 * 2 ** 20, `${live} bytes live`);
    const fileShare = (100 * inFile) / live;
    console.log(
      `  FS_DAX holds ${inFile} of ${live} live bytes: ${fileShare.toFixed(2)}% (DRAM:FS_DAX = 1:${
        (inFile / (live - inFile)).toFixed(4)
      })`,
    );
    assert.ok(
      Math.abs(fileShare - 50) <= 2,
      `FS_DAX holds ${inFile} of ${live} bytes: ${fileShare.toFixed(2)}%, not 50 ± 2`,
    );
  },
});

// ---- FS_DAX limits, the last output, fork -------------------------------------------

Deno.test({
  name: "FS_DAX with PMEM_SIZE_LIMIT:16M filled: falls back to DRAM, the program keeps allocating",
  ignore,
  fn: async () => {
    const tiers = DRAM_FSDAX.replace(",RATIO:4;", ",RATIO:4,PMEM_SIZE_LIMIT:16M;");
    const r = await runProbe(["fill", "64"], under(tiers, { MEMKIND_MEM_TIERING_LOG_LEVEL: "1" }));
    expectOk(r, "fill");
    assert.equal(r.stdout, "fill ok 1024 failed 0\n");
    const [dram, fsDax] = summary(r.stderr);
    assert.ok(fsDax.bytesPeak <= 16 * 2 ** 20, `FS_DAX peak ${fsDax.bytesPeak} over its limit`);
    assert.ok(fsDax.bytesPeak >= 12 * 2 ** 20, `FS_DAX peak ${fsDax.bytesPeak}: not filled`);
    assert.ok(dram.fallbacks > 0, "no fallback counted");
    assert.ok(dram.bytesNow >= 40 * 2 ** 20, `DRAM holds only ${dram.bytesNow} bytes`);
  },
});

for (const config of configs) {
  Deno.test({
    name: `${config.name}: the program's last output survives exit (no NULs, nothing lost)`,
    ignore,
    fn: async () => {
      const r = await runProbe(
        ["lastline", "64"],
        under(config.tiers, { MEMKIND_MEM_TIERING_LOG_LEVEL: "1" }),
      );
      expectOk(r, "lastline");
      assert.equal(r.raw.indexOf(0), -1, "NUL bytes in stdout");
      assert.equal(r.stdout, `lastline:${"abcdefghij".repeat(200)}\n`);
    },
  });

  Deno.test({
    name: `${config.name}: fork from a threaded program (child allocates, exits 0; parent goes on)`,
    ignore,
    fn: async () => {
      const r = await runProbe(["fork", "3", "25"], under(config.tiers));
      expectOk(r, "fork");
      assert.equal(r.stdout, "fork ok 25\n");
    },
  });
}

// ---- real programs --------------------------------------------------------------------

const PYTHON_WORKLOAD = `
d = {}
for i in range(1_000_000):
    d[i] = (str(i), i * i, [i] * (i % 4))
keys = sorted(d, key=lambda k: d[k][0])[:5]
text = ",".join(d[k][0] for k in range(0, 1_000_000, 3))
import json
back = json.loads(json.dumps({str(k): d[k][1] for k in range(200_000)}))
print(len(d), keys, len(text), sum(back.values()), sum(len(v[2]) for v in d.values()))
`;

const NODE_SCRIPT = `
const a = [];
for (let i = 0; i < 1_000_000; i++) a.push({ i, s: String(i), l: [i, i * 2] });
const m = new Map(a.map((o) => [o.s, o]));
console.log(a.length, m.size, JSON.stringify(a.slice(0, 3)), a.reduce((s, o) => s + o.l[1], 0));
`;

const SQLITE_SQL = `
create table t(a integer primary key, b text, c integer);
with recursive n(x) as (select 1 union all select x + 1 from n where x < 100000)
insert into t select x, printf('%08d', (x * 7919) % 100003), x % 97 from n;
create index tb on t(b);
select count(*), sum(c), min(b), max(b) from t;
select a, b from t order by b limit 5;
select c, count(*) from t group by c order by c limit 3;
`;

interface RealProgram {
  name: string;
  cmd: string;
  args: string[];
  env?: Record<string, string>;
  /** Runs in a fresh temp dir (for sqlite3's database). */
  tempCwd?: boolean;
  /** Output that may change between runs (git status on a shared tree): retry once. */
  volatile?: boolean;
}

const pythonExe: string = (() => {
  try {
    const out = new Deno.Command("python3", { args: ["-c", "import sys; print(sys.executable)"] })
      .outputSync();
    return new TextDecoder().decode(out.stdout).trim() || "python3";
  } catch {
    return "python3";
  }
})();

const realPrograms: RealProgram[] = [
  { name: "python3 (4M+ objects)", cmd: pythonExe, args: ["-c", PYTHON_WORKLOAD] },
  {
    name: "python3 with PYTHONMALLOC=malloc (every object through malloc)",
    cmd: pythonExe,
    args: ["-c", PYTHON_WORKLOAD],
    env: { PYTHONMALLOC: "malloc" },
  },
  {
    name: "python3 through pyenv's bash shim (bash forks)",
    cmd: "python3",
    args: ["-c", "print(sum(range(10**6)))"],
  },
  {
    name: "grep -rn",
    cmd: "grep",
    args: ["-rn", "-E", "memtier|tier_spec", `${repoRoot}/zig-src/src`],
  },
  {
    name: "grep -c (malloc(0)-sensitive)",
    cmd: "grep",
    args: ["-c", "", `${repoRoot}/ARCHITECTURE.md`],
  },
  {
    name: "git log --oneline | head",
    cmd: "sh",
    args: ["-c", `git -C '${repoRoot}' log --oneline | head`],
  },
  { name: "git status", cmd: "git", args: ["-C", repoRoot, "status"], volatile: true },
  { name: "node -e (1M objects)", cmd: "node", args: ["-e", NODE_SCRIPT] },
  {
    name: "deno eval",
    cmd: Deno.execPath(),
    args: [
      "eval",
      "const m = new Map(); for (let i = 0; i < 300000; i++) m.set('k' + i, [i]); console.log(m.size, [...m.keys()].slice(-2))",
    ],
  },
  { name: "sqlite3 (100k rows)", cmd: "sqlite3", args: ["t.db", SQLITE_SQL], tempCwd: true },
];

function haveCommand(cmd: string): boolean {
  if (cmd.includes("/")) return true;
  const out = new Deno.Command("sh", { args: ["-c", `command -v ${cmd}`], stdout: "null" })
    .outputSync();
  return out.success;
}

async function runReal(p: RealProgram, extra: Record<string, string>): Promise<Result> {
  if (p.tempCwd !== true) return await exec(p.cmd, p.args, { ...p.env, ...extra });
  const dir = await Deno.makeTempDir({ prefix: "memtier_real" });
  try {
    return await exec(p.cmd, p.args, { ...p.env, ...extra }, { cwd: dir });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

for (const p of realPrograms) {
  const missing = !haveCommand(p.cmd);
  if (missing) console.log(`memtier real-program test "${p.name}" skipped: ${p.cmd} not installed`);
  Deno.test({
    name: `${p.name}: same output and status with and without libmemtier (DRAM, DRAM+FS_DAX)`,
    ignore: ignore || missing,
    fn: async () => {
      let bare = await runReal(p, {});
      expectOk(bare, `${p.name} without the interposer`);
      for (const config of realProgramConfigs) {
        let r = await runReal(p, under(config.tiers));
        if (p.volatile === true && r.stdout !== bare.stdout) {
          bare = await runReal(p, {}); // the shared tree changed meanwhile: compare again
          r = await runReal(p, under(config.tiers));
        }
        assert.equal(r.stdout, bare.stdout, `${p.name} under ${config.name}: stdout differs`);
        assert.equal(r.stderr, bare.stderr, `${p.name} under ${config.name}: stderr differs`);
        assert.equal(r.code, bare.code, `${p.name} under ${config.name}`);
      }
    },
  });
}

// ---- the edges of the malloc family (tests/c/alloc_edges.c), compared with glibc -----

let edgesPath: Promise<string> | undefined;
function edges(): Promise<string> {
  edgesPath ??= buildCProgram("alloc_edges", { hmalloc: false });
  return edgesPath;
}

for (const mode of ["aligned_overflow", "aligned_zero"] as const) {
  const what = mode === "aligned_overflow"
    ? "the posix_memalign family with a size near SIZE_MAX gives NULL/ENOMEM, as glibc, never a wrapped block"
    : "the posix_memalign family with size 0 and alignments up to 64 MiB gives an aligned block, as glibc";
  Deno.test({
    name: what,
    ignore,
    fn: async () => {
      const glibc = await exec(await edges(), [mode]);
      expectOk(glibc, `${mode} under glibc`);
      assert.ok(glibc.stdout.split("\n").length > 30, glibc.stdout);
      for (const config of configs) {
        const r = await exec(await edges(), [mode], under(config.tiers));
        expectOk(r, `${mode} under ${config.name}`);
        assert.equal(r.stdout, glibc.stdout, `${mode} under ${config.name}`);
        assert.equal(r.stderr, "");
      }
    },
  });
}

Deno.test({
  name:
    "a signal handler calling malloc while malloc holds a lock: one line and SIGABRT, not a hang",
  ignore,
  fn: async () => {
    for (const config of configs) {
      const r = await exec("timeout", ["30", await edges(), "signal_reentry"], under(config.tiers));
      assert.equal(r.code, 128 + 6, `${config.name}: exit ${r.code} (124: hung) ${r.stdout}`);
      assert.equal(
        r.stderr,
        "memtier: allocator re-entered while this thread holds its lock " +
          "(malloc or free called from a signal handler?)\n",
        config.name,
      );
    }
  },
});
