/**
 * Finding, building and opening libhmalloc.so.
 *
 * The location chain, first hit wins:
 *
 * 1. `TIERMEM_HMALLOC_LIB` — names the `.so`; when set, it must exist (no silent fallback);
 * 2. the local build, `zig-src/zig-out/lib/libhmalloc.so` next to this package, when this module
 *    is a `file:` URL (a checkout, after `deno task build`);
 * 3. the per-user cache, `$XDG_CACHE_HOME/tiermem/<version>/libhmalloc.so` (else
 *    `~/.cache/tiermem/…`);
 * 4. (async only) a build from the package's own Zig sources when Zig is present (`zig` on PATH, or
 *    `python3 -m ziglang`): the sources are read relative to `import.meta.url` — from disk in a
 *    checkout, with `fetch` when the package was imported from JSR or any https URL — into a temp
 *    dir, built with `zig build -Doptimize=fast`, and the `.so` is moved atomically into the cache.
 *    A module served over https cannot be `dlopen`ed in place, so this is how a JSR import gets
 *    its native half.
 *
 * Otherwise an Error lists every place looked at and says how to build or point to the library.
 *
 * Which sources: `zig-src/build.zig`, `zig-src/include/hmalloc.h`, every file the build script
 * names under `src/` (`b.path("src/….zig")`, C sources), and everything those `@import`,
 * `@embedFile` or `#include "…"`, transitively. No file list to keep in sync, and it works over
 * https where a directory cannot be listed.
 *
 * @module
 */

import { type HmallocSymbols, symbols } from "./symbols.ts";
import denoConfig from "../deno.json" with { type: "json" };

export { type HmallocSymbols, symbols };

/** The environment variable naming the `.so` to use. */
export const libraryEnvVar = "TIERMEM_HMALLOC_LIB";

/** The package version: the cache directory's name. */
export const libraryVersion: string = denoConfig.version;

/** The Zig version the sources are written for (`scripts/versions.sh`). */
export const zigVersion = "0.17.0";

/** Where the library was found. */
export type LibrarySource = "env" | "local" | "cache" | "built";

/** A located library. */
export interface LibraryLocation {
  /** Absolute path of the `.so`. */
  path: string;
  /** Which step of the chain found it. */
  source: LibrarySource;
}

/** Options of the location functions (defaults: the real environment and this module). */
export interface LocateOptions {
  /** Reads an environment variable (default `Deno.env.get`). */
  env?: (name: string) => string | undefined;
  /** URL of this module, relative to which the package's files are found. */
  moduleUrl?: string | URL;
  /** The cache directory holding `libhmalloc.so` (default `<user cache>/tiermem/<version>`). */
  cacheDir?: string;
  /** Whether {@link locateLibrary} may build with Zig (default true). */
  build?: boolean;
  /** The Zig command (default: `zig` if it runs, else `python3 -m ziglang`). */
  zig?: string[];
  /** Progress lines of a build (default: stderr). */
  log?: (line: string) => void;
}

const libName = "libhmalloc.so";

function envOf(options: LocateOptions): (name: string) => string | undefined {
  return options.env ?? ((name: string) => Deno.env.get(name));
}

function moduleUrlOf(options: LocateOptions): URL {
  return new URL(options.moduleUrl ?? import.meta.url);
}

function exists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/**
 * The local build's path for a module at `moduleUrl`, or `undefined` when the module is not a
 * `file:` URL.
 *
 * @example
 * ```ts
 * import { localBuildPath } from "./library.ts";
 * console.log(localBuildPath()); // …/zig-src/zig-out/lib/libhmalloc.so
 * ```
 */
export function localBuildPath(moduleUrl: string | URL = import.meta.url): string | undefined {
  const url = new URL(`../zig-src/zig-out/lib/${libName}`, moduleUrl);
  return url.protocol === "file:" ? decodeURIComponent(url.pathname) : undefined;
}

/**
 * The per-user cache directory for this version, or `undefined` without `XDG_CACHE_HOME` and
 * `HOME`.
 *
 * @example
 * ```ts
 * import { cacheDir } from "./library.ts";
 * console.log(cacheDir()); // e.g. /home/me/.cache/tiermem/0.1.0
 * ```
 */
export function cacheDir(options: LocateOptions = {}): string | undefined {
  if (options.cacheDir !== undefined) return options.cacheDir;
  const env = envOf(options);
  const xdg = env("XDG_CACHE_HOME");
  const home = env("HOME");
  const base = xdg ? xdg : home ? `${home}/.cache` : undefined;
  return base === undefined ? undefined : `${base}/tiermem/${libraryVersion}`;
}

