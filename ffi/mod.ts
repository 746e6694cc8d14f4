/**
 * The advanced entry of tiermem (`@tiermem/tiermem/ffi`): libhmalloc.so's raw FFI layer, for
 * tools that measure or test the C library itself (benchmarks, the project's own tests).
 *
 * Unlike the main entry (`mod.ts`), nothing here keeps JavaScript safe: `HmallocLibrary.symbols`
 * are the C functions themselves, so `symbols.hfree(ptr)` frees memory without detaching any
 * ArrayBuffer over it, and a later read of that buffer reads freed memory. Use the main entry's
 * `hfree`, `Pool` and `residency` unless you need the C ABI as it is.
 *
 * - `symbols` / `HmallocSymbols`: the one symbol table (`Deno.dlopen` interface).
 * - `openLibrary`, `openLibrarySync`, `HmallocLibrary`: open the `.so` (a disposable handle).
 * - `locateLibrary`, `locateLibrarySync`, `localBuildPath`, `cacheDir`, `libraryEnvVar`,
 *   `libraryVersion`: where the `.so` is looked for.
 * - `buildLibrary`, `findZig`, `readZigSources`, `zigVersion`: building it from the package's
 *   Zig sources.
 *
 * @example
 * ```ts
 * import { openLibrary } from "./mod.ts";
 * using library = await openLibrary();
 * const ptr = library.symbols.hmalloc(64n);
 * library.symbols.hfree(ptr); // raw C: no ArrayBuffer was made, so none needs detaching
 * ```
 *
 * @module
 */

export {
  buildLibrary,
  cacheDir,
  findZig,
  HmallocLibrary,
  type HmallocSymbols,
  libraryEnvVar,
  libraryEnvVars,
  libraryFileNames,
  type LibraryLocation,
  type LibraryName,
  type LibrarySource,
  libraryVersion,
  localBuildPath,
  locateLibrary,
  locateLibrarySync,
  type LocateOptions,
  openLibrary,
  openLibrarySync,
  readZigSources,
  symbols,
  zigVersion,
} from "./library.ts";
export type { ZigBuildOptions } from "./zig_build.ts";
export {
  type DistFile,
  type DistManifest,
  installPrebuilt,
  platformKey,
  type PrebuiltResult,
  readManifest,
  sha256Hex,
} from "./prebuilt.ts";
