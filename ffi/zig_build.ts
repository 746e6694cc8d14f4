/**
 * The last resort of the library chain (`library.ts`): building libhmalloc.so and libmemtier.so
 * from the package's own Zig sources, for a platform no prebuilt binary covers.
 *
 * Which sources: `zig-src/build.zig`, `zig-src/include/hmalloc.h`, every file the build script
 * names under `src/` (`b.path("src/….zig")`, C sources), and everything those `@import`,
 * `@embedFile` or `#include "…"`, transitively — a named module `@import("placement")` being
 * the root file of its folder, `src/placement/placement.zig` (the build script's rule). No file
 * list to keep in sync, and it works over https where a directory cannot be listed. The build is
 * the portable one (`zig-src/build.zig`'s default target) and lands atomically in the per-user
 * cache.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import denoConfig from "../deno.json" with { type: "json" };

/** The Zig version the sources are written for (`deno.json`'s `toolchains`). */
export const zigVersion: string = denoConfig.toolchains.zig;

async function runs(command: string[]): Promise<boolean> {
  try {
    const out = await new Deno.Command(command[0], {
      args: command.slice(1),
      stdout: "null",
      stderr: "null",
    }).output();
    return out.success;
  } catch {
    return false;
  }
}

/**
 * The Zig command to use: `zig` when it runs, else the project's `.tools/venv` (a checkout set up
 * by `scripts/`), else `python3 -m ziglang`, else `undefined`.
 *
 * @example
 * ```ts
 * import { findZig } from "./zig_build.ts";
 * console.log(await findZig()); // e.g. ["python3", "-m", "ziglang"]
 * ```
 */
export async function findZig(moduleUrl: string | URL = import.meta.url): Promise<
  string[] | undefined
> {
  const candidates = [["zig"], ["python3", "-m", "ziglang"]];
  const venv = new URL("../.tools/venv/bin/python3", moduleUrl);
  if (venv.protocol === "file:") candidates.splice(1, 0, [fileURLToPath(venv), "-m", "ziglang"]);
  for (const command of candidates) {
    if (await runs([...command, "version"])) return command;
  }
  return undefined;
}