/** The places the synchronous chain looks at, in order, for error messages. */
function lookedAt(options: LocateOptions): string[] {
  const local = localBuildPath(moduleUrlOf(options));
  const cache = cacheDir(options);
  return [
    `${libraryEnvVar}: unset`,
    local === undefined ? "local build: none (module is not a file: URL)" : `${local}: missing`,
    cache === undefined
      ? "cache: none (no XDG_CACHE_HOME or HOME)"
      : `${cache}/${libName}: missing`,
  ];
}

function notFoundError(options: LocateOptions, zigNote: string): Error {
  return new Error(
    `${libName} not found. Looked at:\n  ${lookedAt(options).join("\n  ")}\n  ${zigNote}\n` +
      `Build it with \`deno task build\` in a tiermem checkout, install Zig ${zigVersion} ` +
      `(\`pip install ziglang==${zigVersion}\`) so it is built on first use, or set ` +
      `${libraryEnvVar}=/path/to/${libName}.`,
  );
}

/**
 * Steps 1–3 of the chain (no build): env var, local build, cache. Throws an Error naming every
 * place looked at when none has the library, or naming the path when the env var points nowhere.
 *
 * @example
 * ```ts
 * import { locateLibrarySync } from "./library.ts";
 * try {
 *   console.log(locateLibrarySync());
 * } catch (error) {
 *   console.log(String(error));
 * }
 * ```
 */
export function locateLibrarySync(options: LocateOptions = {}): LibraryLocation {
  const fromEnv = envOf(options)(libraryEnvVar);
  if (fromEnv !== undefined && fromEnv !== "") {
    if (!exists(fromEnv)) {
      throw new Error(`${libraryEnvVar}=${fromEnv}: no such file (it must name ${libName})`);
    }
    return { path: fromEnv, source: "env" };
  }
  const local = localBuildPath(moduleUrlOf(options));
  if (local !== undefined && exists(local)) return { path: local, source: "local" };
  const cache = cacheDir(options);
  if (cache !== undefined && exists(`${cache}/${libName}`)) {
    return { path: `${cache}/${libName}`, source: "cache" };
  }
  throw notFoundError(options, "build: not tried (use the async locateLibrary to build with Zig)");
}

/**
 * The whole chain: {@link locateLibrarySync}, then a build with Zig into the cache.
 *
 * @example
 * ```ts
 * import { locateLibrary } from "./library.ts";
 * const { path, source } = await locateLibrary({ build: false }).catch(() => ({
 *   path: "",
 *   source: "none",
 * }));
 * console.log(source, path);
 * ```
 */
export async function locateLibrary(options: LocateOptions = {}): Promise<LibraryLocation> {
  try {
    return locateLibrarySync(options);
  } catch (error) {
    const fromEnv = envOf(options)(libraryEnvVar);
    if (options.build === false || (fromEnv !== undefined && fromEnv !== "")) throw error;
  }
  const cache = cacheDir(options);
  if (cache === undefined) throw notFoundError(options, "build: no cache directory to build into");
  const zig = options.zig ?? await findZig();
  if (zig === undefined) {
    throw notFoundError(options, "zig: not found (neither `zig` on PATH nor `python3 -m ziglang`)");
  }
  const path = await buildLibrary({ ...options, zig, cacheDir: cache });
  return { path, source: "built" };
}

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
 * The Zig command to use: `zig` when it runs, else `python3 -m ziglang`, else `undefined`.
 *
 * @example
 * ```ts
 * import { findZig } from "./library.ts";
 * console.log(await findZig()); // e.g. ["python3", "-m", "ziglang"]
 * ```
 */
export async function findZig(): Promise<string[] | undefined> {
  for (const command of [["zig"], ["python3", "-m", "ziglang"]]) {
    if (await runs([...command, "version"])) return command;
  }
  return undefined;
}

