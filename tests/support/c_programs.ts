/**
 * Building the C test programs of `tests/c/` against the built library, for Deno tests.
 *
 * Programs are compiled with gcc into `tests/out/` (git-ignored) with
 * `-I zig-src/zig-out/include -L zig-src/zig-out/lib -lhmalloc -Wl,-rpath,<abs lib dir>`, so
 * they run without LD_LIBRARY_PATH, also inside the VM (which sees the host's files).
 * `TIERMEM_LIB_DIR` points the tests at another build of libhmalloc.so.
 *
 * @example
 * ```ts
 * import { buildCProgram } from "./c_programs.ts";
 * const exe = await buildCProgram("placement");
 * ```
 */

import { repoRoot } from "./vm.ts";

/** Directory of the built libhmalloc.so. */
export const libDir: string = Deno.env.get("TIERMEM_LIB_DIR") ?? `${repoRoot}/zig-src/zig-out/lib`;
/** Directory of the installed hmalloc.h (`TIERMEM_INCLUDE_DIR` overrides; falls back to the source). */
export const includeDir: string = Deno.env.get("TIERMEM_INCLUDE_DIR") ??
  `${repoRoot}/zig-src/zig-out/include`;
/** Where test programs are built. */
export const outDir: string = `${repoRoot}/tests/out`;

/**
 * Why a built library at `path` cannot be tested (`PATH not built (bash scripts/build.sh)`), or
 * false when it is there: the tests that need it are ignored and say so.
 */
export function missingLibrary(path: string): string | false {
  try {
    Deno.statSync(path);
    return false;
  } catch {
    return `${path} not built (bash scripts/build.sh)`;
  }
}

/** Whether libhmalloc.so exists and exports the hmalloc API, and if not, why. */
export type LibraryStatus = { ok: true } | { ok: false; reason: string };

/** Checks that `libDir/libhmalloc.so` exports hmalloc and hfree (via `nm -D`). */
export function hmallocLibraryStatus(): LibraryStatus {
  const lib = `${libDir}/libhmalloc.so`;
  const missing = missingLibrary(lib);
  if (missing) return { ok: false, reason: missing };
  const out = new Deno.Command("nm", { args: ["-D", "--defined-only", lib] }).outputSync();
  const names = new Set(
    new TextDecoder().decode(out.stdout).split("\n").map((l: string) => l.trim().split(/\s+/)[2]),
  );
  const absent = ["hmalloc", "hfree"].filter((n: string) => !names.has(n));
  if (absent.length > 0) {
    return { ok: false, reason: `${lib} does not export ${absent.join(", ")}` };
  }
  return { ok: true };
}

/** Options of {@link buildCProgram}. */
export interface BuildOptions {
  /** Link against libhmalloc (default true). */
  hmalloc?: boolean;
  /** Extra gcc arguments. */
  extra?: readonly string[];
  /** C++: compile `tests/c/NAME.cpp` with g++ (C++17) instead of `NAME.c` with gcc. */
  cxx?: boolean;
}

const built = new Map<string, Promise<string>>();

/**
 * Compiles `tests/c/NAME.c` (or `NAME.cpp`, see {@link BuildOptions.cxx}) into `tests/out/NAME`
 * (once per test process) and returns the executable's absolute path. Throws with the
 * compiler's messages when compiling fails.
 */
export function buildCProgram(name: string, opts: BuildOptions = {}): Promise<string> {
  const key = JSON.stringify([name, opts.hmalloc ?? true, opts.extra ?? [], opts.cxx ?? false]);
  let exe = built.get(key);
  if (exe === undefined) {
    exe = compile(name, opts);
    built.set(key, exe);
    exe.catch(() => built.delete(key));
  }
  return exe;
}

async function compile(name: string, opts: BuildOptions): Promise<string> {
  const linkHmalloc = opts.hmalloc ?? true;
  if (linkHmalloc) {
    const status = hmallocLibraryStatus();
    if (!status.ok) throw new Error(`cannot build ${name}.c: ${status.reason}`);
  }
  await Deno.mkdir(outDir, { recursive: true });
  const exe = `${outDir}/${name}`;
  let include = includeDir;
  try {
    Deno.statSync(`${includeDir}/hmalloc.h`);
  } catch {
    include = `${repoRoot}/zig-src/include`;
  }
  const args: string[] = [
    "-O2",
    "-g",
    "-Wall",
    "-Wextra",
    "-Werror",
    opts.cxx ? "-std=gnu++17" : "-std=gnu11",
    "-I",
    include,
    "-o",
    exe,
    `${repoRoot}/tests/c/${name}.${opts.cxx ? "cpp" : "c"}`,
    ...(linkHmalloc ? ["-L", libDir, "-lhmalloc", `-Wl,-rpath,${libDir}`] : []),
    ...(opts.extra ?? []),
  ];
  const compiler = opts.cxx ? "g++" : "gcc";
  const source = `${name}.${opts.cxx ? "cpp" : "c"}`;
  const out = await new Deno.Command(compiler, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr);
    throw new Error(`${compiler} ${source} failed (rc ${out.code}):\n${err}`);
  }
  return exe;
}

/** One allocation set's page counts, as printed by `tests/c/placement.c`. */
export interface PageCounts {
  bytes: number;
  blocks: number;
  pages: number;
  /** Pages per node, indexed by node id (one entry per possible node). */
  nodes: number[];
  absent: number;
  errors: number;
}

/** The JSON line of `placement` (hmalloc, malloc) or of `raw_bind` (mapping). */
export interface PlacementReport {
  policy: string | null;
  page_bytes: number;
  hmalloc?: PageCounts;
  malloc?: PageCounts;
  mapping?: PageCounts;
}

/** Parses the last JSON line of a placement program's output. */
export function parsePlacement(output: string): PlacementReport {
  const line = output.trim().split("\n").reverse().find((l: string) => l.startsWith("{"));
  if (line === undefined) throw new Error(`no JSON line in output:\n${output}`);
  return JSON.parse(line) as PlacementReport;
}

/** Share of `counts` pages on each node, in percent. */
export function percentPerNode(counts: PageCounts): number[] {
  return counts.nodes.map((n: number) => (100 * n) / Math.max(1, counts.pages));
}
