/**
 * The parsers under coverage-guided fuzzing (issue 6), short CI run: libFuzzer drives each
 * Zig target beside its parser (`zig-src/src/<folder>/<parser>_fuzz.zig`: tier spec, node list,
 * policy string, policy environment) for 5 s from the committed corpus, then on its saved
 * regression inputs; a crash, a panic or a broken promise (a rejection without a one-line message
 * naming a token of the input, an acceptance that does not round-trip through `format`) fails the
 * test. The dedicated run: `bash tests/fuzz/run-long.sh`.
 */

import assert from "node:assert/strict";
import { repoRoot } from "../support/vm.ts";

const decoder = new TextDecoder();
const inCI: boolean = Deno.env.get("CI") === "true";
const targets: readonly string[] = ["tier_spec", "node_list", "policy", "policy_env"];

/** Why the fuzzers cannot be built here (clang or libFuzzer missing), or undefined. */
function missingToolchain(): string | undefined {
  try {
    const out = new Deno.Command("clang", {
      args: ["-print-file-name=libclang_rt.fuzzer-x86_64.a"],
    })
      .outputSync();
    const path = decoder.decode(out.stdout).trim();
    Deno.statSync(path);
    return undefined;
  } catch {
    return "clang with libFuzzer is missing (apt-get install clang libclang-rt-14-dev)";
  }
}

const missing = missingToolchain();
if (missing !== undefined && !inCI) console.log(`fuzz_test: skipped: ${missing}`);

async function bash(
  script: string,
  env: Record<string, string>,
): Promise<{ code: number; out: string }> {
  const r = await new Deno.Command("bash", {
    args: [`${repoRoot}/tests/fuzz/${script}`],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: r.code, out: decoder.decode(r.stdout) + decoder.decode(r.stderr) };
}

for (const target of targets) {
  Deno.test({
    name:
      `fuzz ${target}: 5 s of libFuzzer and the saved regressions, no crash, every rejection one line naming a token of the input, every acceptance round-trips`,
    // CI installs clang (scripts/install-deps.sh): there a missing toolchain fails.
    ignore: missing !== undefined && !inCI,
    async fn() {
      const r = await bash("run.sh", { TARGETS: target, SECONDS_PER_TARGET: "5" });
      assert.equal(r.code, 0, r.out);
      const line = r.out.match(new RegExp(`^fuzz_${target}: (\\d+) inputs, 0 crashes$`, "m"));
      assert(line !== null, r.out);
      assert(Number(line[1]) > 1000, `only ${line[1]} inputs in 5 s:\n${r.out}`);
    },
  });
}
