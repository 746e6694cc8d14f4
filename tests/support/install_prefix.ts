/**
 * Installing the checkout into a temporary prefix with `scripts/install.sh`, for tests.
 *
 * @example
 * ```ts
 * import { installInto } from "./install_prefix.ts";
 * const inst = await installInto();
 * console.log(inst.prefix); // /tmp/tiermem-prefix-…
 * await inst.uninstall();
 * ```
 */

import { repoRoot } from "./vm.ts";

/** An installation made by {@link installInto}. */
export interface Installed {
  /** The prefix (a fresh temp dir). */
  readonly prefix: string;
  /** What the installer printed. */
  readonly log: string;
  /** Variables a user sets to build against it: `PKG_CONFIG_PATH`, `MANPATH`. */
  readonly env: Record<string, string>;
  /** `scripts/install.sh --uninstall`, then removes the (then empty) prefix. */
  uninstall(): Promise<string>;
}

const decoder = new TextDecoder();

/** Runs `bash scripts/install.sh ARGS` and returns its output; throws when it fails. */
export async function installScript(args: readonly string[]): Promise<string> {
  const out = await new Deno.Command("bash", {
    args: [`${repoRoot}/scripts/install.sh`, ...args],
    cwd: repoRoot,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const log = decoder.decode(out.stdout) + decoder.decode(out.stderr);
  if (!out.success) throw new Error(`install.sh ${args.join(" ")} exited ${out.code}:\n${log}`);
  return log;
}

/** Installs into a fresh temporary prefix (`dir` overrides where). */
export async function installInto(dir?: string): Promise<Installed> {
  const prefix = dir ?? await Deno.makeTempDir({ prefix: "tiermem-prefix-" });
  const log = await installScript(["--prefix", prefix]);
  return {
    prefix,
    log,
    env: {
      PKG_CONFIG_PATH: `${prefix}/lib/pkgconfig`,
      MANPATH: `${prefix}/share/man:`,
    },
    async uninstall(): Promise<string> {
      const out = await installScript(["--prefix", prefix, "--uninstall"]);
      if (dir === undefined) await Deno.remove(prefix);
      return out;
    },
  };
}
