/**
 * Finding and opening tiermem's native libraries, libhmalloc.so (the FFI) and libmemtier.so
 * (preloaded into programs by `cli.ts memtier`).
 *
 * The location chain, first hit wins:
 *
 * 1. `TIERMEM_HMALLOC_LIB` / `TIERMEM_MEMTIER_LIB` — names the `.so`; when set, it must exist
 *    (no silent fallback);
 * 2. the local build, `zig-src/zig-out/lib/` next to this package, when this module is a
 *    `file:` URL (a checkout, after `deno task build`);
 * 3. (async) the prebuilt binary for this platform shipped beside the module in `dist/`,
 *    verified against `dist/manifest.json`'s SHA-256 and copied into the per-user cache
 *    (`prebuilt.ts`) — how a registry or URL import gets its native half with no Zig;
 * 4. the per-user cache of earlier builds, `$XDG_CACHE_HOME/tiermem/<version>/` (else
 *    `~/.cache/tiermem/…`);
 * 5. (async) a build from the package's own Zig sources into that cache when Zig is present
 *    (`zig_build.ts`).
 *
 * Otherwise one Error lists every place tried and says what to do.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { type HmallocSymbols, symbols } from "./symbols.ts";
import { installPrebuilt, platformKey } from "./prebuilt.ts";
import { buildLibrary, findZig, readZigSources, zigVersion } from "./zig_build.ts";
import denoConfig from "../deno.json" with { type: "json" };

export { buildLibrary, findZig, type HmallocSymbols, readZigSources, symbols, zigVersion };

/** The two native libraries. */
export type LibraryName = "hmalloc" | "memtier";

/** Each library's file name. */
export const libraryFileNames: Readonly<Record<LibraryName, string>> = {
  hmalloc: "libhmalloc.so",
  memtier: "libmemtier.so",
};

/** The environment variable naming each library's `.so`. */
export const libraryEnvVars: Readonly<Record<LibraryName, string>> = {
  hmalloc: "TIERMEM_HMALLOC_LIB",
  memtier: "TIERMEM_MEMTIER_LIB",
};

/** The environment variable naming libhmalloc.so. */
export const libraryEnvVar: string = libraryEnvVars.hmalloc;

/** The package version: the cache directory's name. */
export const libraryVersion: string = denoConfig.version;

/** Where the library was found. */
export type LibrarySource = "env" | "local" | "prebuilt" | "cache" | "built";

/** A located library. */
export interface LibraryLocation {
  /** Absolute path of the `.so`. */
  path: string;
  /** Which step of the chain found it. */
  source: LibrarySource;
}

/** Options of the location functions (defaults: the real environment and this module). */
export interface LocateOptions {
  /** Which library (default `hmalloc`). */
  library?: LibraryName;
  /** Reads an environment variable (default `Deno.env.get`). */
  env?: (name: string) => string | undefined;
  /** URL of this module, relative to which the package's files are found. */
  moduleUrl?: string | URL;
  /** The cache directory (default `<user cache>/tiermem/<version>`). */
  cacheDir?: string;
  /** Whether {@link locateLibrary} may use the shipped prebuilt binaries (default true). */
  prebuilt?: boolean;
  /** Whether {@link locateLibrary} may build with Zig (default true). */
  build?: boolean;
  /** The Zig command (default: {@link findZig}). */
  zig?: string[];
  /** Progress lines of a build (default: stderr). */
  log?: (line: string) => void;
}

function envOf(options: LocateOptions): (name: string) => string | undefined {
  return options.env ?? ((name: string) => Deno.env.get(name));
}

function moduleUrlOf(options: LocateOptions): URL {
  return new URL(options.moduleUrl ?? import.meta.url);
}

function fileNameOf(options: LocateOptions): string {
  return libraryFileNames[options.library ?? "hmalloc"];
}

function envVarOf(options: LocateOptions): string {
  return libraryEnvVars[options.library ?? "hmalloc"];
}

function exists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/**
 * The local build's path of `library` for a module at `moduleUrl`, or `undefined` when the
 * module is not a `file:` URL.
 *
 * @example
 * ```ts
 * import { localBuildPath } from "./library.ts";
 * console.log(localBuildPath()); // …/zig-src/zig-out/lib/libhmalloc.so
 * ```
 */
