/**
 * The pinned toolchains and where they live: one version of each, in `deno.json`'s
 * `"toolchains"` (Deno from the npm registry, Zig from PyPI), both installed into the project's
 * `.tools/` (git-ignored) so nothing is written into the system. Bash installs Deno
 * (`scripts/tools.sh`, it must exist before any TypeScript runs); this module installs Zig into
 * a virtual environment, `.tools/venv` (Debian 12's pip refuses the system Python, PEP 668).
 *
 * `deno run -A scripts/support/toolchain.ts zig` installs Zig when missing and prints the
 * command that runs it.
 *
 * @module
 */
import $ from "dax";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import denoConfig from "../../deno.json" with { type: "json" };

/** The repository root (absolute, no trailing slash). */
export const repoRoot: string = fileURLToPath(new URL("../..", import.meta.url));

/** The pinned versions. */
export const toolchainVersions: { deno: string; zig: string } = denoConfig.toolchains;

/** The project-local tools directory. */
export const toolsDir: string = join(repoRoot, ".tools");

/** The venv's Python, which runs Zig as `python3 -m ziglang`. */
export const venvPython: string = join(toolsDir, "venv", "bin", "python3");

/** The pinned Deno: the one running this script when it was started by `scripts/tools.sh`. */
export const denoPath: string = Deno.execPath();

/** One line of progress on stderr, prefixed like the bash side's. */
export function logStep(line: string): void {
  console.error(`tiermem: ${line}`);
}

async function zigVersionOf(python: string): Promise<string | undefined> {
  const out = await $`${python} -m ziglang version`.quiet().noThrow();
  return out.code === 0 ? out.stdout.trim() : undefined;
}

/**
 * Makes sure the pinned Zig runs from `.tools/venv` and returns its command
 * (`[venvPython, "-m", "ziglang"]`). Needs `python3` with the `venv` module (Debian:
 * `python3-venv`, which `scripts/support/debian.ts` installs in the `build` profile).
 *
 * @example
 * ```ts ignore
 * const zig = await ensureZig();
 * await $`${zig} version`;
 * ```
 */
export async function ensureZig(): Promise<string[]> {
  const want = toolchainVersions.zig;
  if (await zigVersionOf(venvPython) === want) return [venvPython, "-m", "ziglang"];
  logStep(`installing zig ${want} from PyPI into .tools/venv`);
  await Deno.mkdir(toolsDir, { recursive: true });
  if (!await $.path(venvPython).exists()) {
    const made = await $`python3 -m venv ${join(toolsDir, "venv")}`.noThrow();
    if (made.code !== 0) {
      throw new Error("python3 -m venv failed: install python3 and python3-venv");
    }
  }
  await $`${venvPython} -m pip install --quiet --disable-pip-version-check ${`ziglang==${want}`}`;
  const got = await zigVersionOf(venvPython);
  if (got !== want) throw new Error(`zig ${want} did not install (found ${got ?? "none"})`);
  return [venvPython, "-m", "ziglang"];
}

if (import.meta.main) {
  if (Deno.args[0] !== "zig") {
    console.error("usage: toolchain.ts zig   (installs the pinned Zig, prints its command)");
    Deno.exit(2);
  }
  console.log((await ensureZig()).join(" "));
}
