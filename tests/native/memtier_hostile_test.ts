/**
 * libmemtier with a second tier against hostile programs (issue 12): programs started with a
 * standard descriptor closed, programs that close every descriptor or run out of them, failed
 * allocations, realloc into a full tier, many short threads, and a file tier used for a long
 * time. The C side is `tests/c/memtier_hostile.c` (plain C, no hmalloc); real programs are
 * /bin/echo, cat and python3. FS_DAX tiers live in fresh directories (tmpfs under /dev/shm; the
 * offsets test on the repository's filesystem, where ext4's 16 TiB file limit showed the old
 * bump pointer's end).
 */
import assert from "node:assert/strict";
import { buildCProgram, missingLibrary } from "../support/c_programs.ts";
import { repoRoot } from "../support/vm.ts";

/** The library under test (`TIERMEM_MEMTIER_LIB`, as for the launcher, checks another build). */
const LIB = Deno.env.get("TIERMEM_MEMTIER_LIB") ?? `${repoRoot}/zig-src/zig-out/lib/libmemtier.so`;
const libraryMissing = missingLibrary(LIB);
if (libraryMissing) console.log(`memtier hostile-program tests skipped: ${libraryMissing}`);
const ignore = libraryMissing !== false;

const shmDir: string = ignore
  ? "/dev/shm"
  : Deno.makeTempDirSync({ dir: "/dev/shm", prefix: "memtier_hostile" });
globalThis.addEventListener("unload", () => {
  if (shmDir !== "/dev/shm") Deno.removeSync(shmDir, { recursive: true });
});

const fsDax = (ratio: number, limit = ""): string =>
  `KIND:FS_DAX,PATH:${shmDir},RATIO:${ratio}${limit === "" ? "" : `,PMEM_SIZE_LIMIT:${limit}`}`;
const DRAM_FSDAX = `KIND:DRAM,RATIO:1;${fsDax(4)};POLICY:STATIC_RATIO`;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function cleanEnv(): Record<string, string> {
  const env = Deno.env.toObject();
  for (const name of Object.keys(env)) {
    if (name.startsWith("MEMKIND_") || name === "LD_PRELOAD") delete env[name];
  }
  return env;
}

/** Runs `sh -c script` (so the test can close descriptors: `prog >&-`), under `tiers` or bare. */
async function sh(script: string, tiers: string | null, more: Record<string, string> = {}) {
  const env: Record<string, string> = { ...cleanEnv(), ...more };
  if (tiers !== null) {
    env.LD_PRELOAD = LIB;
    env.MEMKIND_MEM_TIERS = tiers;
  }
  const out = await new Deno.Command("sh", {
    args: ["-c", script],
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array): string => new TextDecoder().decode(b);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) } as Result;
}

let hostilePath: Promise<string> | undefined;
function hostile(): Promise<string> {
  hostilePath ??= buildCProgram("memtier_hostile", { hmalloc: false, extra: ["-pthread"] });
  return hostilePath;
}

/** The exit summary (log level 1): per tier, allocations and fallbacks. */
/** One tier's line of the exit summary (log level 1). */
interface TierLine {
  kind: string;
  bytesNow: number;
  allocations: number;
  fallbacks: number;
}

function summary(stderr: string): TierLine[] {
  const re =
    /tier (\d+) (\w+): (-?\d+) bytes now, -?\d+ bytes peak, (\d+) allocations, (\d+) fallbacks/g;
  const tiers: TierLine[] = [];
  for (const m of stderr.matchAll(re)) {
    tiers[Number(m[1])] = {
      kind: m[2],
      bytesNow: Number(m[3]),
      allocations: Number(m[4]),
      fallbacks: Number(m[5]),
    };
  }
  assert.ok(tiers.length > 0, `no summary in:\n${stderr}`);
  return tiers;
}

// ---- the file tier's descriptor (item 1) -------------------------------------------------------