export function localBuildPath(
  moduleUrl: string | URL = import.meta.url,
  library: LibraryName = "hmalloc",
): string | undefined {
  const url = new URL(`../zig-src/zig-out/lib/${libraryFileNames[library]}`, moduleUrl);
  return url.protocol === "file:" ? fileURLToPath(url) : undefined;
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

function notFoundError(options: LocateOptions, tried: string[]): Error {
  const name = fileNameOf(options);
  return new Error(
    `${name} not found. Looked at:\n  ${tried.join("\n  ")}\n` +
      `Build it with \`deno task build\` in a tiermem checkout, install Zig ${zigVersion} ` +
      `(\`pip install ziglang==${zigVersion}\`) so it is built on first use, or set ` +
      `${envVarOf(options)}=/path/to/${name}.`,
  );
}

/** Step 1: the env var, which must name a file when set. */
function fromEnv(options: LocateOptions, tried: string[]): LibraryLocation | undefined {
  const variable = envVarOf(options);
  const given = envOf(options)(variable);
  if (given === undefined || given === "") {
    tried.push(`${variable}: unset`);
    return undefined;
  }
  if (!exists(given)) {
    throw new Error(`${variable}=${given}: no such file (it must name ${fileNameOf(options)})`);
  }
  return { path: given, source: "env" };
}

/** Step 2: the local build. */
function fromLocalBuild(options: LocateOptions, tried: string[]): LibraryLocation | undefined {
  const local = localBuildPath(moduleUrlOf(options), options.library);
  if (local !== undefined && exists(local)) return { path: local, source: "local" };
  tried.push(
    local === undefined ? "local build: none (module is not a file: URL)" : `${local}: missing`,
  );
  return undefined;
}

/** Step 4: the cache of earlier builds. */
function fromBuildCache(options: LocateOptions, tried: string[]): LibraryLocation | undefined {
  const cache = cacheDir(options);
  const path = cache === undefined ? undefined : `${cache}/${fileNameOf(options)}`;
  if (path !== undefined && exists(path)) return { path, source: "cache" };
  tried.push(path === undefined ? "cache: none (no XDG_CACHE_HOME or HOME)" : `${path}: missing`);
  return undefined;
}

/**
 * Steps 1, 2 and 4 of the chain (no fetch, no build): env var, local build, cache. Throws an
 * Error naming every place looked at when none has the library, or naming the path when the env
 * var points nowhere.
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
  const tried: string[] = [];
  const found = fromEnv(options, tried) ?? fromLocalBuild(options, tried) ??
    fromBuildCache(options, tried);
  if (found !== undefined) return found;
  tried.push("prebuilt: not tried (use the async locateLibrary)");
  throw notFoundError(options, tried);
}

/**
 * The whole chain: env var, local build, the shipped prebuilt binary (verified, cached), the
 * cache of builds, then a build with Zig into the cache.
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
  const tried: string[] = [];
  const found = fromEnv(options, tried) ?? fromLocalBuild(options, tried);
  if (found !== undefined) return found;
  const cache = cacheDir(options);
  if (options.prebuilt !== false) {
    const prebuilt = await installPrebuilt(fileNameOf(options), moduleUrlOf(options), cache);
    if ("path" in prebuilt) return { path: prebuilt.path, source: "prebuilt" };
    tried.push(`prebuilt ${platformKey()}: ${prebuilt.missing}`);
  }
  const built = fromBuildCache(options, tried);
  if (built !== undefined) return built;
  if (options.build === false) {
    tried.push("build: not tried");
    throw notFoundError(options, tried);
  }
  if (cache === undefined) {
    tried.push("build: no cache directory to build into");
    throw notFoundError(options, tried);
  }
  const zig = options.zig ?? await findZig(moduleUrlOf(options));
  if (zig === undefined) {
    tried.push("build: zig not found (neither `zig` on PATH nor `python3 -m ziglang`)");
    throw notFoundError(options, tried);
  }
  const path = await buildLibrary({
    zig,
    cacheDir: cache,
    moduleUrl: moduleUrlOf(options),
    fileName: fileNameOf(options),
    log: options.log,
  });
  return { path, source: "built" };
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
        }. Rebuild it (\`deno task build\`) or set ${libraryEnvVar} to a current libhmalloc.so.`,
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
