/**
 * Prebuilt libraries shipped with the package: `dist/<os>-<arch>/lib*.so`, built by
 * `deno task dist` (stripped, the architecture's baseline CPU, glibc >= 2.31) and listed with
 * their SHA-256 in `dist/manifest.json`. A module served over http(s) cannot be `dlopen`ed in
 * place, so a binary is fetched relative to this module, checked against the manifest and
 * copied into the per-user cache under a directory named for its checksum (the way
 * @denosaurs/plug caches): a new version never meets a stale file, and a cached file is checked
 * again before each use. A file whose checksum differs from the manifest is refused, never
 * loaded.
 *
 * @module
 */

import { readPackageFile } from "./zig_build.ts";

/** One shipped file. */
export interface DistFile {
  /** SHA-256 of the file, lowercase hex. */
  sha256: string;
  /** Its size in bytes. */
  bytes: number;
}

/** `dist/manifest.json`. */
export interface DistManifest {
  /** The package version the binaries were built for. */
  version: string;
  /** The Zig that built them. */
  zig: string;
  /** The glibc floor they were linked against. */
  glibc: string;
  /** The CPU they target (`baseline`: every CPU of the architecture). */
  cpu: string;
  /** `<os>-<arch>/<file>` → checksum and size. */
  files: Record<string, DistFile>;
}

/**
 * This process's platform key, the `dist/` directory name: `linux-x86_64`, `linux-aarch64`.
 *
 * @example
 * ```ts
 * import { platformKey } from "./prebuilt.ts";
 * console.log(platformKey()); // "linux-x86_64"
 * ```
 */
export function platformKey(): string {
  return `${Deno.build.os}-${Deno.build.arch}`;
}

/**
 * SHA-256 of `data` as lowercase hex.
 *
 * @example
 * ```ts
 * import { sha256Hex } from "./prebuilt.ts";
 * console.log(await sha256Hex(new Uint8Array()));
 * ```
 */
export async function sha256Hex(data: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Reads the manifest beside `moduleUrl` (`../dist/manifest.json`); undefined when absent. */
export async function readManifest(moduleUrl: string | URL): Promise<DistManifest | undefined> {
  const data = await readPackageFile(new URL("../dist/manifest.json", moduleUrl));
  if (data === undefined) return undefined;
  return JSON.parse(new TextDecoder().decode(data)) as DistManifest;
}

/** What {@link installPrebuilt} found: a path, or why there is none (for the error's list). */
export type PrebuiltResult = { path: string } | { missing: string };

/**
 * The cached copy of the shipped `fileName` for this platform, fetched and verified first when
 * needed. Throws when the shipped file's checksum differs from the manifest.
 *
 * @example
 * ```ts ignore
 * import { installPrebuilt } from "./prebuilt.ts";
 * console.log(await installPrebuilt("libhmalloc.so", import.meta.url, "/tmp/cache"));
 * ```
 */
export async function installPrebuilt(
  fileName: string,
  moduleUrl: string | URL,
  cacheDir: string | undefined,
): Promise<PrebuiltResult> {
  const manifestUrl = new URL("../dist/manifest.json", moduleUrl);
  const manifest = await readManifest(moduleUrl);
  if (manifest === undefined) return { missing: `${manifestUrl}: none shipped` };
  const key = `${platformKey()}/${fileName}`;
  const entry = manifest.files[key];
  if (entry === undefined) return { missing: `${manifestUrl}: no ${key} (none for this platform)` };
  if (cacheDir === undefined) return { missing: `${key}: no cache directory (no HOME)` };
  const dir = `${cacheDir}/prebuilt/${entry.sha256.slice(0, 16)}`;
  const cached = `${dir}/${fileName}`;
  try {
    const data = await Deno.readFile(cached);
    if (await sha256Hex(data) === entry.sha256) return { path: cached };
  } catch { /* not cached yet */ }
  const url = new URL(`../dist/${key}`, moduleUrl);
  const data = await readPackageFile(url);
  if (data === undefined) return { missing: `${url}: listed in the manifest but not shipped` };
  const actual = await sha256Hex(data);
  if (actual !== entry.sha256) {
    throw new Error(
      `${url}: checksum mismatch (manifest sha256 ${entry.sha256}, file ${actual}): ` +
        "refusing to load it",
    );
  }
  await Deno.mkdir(dir, { recursive: true });
  const staged = `${cached}.${Deno.pid}.tmp`;
  await Deno.writeFile(staged, data, { mode: 0o755 });
  await Deno.rename(staged, cached);
  return { path: cached };
}
