/**
 * `deno task dist`: the prebuilt libraries that `deno publish` ships, so that Deno users need no
 * Zig. For each platform — linux-x86_64 (`x86_64-linux-gnu.2.31`) and linux-aarch64
 * (`aarch64-linux-gnu.2.31`) — a stripped `fast` build for the architecture's baseline CPU into
 * `dist/<platform>/` (libhmalloc.so, libmemtier.so), and `dist/manifest.json` with each file's
 * SHA-256 and size, which the loader (`ffi/prebuilt.ts`) checks before it loads anything.
 *
 *   deno task dist [--out DIR]      (default: dist/ in the repository; git-ignored)
 *
 * @module
 */
import { parseOptions } from "./support/options.ts";
import { join } from "node:path";
import { repoRoot, toolchainVersions } from "./support/toolchain.ts";
import { buildLibraries } from "./build.ts";
import denoConfig from "../deno.json" with { type: "json" };
import { type DistManifest, sha256Hex } from "../ffi/prebuilt.ts";

/** The shipped platforms: `dist/` directory → Zig target (glibc floor included). */
export const distTargets: Readonly<Record<string, string>> = {
  "linux-x86_64": "x86_64-linux-gnu.2.31",
  "linux-aarch64": "aarch64-linux-gnu.2.31",
};

/** The shipped files of each platform. */
export const distFileNames: readonly string[] = ["libhmalloc.so", "libmemtier.so"];

/**
 * Builds every platform into `out` and writes its manifest; returns the manifest.
 *
 * @example
 * ```ts ignore
 * const manifest = await buildDist("/tmp/dist");
 * console.log(Object.keys(manifest.files));
 * ```
 */
export async function buildDist(out: string): Promise<DistManifest> {
  const manifest: DistManifest = {
    version: denoConfig.version,
    zig: toolchainVersions.zig,
    glibc: "2.31",
    cpu: "baseline",
    files: {},
  };
  const staging = await Deno.makeTempDir({ prefix: "tiermem-dist-" });
  try {
    for (const [platform, target] of Object.entries(distTargets)) {
      const prefix = join(staging, platform);
      await buildLibraries({ optimize: "fast", target, strip: true, prefix });
      await Deno.mkdir(join(out, platform), { recursive: true });
      for (const name of distFileNames) {
        const data = await Deno.readFile(join(prefix, "lib", name)); // follows the soname links
        await Deno.writeFile(join(out, platform, name), data, { mode: 0o755 });
        manifest.files[`${platform}/${name}`] = {
          sha256: await sha256Hex(data),
          bytes: data.length,
        };
      }
    }
  } finally {
    await Deno.remove(staging, { recursive: true });
  }
  await Deno.writeTextFile(join(out, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
  return manifest;
}

if (import.meta.main) {
  const { values } = parseOptions("dist", { options: { out: { type: "string" } } });
  const out = values.out ?? join(repoRoot, "dist");
  const manifest = await buildDist(out);
  for (const [file, { sha256, bytes }] of Object.entries(manifest.files)) {
    console.log(`${file.padEnd(28)} ${String(bytes).padStart(9)} B  sha256 ${sha256}`);
  }
  console.log(`manifest: ${join(out, "manifest.json")}`);
}
