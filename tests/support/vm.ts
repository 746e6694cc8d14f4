/**
 * The 4-node NUMA VM for Deno tests (a wrapper of `tests/numavm/numavm.sh`).
 *
 * One boot costs ~12 s, so a test file gathers its checks into one `runInVm([...])` call: each
 * step is a bash script run in order inside the same guest, with its own output and exit code.
 *
 * Policy: with `CI=true` the VM tests always run (a missing qemu or kernel is a failure, with the
 * reason); elsewhere they are registered with `ignore` and the reason is printed once.
 *
 * @example
 * ```ts
 * import { runInVm, vmTestIgnore } from "./vm.ts";
 * Deno.test({ name: "guest has 4 nodes", ignore: vmTestIgnore() }, async () => {
 *   const run = await runInVm("cat /sys/devices/system/node/online");
 *   if (run.output.trim() !== "0-3") throw new Error(run.output);
 * });
 * ```
 */

/** Root of the repository (this file is `tests/support/vm.ts`). */
export const repoRoot: string = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

/** The harness script. */
export const numavmScript: string = `${repoRoot}/tests/numavm/numavm.sh`;

/** Exit code of `numavm.sh` when the VM itself failed (no result from the guest). */
export const vmFailureRc = 125;

/** Whether the VM can run here, and if not, why. */
export type VmAvailability = { ok: true } | { ok: false; reason: string };

/** One step's result. */
export interface VmStepResult {
  /** The step's name (`01`, `02`, … in order). */
  name: string;
  /** The bash script that ran. */
  script: string;
  /** stdout and stderr, interleaved. */
  output: string;
  /** Exit code (125 when the step did not finish). */
  rc: number;
  /** Guest wall time of the step (guest clock; ~12x slower than the host for CPU work). */
  ms: number;
}

/** The result of one boot. */
export interface VmRun {
  /** The first step's output (all steps' outputs, with headers, when there are several). */
  output: string;
  /** The first non-zero step rc, 125 if the VM failed, else 0. */
  rc: number;
  /** Every step, in order. */
  steps: VmStepResult[];
  /** Host wall time of the whole boot, ms. */
  bootMs: number;
  /** Harness output (step summary, VM failure diagnostics). */
  harness: string;
}

/** Options of {@link runInVm}. */
export interface VmOptions {
  /** Working directory of the steps, shared read-write (default: the repository root). */
  cwd?: string;
  /** More host directories shared read-write. */
  rw?: readonly string[];
  /** Whole boot limit, seconds (default 900). */
  timeoutSec?: number;
  /** Per-step limit, seconds (default none). */
  stepTimeoutSec?: number;
}

let availability: VmAvailability | undefined;

/** Checks qemu, a >= 6.9 kernel image with its modules, busybox-static and kmod (cached). */
export function vmAvailable(): VmAvailability {
  if (availability !== undefined) return availability;
  try {
    const out = new Deno.Command("bash", { args: [numavmScript, "--check"], stderr: "piped" })
      .outputSync();
    const text = new TextDecoder().decode(out.stdout).trim();
    availability = out.code === 0 ? { ok: true } : { ok: false, reason: text || `rc ${out.code}` };
  } catch (e) {
    availability = { ok: false, reason: `cannot run ${numavmScript}: ${String(e)}` };
  }
  return availability;
}

/** True when running under CI (`CI=true`): VM tests must run there. */
export function inCi(): boolean {
  return (Deno.env.get("CI") ?? "").toLowerCase() === "true";
}

let skipReported = false;

/**
 * The `ignore` value for a VM test: false under CI (a missing VM then fails the test with the
 * reason) or when the VM is available; true otherwise, printing the reason once.
 */
export function vmTestIgnore(): boolean {
  if (inCi()) return false;
  const a = vmAvailable();
  if (a.ok) return false;
  if (!skipReported) {
    console.log(`VM tests skipped: ${a.reason} (they always run with CI=true)`);
    skipReported = true;
  }
  return true;
}

/** Throws with the reason when the VM cannot run (call at the start of a VM test). */
export function assertVmAvailable(): void {
  const a = vmAvailable();
  if (!a.ok) throw new Error(`the 4-node VM is required (CI=true) but unavailable: ${a.reason}`);
}

const decoder = new TextDecoder();

async function readText(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

/**
 * Boots the VM once and runs `steps` (one bash script, or several in order) inside it.
 * Each step's cwd is `opts.cwd`; the guest sees the host's files read-only elsewhere.
 */
export async function runInVm(
  steps: string | readonly string[],
  opts: VmOptions = {},
): Promise<VmRun> {
  assertVmAvailable();
  const scripts: readonly string[] = typeof steps === "string" ? [steps] : steps;
  if (scripts.length === 0) throw new RangeError("runInVm: no step given");
  await Deno.mkdir(`${repoRoot}/tests/out`, { recursive: true });
  const dir = await Deno.makeTempDir({ dir: `${repoRoot}/tests/out`, prefix: "vm-steps-" });
  const width = String(scripts.length).length;
  const names: string[] = scripts.map((_, i) => String(i + 1).padStart(Math.max(2, width), "0"));
  for (let i = 0; i < scripts.length; i++) {
    await Deno.writeTextFile(`${dir}/${names[i]}.sh`, `${scripts[i]}\n`);
  }
  const env: Record<string, string> = {};
  if (opts.rw !== undefined) env.NUMAVM_RW = opts.rw.join(" ");
  if (opts.timeoutSec !== undefined) env.NUMAVM_TIMEOUT = String(opts.timeoutSec);
  if (opts.stepTimeoutSec !== undefined) env.NUMAVM_STEP_TIMEOUT = String(opts.stepTimeoutSec);
  // A guest that dies before its first step (a kernel oops while booting under TCG on a loaded
  // host has been seen) says nothing about the code under test: boot it once more.
  const t0 = performance.now();
  let out: Deno.CommandOutput;
  let results: VmStepResult[];
  for (let attempt = 1;; attempt++) {
    out = await new Deno.Command("bash", {
      args: [numavmScript, "--steps", dir],
      cwd: opts.cwd ?? repoRoot,
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    results = [];
    for (let i = 0; i < scripts.length; i++) {
      const base = `${dir}/${names[i]}`;
      const rcText = await readText(`${base}.rc`);
      results.push({
        name: names[i],
        script: scripts[i],
        output: (await readText(`${base}.out`)) ?? "",
        rc: rcText === undefined ? vmFailureRc : Number(rcText.trim()),
        ms: Number(((await readText(`${base}.ms`)) ?? "0").trim()),
      });
    }
    const noStepRan = out.code !== 0 && !(await readText(`${dir}/${names[0]}.rc`));
    if (!noStepRan || attempt === 2) break;
    console.error("vm: the guest ran no step (boot failure); booting it once more");
  }
  const bootMs = Math.round(performance.now() - t0);
  const harness = decoder.decode(out.stdout) + decoder.decode(out.stderr);
  const rc = out.code !== 0 ? vmFailureRc : (results.find((r) => r.rc !== 0)?.rc ?? 0);
  const output = results.length === 1
    ? results[0].output
    : results.map((r) => `== step ${r.name} (rc ${r.rc}): ${r.script}\n${r.output}`).join("");
  if (rc === vmFailureRc) {
    return { output, rc, steps: results, bootMs, harness: `${harness}(steps kept in ${dir})\n` };
  }
  await Deno.remove(dir, { recursive: true });
  return { output, rc, steps: results, bootMs, harness };
}