Deno.test({
  name: "a program with stdout closed under an FS_DAX tier writes nothing into its heap",
  ignore,
  fn: async () => {
    const r = await sh(`exec '${await hostile()}' closedout >&-`, DRAM_FSDAX);
    assert.equal(r.stderr, "closedout ok\n");
    assert.equal(r.code, 0);
  },
});

for (
  const [what, script] of [
    ["echo hi >&- fails with EBADF", "exec /bin/echo hi >&-"],
    ["cat <&- prints nothing and fails with EBADF", "exec cat <&-"],
  ] as const
) {
  Deno.test({
    name: `under an FS_DAX tier, ${what} as with glibc (same output and status)`,
    ignore,
    fn: async () => {
      const bare = await sh(script, null);
      assert.notEqual(bare.code, 0, "glibc's own run must fail");
      const r = await sh(script, DRAM_FSDAX);
      assert.equal(r.stdout, bare.stdout);
      assert.equal(r.stderr, bare.stderr);
      assert.equal(r.code, bare.code);
    },
  });
}

Deno.test({
  name: "a program under an FS_DAX tier sees no descriptor it did not open",
  ignore,
  fn: async () => {
    const script = "exec ls /proc/self/fd";
    const bare = await sh(script, null);
    const r = await sh(script, DRAM_FSDAX);
    assert.equal(r.stdout, bare.stdout);
    assert.equal(r.code, 0);
  },
});

Deno.test({
  name:
    "a program that closes every fd >= 3 and opens a file keeps its file: the FS_DAX tier goes on serving",
  ignore,
  fn: async () => {
    const file = `${shmDir}/user.txt`;
    const r = await sh(`exec '${await hostile()}' userfile '${file}'`, DRAM_FSDAX, {
      MEMKIND_MEM_TIERING_LOG_LEVEL: "1",
    });
    assert.match(r.stderr, /^userfile ok$/m);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(Deno.readTextFileSync(file), "user data\n");
    const [, tier] = summary(r.stderr);
    assert.equal(tier.kind, "FS_DAX");
    assert.ok(tier.allocations >= 1000, `FS_DAX served only ${tier.allocations} blocks`);
  },
});

// ---- failures concern one request (item 4) -----------------------------------------------------

Deno.test({
  name:
    "after one failed malloc(2^47), the next 21,000 small mallocs succeed and keep the 1:1 split",
  ignore,
  fn: async () => {
    const tiers = `KIND:DRAM,RATIO:1;${fsDax(1)};POLICY:STATIC_RATIO`;
    const r = await sh(`exec '${await hostile()}' failonce`, tiers, {
      MEMKIND_MEM_TIERING_LOG_LEVEL: "1",
    });
    assert.match(r.stderr, /^failonce ok nulls 0$/m);
    const [dram, fsdax] = summary(r.stderr);
    // The split is by bytes, within 2% (a thread's STATIC_RATIO credit is 1/64 of what it holds).
    const total = dram.bytesNow + fsdax.bytesNow;
    assert.ok(Math.abs(dram.bytesNow - fsdax.bytesNow) <= 0.02 * total, r.stderr);
    assert.ok(Math.min(dram.allocations, fsdax.allocations) >= 10_000, r.stderr);
  },
});

Deno.test({
  name:
    "one request larger than the FS_DAX tier's room leaves the next 20,000 allocations to the split",
  ignore,
  fn: async () => {
    const tiers = `KIND:DRAM,RATIO:1;${fsDax(1, "16M")};POLICY:STATIC_RATIO`;
    const r = await sh(`exec '${await hostile()}' toolarge 32`, tiers, {
      MEMKIND_MEM_TIERING_LOG_LEVEL: "1",
    });
    assert.match(r.stderr, /^toolarge ok nulls 0$/m);
    const [dram, fsdax] = summary(r.stderr);
    assert.equal(dram.fallbacks, 1, "the 32 MiB block fell back to DRAM");
    // DRAM holds 32 MiB more: the ratio sends the small blocks to FS_DAX (it has room).
    assert.ok(fsdax.allocations >= 20_000, `FS_DAX got ${fsdax.allocations} of 20,000`);
  },
});

