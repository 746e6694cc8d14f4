/**
 * The project's whole test run (README quick start, CI): installs what the tests need when it is
 * missing (Debian packages — as root — the pinned Zig, the VM kernel), builds the libraries,
 * runs every suite and ends with one line `N passed, N failed` over all of them, in every
 * outcome: a set-up or build failure counts as a failure.
 *
 *   suite 1  zig unit tests (every `test` block under zig-src/src/, debug build: assertions on)
 *   suite 2  deno tests in tests/ (TS units, C programs against the built libraries, the CLI,
 *            the installer, the bare-root quick start, and the 4-node VM tests: always in CI,
 *            skipped with a message elsewhere when qemu or a >= 6.9 kernel image is missing)
 *
 * Extra arguments go to `deno test` (e.g. a file, or `--filter NAME`). TIERMEM_NO_DEPS=1 skips
 * the package step (for a machine set up by hand).
 *
 * @module
 */
import $ from "dax";
import { dirname, join } from "node:path";
import { ensurePackages } from "./support/debian.ts";
import { ensureZig, logStep, repoRoot } from "./support/toolchain.ts";
import { buildLibraries, zigSrcDir } from "./build.ts";

/** Passed and failed tests of one suite (or of all). */
interface Tally {
  passed: number;
  failed: number;
}

/**
 * Zig's `--summary all` result (`N/M tests passed`); a failed run without one counts as one
 * failure.
 */
export function zigTally(log: string, success: boolean): Tally {
  const lines = [...log.matchAll(/(\d+)\/(\d+) tests passed/g)];
  const last = lines.at(-1);
  if (last === undefined) return { passed: 0, failed: success ? 0 : 1 };
  const passed = Number(last[1]);
  return { passed, failed: Number(last[2]) - passed };
}

/** `deno test`'s closing line (`ok | N passed | M failed`); none on a failed run: one failure. */
export function denoTally(log: string, success: boolean): Tally {
  const lines = [...log.matchAll(/^(?:ok|FAILED) \| (\d+) passed[^|]*\| (\d+) failed/gm)];
  const last = lines.at(-1);
  if (last === undefined) return { passed: 0, failed: success ? 0 : 1 };
  return { passed: Number(last[1]), failed: Number(last[2]) };
}

/**
 * The failed tests named in a run's log: Zig's `error: 'NAME' failed` lines and the entries of
 * `deno test`'s FAILURES list (`NAME => FILE:LINE`), in order, each once.
 */
export function failedTestNames(log: string): string[] {
  const names: string[] = [];
  for (const m of log.matchAll(/^error: '(.+)' failed/gm)) names.push(`zig: ${m[1]}`);
  for (const section of log.split(/^ FAILURES ?$/m).slice(1)) {
    for (const line of section.split("\n")) {
      if (/^(?:ok|FAILED) \|/.test(line)) break;
      if (line.includes(" => ./")) names.push(line.trim());
    }
  }
  return [...new Set(names)];
}

/** Passed and failed tests over all suites, and the failed tests' names. */
interface Outcome extends Tally {
  failures: string[];
}

async function main(args: string[]): Promise<Outcome> {
  const total: Outcome = { passed: 0, failed: 0, failures: [] };
  const outDir = join(repoRoot, "tests", "out");
  await Deno.mkdir(outDir, { recursive: true });
  let zig: string[];
  try {
    if (Deno.env.get("TIERMEM_NO_DEPS") !== "1") {
      await ensurePackages(["bootstrap", "build", "demo", "test", "vm"]);
    }
    zig = await ensureZig();
    console.log("== build (fast)");
    await buildLibraries({ optimize: "fast" });
  } catch (error) {
    const why = `set-up failed: ${error instanceof Error ? error.message : String(error)}`;
    console.log(why);
    return { passed: 0, failed: 1, failures: [why] };
  }
  // The tests find this Zig as `python3 -m ziglang` and this Deno as `deno`.
  const path = `${dirname(zig[0])}:${dirname(Deno.execPath())}:${Deno.env.get("PATH") ?? ""}`;

  console.log("== suite 1: zig unit tests");
  const zigRun = await $`${zig} build test -Doptimize=debug --summary all`.cwd(zigSrcDir)
    .env({ PATH: path }).captureCombined().noThrow();
  await Deno.writeTextFile(join(outDir, "zig-test.log"), zigRun.combined);
  console.log(zigRun.combined.trimEnd().split("\n").slice(-40).join("\n"));
  const zigResult = zigTally(zigRun.combined, zigRun.code === 0);
  if (zigRun.code !== 0 && zigResult.failed === 0) zigResult.failed = 1;
  total.passed += zigResult.passed;
  total.failed += zigResult.failed;
  total.failures.push(...failedTestNames(zigRun.combined));
  if (zigResult.failed > 0 && total.failures.length === 0) total.failures.push("zig: the build");

  console.log("== suite 2: deno tests");
  const denoRun = await $`${Deno.execPath()} test -A --no-check=remote ${args}`.cwd(repoRoot)
    .env({ PATH: path, NO_COLOR: "1" }).stdout("inheritPiped").stderr("inheritPiped").noThrow();
  const denoLog = denoRun.stdout + denoRun.stderr;
  await Deno.writeTextFile(join(outDir, "deno-test.log"), denoLog);
  const denoResult = denoTally(denoRun.stdout, denoRun.code === 0);
  if (denoRun.code !== 0 && denoResult.failed === 0) denoResult.failed = 1;
  total.passed += denoResult.passed;
  total.failed += denoResult.failed;
  const denoFailures = failedTestNames(denoRun.stdout);
  total.failures.push(...denoFailures);
  if (denoResult.failed > 0 && denoFailures.length === 0) total.failures.push("deno test: no list");
  return total;
}

if (import.meta.main) {
  let result: Outcome;
  try {
    result = await main(Deno.args);
  } catch (error) {
    const why = `test run failed: ${error instanceof Error ? error.stack : String(error)}`;
    logStep(why);
    result = { passed: 0, failed: 1, failures: [why.split("\n")[0]] };
  }
  // Just above the summary, where a log's tail shows them: which tests failed.
  for (const name of result.failures) console.log(`failed: ${name}`);
  console.log(`${result.passed} passed, ${result.failed} failed`);
  Deno.exit(result.failed === 0 ? 0 : 1);
}
