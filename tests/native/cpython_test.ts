/**
 * A short selection of CPython's own regression suite under libmemtier with DRAM:1 + FS_DAX:4
 * (issue 12): test_posix, test_subprocess and test_decimal — the three that the FS_DAX tier's
 * descriptor (posix, subprocess) and a failed allocation poisoning a tier (decimal) broke — with
 * `-j2`, compared module by module with the run without the interposer. The long run of 127
 * modules is `deno task cpython:long` (tests/cpython/run-long.sh).
 *
 * Needs /usr/bin/python3.11 and Debian's libpython3.11-testsuite (scripts/install-deps.sh installs
 * it); skipped with a message without them, except under CI (CI=true), where it must run.
 */
import assert from "node:assert/strict";
import { repoRoot } from "../support/vm.ts";
import { missingLibrary } from "../support/c_programs.ts";

const PYTHON = "/usr/bin/python3.11";
const LIB = Deno.env.get("TIERMEM_MEMTIER_LIB") ?? `${repoRoot}/zig-src/zig-out/lib/libmemtier.so`;
const MODULES = ["test_posix", "test_subprocess", "test_decimal"] as const;

function missing(): string | null {
  const lib = missingLibrary(LIB);
  if (lib) return lib;
  try {
    const out = new Deno.Command(PYTHON, {
      args: ["-c", "import test.libregrtest"],
      stderr: "null",
    })
      .outputSync();
    if (!out.success) {
      return "CPython's test suite is missing (apt-get install libpython3.11-testsuite)";
    }
  } catch {
    return `${PYTHON} not found (apt-get install python3.11)`;
  }
  return null;
}

const why = missing();
const inCi = Deno.env.get("CI") === "true";
if (why !== null && !inCi) console.log(`CPython regression tests skipped: ${why}`);

function cleanEnv(): Record<string, string> {
  const env = Deno.env.toObject();
  for (const name of Object.keys(env)) {
    if (name.startsWith("MEMKIND_") || name === "LD_PRELOAD") delete env[name];
  }
  return env;
}

/** Runs the modules with regrtest; returns each module's result ("passed", "failed", ...). */
async function regrtest(extra: Record<string, string>, cwd: string): Promise<Map<string, string>> {
  const out = await new Deno.Command(PYTHON, {
    args: ["-m", "test", "-j2", "--timeout", "600", ...MODULES],
    env: { ...cleanEnv(), ...extra },
    clearEnv: true,
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  const results = new Map<string, string>();
  const line =
    /\] (test_\w+) (passed|failed|crashed|skipped|timed out|interrupted|resource denied)/g;
  for (const m of text.matchAll(line)) results.set(m[1], m[2]);
  for (const name of MODULES) {
    if (!results.has(name)) results.set(name, `no result in:\n${text.slice(-3000)}`);
  }
  return results;
}

Deno.test({
  name:
    "CPython's test_posix, test_subprocess and test_decimal give the same results under DRAM + FS_DAX as without memtier",
  ignore: why !== null && !inCi,
  fn: async () => {
    assert.equal(why, null, `under CI the CPython tests must run: ${why}`);
    const work = await Deno.makeTempDir({ prefix: "cpython_test" });
    const fsDax = await Deno.makeTempDir({ dir: "/dev/shm", prefix: "cpython_fsdax" });
    // Open to every user like /dev/shm: test_subprocess runs children as another user, and a
    // child that cannot create its FS_DAX file in PATH exits with that error.
    await Deno.chmod(fsDax, 0o1777);
    try {
      const bare = await regrtest({}, work);
      const tiered = await regrtest({
        LD_PRELOAD: LIB,
        MEMKIND_MEM_TIERS:
          `KIND:DRAM,RATIO:1;KIND:FS_DAX,PATH:${fsDax},RATIO:4;POLICY:STATIC_RATIO`,
      }, work);
      console.log(`  without memtier: ${JSON.stringify(Object.fromEntries(bare))}`);
      console.log(`  DRAM + FS_DAX:   ${JSON.stringify(Object.fromEntries(tiered))}`);
      for (const name of MODULES) {
        assert.equal(tiered.get(name), bare.get(name), `${name} under DRAM + FS_DAX`);
      }
      assert.ok([...bare.values()].includes("passed"), "nothing passed even without memtier");
    } finally {
      await Deno.remove(work, { recursive: true });
      await Deno.remove(fsDax, { recursive: true });
    }
  },
});