/** Reads one file of the package: from disk for `file:`, else with `fetch`; 404 = undefined. */
export async function readPackageFile(url: URL): Promise<Uint8Array<ArrayBuffer> | undefined> {
  if (url.protocol === "file:") {
    try {
      return await Deno.readFile(url);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
  }
  const response = await fetch(url);
  if (response.status === 404) {
    await response.body?.cancel();
    return undefined;
  }
  if (!response.ok) throw new Error(`fetching ${url}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

/**
 * Reads the Zig sources of the package at `moduleUrl` (see the module comment for which), as
 * paths relative to `zig-src/` → contents.
 *
 * @example
 * ```ts
 * import { readZigSources } from "./zig_build.ts";
 * const files = await readZigSources();
 * console.log([...files.keys()]); // ["build.zig", "include/hmalloc.h", "src/…", …]
 * ```
 */
export async function readZigSources(
  moduleUrl: string | URL = import.meta.url,
): Promise<Map<string, Uint8Array>> {
  const base = new URL("../zig-src/", moduleUrl);
  const files = new Map<string, Uint8Array>();
  const decoder = new TextDecoder();
  for (const required of ["build.zig", "include/hmalloc.h"]) {
    const data = await readPackageFile(new URL(required, base));
    if (data === undefined) throw new Error(`missing Zig source ${new URL(required, base)}`);
    files.set(required, data);
  }
  const buildText = decoder.decode(files.get("build.zig"));
  // Every file the build script names under src/ (Zig roots, C sources); optional ones (guarded
  // by fileExists) may be absent.
  const pending = [...buildText.matchAll(/"(src\/[\w./-]+\.\w+)"/g)].map((m) => m[1]);
  while (pending.length > 0) {
    const path = pending.pop() as string;
    if (files.has(path)) continue;
    const url = new URL(path, base);
    if (!url.href.startsWith(base.href)) throw new Error(`Zig source outside zig-src/: ${url}`);
    const data = await readPackageFile(url);
    if (data === undefined) continue;
    files.set(path, data);
    const dir = path.slice(0, path.lastIndexOf("/") + 1);
    const text = decoder.decode(data);
    const references = path.endsWith(".zig")
      ? [...text.matchAll(/@(import|embedFile)\("([^"]+)"\)/g)]
        // std, builtin and root are not files; a named module is its folder's root file
        .filter((m) => m[1] === "embedFile" || !["std", "builtin", "root"].includes(m[2]))
        .map((m) => m[1] === "import" && !m[2].endsWith(".zig") ? `/src/${m[2]}/${m[2]}.zig` : m[2])
      : /\.(c|h)$/.test(path)
      ? [...text.matchAll(/^\s*#\s*include\s+"([^"]+)"/gm)].map((m) => m[1])
      : [];
    for (const reference of references) {
      const from = reference.startsWith("/") ? reference.slice(1) : dir + reference;
      const next = new URL(from, base).href.slice(base.href.length);
      if (!files.has(next)) pending.push(next);
    }
  }
  return files;
}

/** What {@link buildLibrary} needs. */
export interface ZigBuildOptions {
  /** The Zig command. */
  zig: string[];
  /** Where the built libraries go. */
  cacheDir: string;
  /** URL of a module of the package (default: this one). */
  moduleUrl?: string | URL;
  /** Which library's path to return (default `libhmalloc.so`); both are built. */
  fileName?: string;
  /** Progress lines (default: stderr). */
  log?: (line: string) => void;
}

/**
 * Builds libhmalloc.so and libmemtier.so from the package's Zig sources into `cacheDir`
 * (atomically: a concurrent user sees the old file or the new one, never half of one) and
 * returns the path of `fileName`.
 *
 * @example
 * ```ts ignore
 * import { buildLibrary } from "./zig_build.ts";
 * console.log(await buildLibrary({ zig: ["zig"], cacheDir: "/tmp/tiermem" }));
 * ```
 */
export async function buildLibrary(options: ZigBuildOptions): Promise<string> {
  const cache = options.cacheDir;
  const fileName = options.fileName ?? "libhmalloc.so";
  const log = options.log ?? ((line: string) => console.error(line));
  const sources = await readZigSources(options.moduleUrl ?? import.meta.url);
  const work = await Deno.makeTempDir({ prefix: "tiermem-zig-" });
  try {
    for (const [path, data] of sources) {
      await Deno.mkdir(`${work}/src/${path}`.replace(/\/[^/]+$/, ""), { recursive: true });
      await Deno.writeFile(`${work}/src/${path}`, data);
    }
    log(`tiermem: building ${fileName} with ${options.zig.join(" ")} into ${cache}`);
    const [command, ...prefixArgs] = options.zig;
    const out = await new Deno.Command(command, {
      args: [...prefixArgs, "build", "-Doptimize=fast", "--prefix", `${work}/out`],
      cwd: `${work}/src`,
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      const text = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-20).join("\n");
      throw new Error(
        `zig build of ${fileName} failed (exit ${out.code}; the sources need Zig ${zigVersion}):\n` +
          text,
      );
    }
    await Deno.mkdir(cache, { recursive: true });
    let built = "";
    for (const entry of Deno.readDirSync(`${work}/out/lib`)) {
      if (!entry.name.endsWith(".so")) continue; // the .so names (symlinks followed by copyFile)
      const staged = `${cache}/.${entry.name}.${Deno.pid}.tmp`;
      await Deno.copyFile(`${work}/out/lib/${entry.name}`, staged);
      await Deno.rename(staged, `${cache}/${entry.name}`);
      if (entry.name === fileName) built = `${cache}/${entry.name}`;
    }
    if (built === "") throw new Error(`zig build produced no ${fileName}`);
    return built;
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}
