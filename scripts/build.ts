/**
 * Builds libhmalloc.so, libmemtier.so and hmalloc.h with the pinned Zig (installed when
 * missing) into `zig-src/zig-out/` (or `--prefix DIR`).
 *
 *   deno run -A scripts/build.ts [--optimize debug|safe|fast|small] [--cpu native]
 *                                [--target aarch64-linux-gnu.2.31] [--strip] [--prefix DIR]
 *
 * The default is the release build users run and we benchmark: `fast`, for the baseline CPU of
 * the host's architecture and glibc >= 2.31 (`zig-src/build.zig`), so the result runs on every
 * CPU of that architecture. `--cpu native` builds for this host's CPU only.
 *
 * @module
 */
import $ from "dax";
import { parseOptions } from "./support/options.ts";
import { join } from "node:path";
import { ensureZig, repoRoot } from "./support/toolchain.ts";

/** What to build. */
export interface BuildRequest {
  /** Zig optimize mode (default `fast`). */
  optimize?: "debug" | "safe" | "fast" | "small";
  /** `-Dcpu=` (e.g. `native`); default: the architecture's baseline. */
  cpu?: string;
  /** `-Dtarget=` (e.g. `aarch64-linux-gnu.2.31`); default: this architecture, glibc 2.31. */
  target?: string;
  /** Strip debug information. */
  strip?: boolean;
  /** Install prefix (default `zig-src/zig-out`). */
  prefix?: string;
}

/** The Zig source directory. */
export const zigSrcDir: string = join(repoRoot, "zig-src");

/**
 * Runs `zig build` for `request`; throws when it fails (Zig's messages are on stderr).
 *
 * @example
 * ```ts ignore
 * await buildLibraries({ optimize: "fast", target: "aarch64-linux-gnu.2.31", prefix: "/tmp/a" });
 * ```
 */
export async function buildLibraries(request: BuildRequest = {}): Promise<void> {
  const zig = await ensureZig();
  const args = [`-Doptimize=${request.optimize ?? "fast"}`];
  if (request.cpu !== undefined) args.push(`-Dcpu=${request.cpu}`);
  if (request.target !== undefined) args.push(`-Dtarget=${request.target}`);
  if (request.strip === true) args.push("-Dstrip=true");
  if (request.prefix !== undefined) args.push("--prefix", request.prefix);
  await $`${zig} build ${args}`.cwd(zigSrcDir);
}

if (import.meta.main) {
  const { values } = parseOptions("build", {
    options: {
      optimize: { type: "string" },
      cpu: { type: "string" },
      target: { type: "string" },
      strip: { type: "boolean" },
      prefix: { type: "string" },
    },
  });
  const optimize = values.optimize ?? Deno.env.get("OPTIMIZE") ?? "fast";
  if (!["debug", "safe", "fast", "small"].includes(optimize)) {
    console.error(`build: --optimize ${JSON.stringify(optimize)}: use debug, safe, fast or small`);
    Deno.exit(2);
  }
  try {
    await buildLibraries({ ...values, optimize: optimize as BuildRequest["optimize"] });
  } catch (error) {
    console.error(`build: ${error instanceof Error ? error.message : String(error)}`);
    Deno.exit(1);
  }
}