Deno.test({
  name: "python3 after a caught MemoryError still allocates (DRAM + FS_DAX)",
  ignore,
  fn: async () => {
    const code = "try:\n bytearray(2**50)\nexcept MemoryError:\n print('caught')\n" +
      "s = 'x' * 100000\nprint(len(s), len([bytes(1000) for i in range(20000)]))";
    const r = await sh(`exec python3 -c "${code}"`, DRAM_FSDAX);
    assert.equal(r.stdout, "caught\n100000 20000\n", r.stderr);
    assert.equal(r.code, 0);
  },
});

// ---- realloc falls back (item 5) ---------------------------------------------------------------

Deno.test({
  name: "realloc to 64 MiB with FS_DAX capped at 16 MiB: all 64 succeed (the full tier falls back)",
  ignore,
  fn: async () => {
    const tiers = `KIND:DRAM,RATIO:1;${fsDax(1, "16M")};POLICY:STATIC_RATIO`;
    const r = await sh(`exec '${await hostile()}' reallocgrow 64 64`, tiers, {
      MEMKIND_MEM_TIERING_LOG_LEVEL: "1",
    });
    assert.match(r.stderr, /^reallocgrow 64 failed 0$/m);
    assert.equal(r.code, 0);
    const [dram] = summary(r.stderr);
    assert.ok(dram.fallbacks >= 1, "the FS_DAX blocks moved to DRAM");
  },
});

// ---- per-thread state (item 6) -----------------------------------------------------------------

for (
  const [name, tiers, level] of [
    ["two tiers", DRAM_FSDAX, "0"],
    ["one tier at log level 1", "KIND:DRAM,RATIO:1;POLICY:STATIC_RATIO", "1"],
  ] as const
) {
  Deno.test({
    name: `40,000 short-lived threads under ${name} grow RSS by less than 8 MiB`,
    ignore,
    fn: async () => {
      const r = await sh(`exec '${await hostile()}' threads 40000`, tiers, {
        MEMKIND_MEM_TIERING_LOG_LEVEL: level,
      });
      const m = /^threads 40000 rss_growth_kib (-?\d+)$/m.exec(r.stderr);
      assert.ok(m !== null, r.stderr);
      console.log(`  RSS growth: ${m[1]} KiB`);
      assert.ok(Number(m[1]) < 8192, `RSS grew by ${m[1]} KiB`);
    },
  });
}

// ---- the file tier's space (items 7 and 8) -----------------------------------------------------

Deno.test({
  name: "an FS_DAX tier reuses freed file space: 2,100 rounds of malloc(8 GiB)/free all served",
  ignore,
  fn: async () => {
    await Deno.mkdir(`${repoRoot}/tests/out`, { recursive: true });
    const dir = await Deno.makeTempDir({ dir: `${repoRoot}/tests/out`, prefix: "fsdax_rounds" });
    try {
      const tiers = `KIND:FS_DAX,PATH:${dir},RATIO:1;POLICY:STATIC_RATIO`; // no fallback: NULL
      const r = await sh(`exec '${await hostile()}' rounds 2100 8`, tiers);
      assert.equal(r.stderr, "rounds ok 2100\n");
      assert.equal(r.code, 0);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "freeing an FS_DAX huge block with no descriptor left gives its space back to the tier",
  ignore,
  fn: async () => {
    const tiers = `${fsDax(1, "64M")};POLICY:STATIC_RATIO`; // FS_DAX alone: no fallback
    const r = await sh(`exec '${await hostile()}' fdlimit 56`, tiers);
    assert.match(r.stderr, /^fdlimit ok opened \d+$/m);
    assert.equal(r.code, 0);
  },
});