async function readSource(url: URL): Promise<Uint8Array | undefined> {
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
 * import { readZigSources } from "./library.ts";
 * const files = await readZigSources();
 * console.log([...files.keys()]); // ["build.zig", "include/hmalloc.h", "src/hmalloc_api.zig", …]
 * ```
 */
export async function readZigSources(
  moduleUrl: string | URL = import.meta.url,
): Promise<Map<string, Uint8Array>> {
  const base = new URL("../zig-src/", moduleUrl);
  const files = new Map<string, Uint8Array>();
  const decoder = new TextDecoder();
  for (const required of ["build.zig", "include/hmalloc.h"]) {
    const data = await readSource(new URL(required, base));
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
    const data = await readSource(url);
    if (data === undefined) continue;
    files.set(path, data);
    const dir = path.slice(0, path.lastIndexOf("/") + 1);
    const text = decoder.decode(data);
    const references = path.endsWith(".zig")
      ? [...text.matchAll(/@(import|embedFile)\("([^"]+)"\)/g)]
        // std, builtin and named modules are not files
        .filter((m) => m[1] === "embedFile" || m[2].endsWith(".zig")).map((m) => m[2])
      : /\.(c|h)$/.test(path)
      ? [...text.matchAll(/^\s*#\s*include\s+"([^"]+)"/gm)].map((m) => m[1])
      : [];
    for (const reference of references) {
      const next = new URL(dir + reference, base).href.slice(base.href.length);
      if (!files.has(next)) pending.push(next);
    }
  }
  return files;
}

/**
 * Builds libhmalloc.so from the package's Zig sources into `cacheDir` (atomically: a
 * concurrent user sees the old file or the new one, never half of one) and returns its path.
 *
 * @example
 * ```ts ignore
 * import { buildLibrary } from "./library.ts";
 * console.log(await buildLibrary({ zig: ["python3", "-m", "ziglang"] }));
 * ```
 */
export async function buildLibrary(
  options: LocateOptions & { zig: string[] },
): Promise<string> {
  const cache = cacheDir(options);
  if (cache === undefined) throw new Error("buildLibrary: no cache directory (set HOME)");
  const log = options.log ?? ((line: string) => console.error(line));
  const sources = await readZigSources(moduleUrlOf(options));
  const work = await Deno.makeTempDir({ prefix: "tiermem-zig-" });
  try {
    for (const [path, data] of sources) {
      await Deno.mkdir(`${work}/src/${path}`.replace(/\/[^/]+$/, ""), { recursive: true });
      await Deno.writeFile(`${work}/src/${path}`, data);
    }
    log(`tiermem: building ${libName} with ${options.zig.join(" ")} into ${cache}`);
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
        `zig build of ${libName} failed (exit ${out.code}; the sources need Zig ${zigVersion}):\n` +
          text,
      );
    }
    await Deno.mkdir(cache, { recursive: true });
    const staged = `${cache}/.${libName}.${Deno.pid}.tmp`;
    await Deno.copyFile(`${work}/out/lib/${libName}`, staged);
    await Deno.rename(staged, `${cache}/${libName}`);
    return `${cache}/${libName}`;
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}

/**
 * libhmalloc.so, opened with every symbol of `hmalloc.h`; closing it (or leaving a `using`
 * scope) unloads it — every pointer it handed out is then invalid.
 *
 * @example
 * ```ts ignore
 * import { HmallocLibrary, locateLibrarySync } from "./library.ts";
 * using lib = new HmallocLibrary(locateLibrarySync());
 * const p = lib.symbols.hmalloc(64n);
 * lib.symbols.hfree(p);
 * ```
 */
export class HmallocLibrary implements Disposable {
  /** Path of the opened `.so`. */
  readonly path: string;
  /** Where the chain found it. */
  readonly source: LibrarySource;
  #library: Deno.DynamicLibrary<HmallocSymbols> | undefined;

  /** Opens the library at `location` (an Error names the path and the failing symbol). */
  constructor(location: LibraryLocation) {
    this.path = location.path;
    this.source = location.source;
    try {
      this.#library = Deno.dlopen(location.path, symbols);
    } catch (error) {
      throw new Error(
        `cannot open ${location.path} (found via ${location.source}): ${
          error instanceof Error ? error.message : String(error)
        }. Rebuild it (\`deno task build\`) or set ${libraryEnvVar} to a current ${libName}.`,
        { cause: error },
      );
    }
  }

  /** The library's functions; a TypeError once closed. */
  get symbols(): Deno.StaticForeignLibraryInterface<HmallocSymbols> {
    if (this.#library === undefined) {
      throw new TypeError(`HmallocLibrary ${this.path} is closed`);
    }
    return this.#library.symbols;
  }

  /** Whether {@link close} was called. */
  get closed(): boolean {
    return this.#library === undefined;
  }

  /** Unloads the library (idempotent). */
  close(): void {
    this.#library?.close();
    this.#library = undefined;
  }

  /** Same as {@link close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Locates (building if needed, see {@link locateLibrary}) and opens libhmalloc.so.
 *
 * @example
 * ```ts ignore
 * import { openLibrary } from "./library.ts";
 * using lib = await openLibrary();
 * console.log(lib.path, lib.source);
 * ```
 */
export async function openLibrary(options: LocateOptions = {}): Promise<HmallocLibrary> {
  return new HmallocLibrary(await locateLibrary(options));
}

/**
 * Locates (no build, see {@link locateLibrarySync}) and opens libhmalloc.so.
 *
 * @example
 * ```ts ignore
 * import { openLibrarySync } from "./library.ts";
 * using lib = openLibrarySync();
 * console.log(lib.path);
 * ```
 */
export function openLibrarySync(options: LocateOptions = {}): HmallocLibrary {
  return new HmallocLibrary(locateLibrarySync(options));
}
