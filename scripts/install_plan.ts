/**
 * What `scripts/install.sh` puts where: the plan of an installation, computed before anything is
 * written, and the manifest that lets `--uninstall` remove exactly that.
 *
 * Layout under PREFIX (`/usr/local` as root, `~/.local` otherwise):
 *
 * | path                                  | what                                              |
 * |---------------------------------------|---------------------------------------------------|
 * | `bin/tiermem`, `bin/hmctl`, `bin/memtier` | sh wrappers: the pinned Deno, by absolute path, runs the CLI |
 * | `lib/tiermem/deno`                    | a copy of the pinned Deno binary                  |
 * | `lib/tiermem/src/…`                   | the CLI's TypeScript modules (its import graph), plus one entry module per command |
 * | `lib/tiermem/install-manifest.json`   | everything below that this installation created   |
 * | `lib/libhmalloc.so.1.0.0`, `.so.1`, `.so` | the library, its soname link and its link-time link |
 * | `lib/libmemtier.so`                   | the LD_PRELOAD interposer                         |
 * | `include/hmalloc.h`                   | the C API                                         |
 * | `lib/pkgconfig/hmalloc.pc`            | `pkg-config --cflags --libs hmalloc`              |
 * | `share/man/man{1,3,7,8}/…`            | the pages of `man/`, and `.so` links for the other names they document |
 *
 * The wrappers set `TIERMEM_HMALLOC_LIB` and `TIERMEM_MEMTIER_LIB` to the installed libraries
 * (unless already set), so the CLI needs nothing from the checkout. `hmalloc.pc` adds
 * `-Wl,-rpath,${libdir}` unless the library directory is one the dynamic loader searches and
 * the installer runs `ldconfig` (root installing into a system directory): a program built with
 * `cc ex.c $(pkg-config --cflags --libs hmalloc)` then finds `libhmalloc.so.1` at run time
 * either way, with no `LD_LIBRARY_PATH`.
 *
 * @module
 */

import { dirname, join, relative } from "node:path";

/** One thing the installation creates. `path` is absolute. */
export type Entry =
  | { readonly kind: "copy"; readonly path: string; readonly from: string; readonly mode: number }
  | { readonly kind: "text"; readonly path: string; readonly text: string; readonly mode: number }
  | { readonly kind: "symlink"; readonly path: string; readonly target: string };

/** The whole installation, computed before anything is written. */
export interface InstallPlan {
  readonly prefix: string;
  /** Files and links, in the order they are written. */
  readonly entries: readonly Entry[];
  /** Whether `ldconfig` runs after installing and after uninstalling. */
  readonly ldconfig: boolean;
}

/** What the manifest records: enough to undo the installation and nothing else. */
export interface Manifest {
  readonly tiermem: string;
  readonly prefix: string;
  /** Files and links created, absolute paths. */
  readonly files: readonly string[];
  /** Directories that did not exist before, absolute, parents before children. */
  readonly dirs: readonly string[];
  readonly ldconfig: boolean;
}

/** The manifest's place under PREFIX. */
export const MANIFEST = "lib/tiermem/install-manifest.json";

/** The CLI module of the checkout that the command entries import (relative to the root). */
export const CLI_MODULE = "cli.ts";

/** The installed commands, each `bin/NAME` running `runCommand(NAME)` of {@link CLI_MODULE}. */
export const COMMANDS: readonly string[] = ["tiermem", "hmctl", "memtier"];

/** A man page of `man/`: its file and the other names it documents (installed as `.so` links). */
export interface ManPage {
  readonly file: string;
  readonly aliases: readonly string[];
}

/** Every page of `man/` and the names each one documents. */
export const MAN_PAGES: readonly ManPage[] = [
  { file: "hmalloc.3", aliases: ["hcalloc.3", "hrealloc.3", "hfree.3", "haligned_alloc.3"] },
  { file: "hmalloc_usable_size.3", aliases: [] },
  { file: "hposix_memalign.3", aliases: [] },
  { file: "hmmap.3", aliases: ["hmunmap.3"] },
  {
    file: "hm_pool_create.3",
    aliases: [
      "hm_pool_destroy.3",
      "hm_default_pool.3",
      "hm_pool_malloc.3",
      "hm_pool_calloc.3",
      "hm_pool_aligned_alloc.3",
      "hm_pool_mmap.3",
      "hm_pool_policy.3",
      "hm_pool_mbind_calls.3",
      "hm_pool_mapped_bytes.3",
      "hm_residency.3",
      "hm_migrate.3",
    ],
  },
  { file: "hmctl.8", aliases: [] },
  { file: "tiermem.1", aliases: ["memtier.1"] },
  { file: "libmemtier.7", aliases: [] },
];

/** Inputs of {@link makePlan}. */
export interface PlanInput {
  /** Absolute install prefix. */
  readonly prefix: string;
  /** The checkout's root. */
  readonly root: string;
  /** The pinned Deno binary to copy. */
  readonly deno: string;
  /** The built libraries and header (`zig-src/zig-out`). */
  readonly buildDir: string;
  /** The CLI's modules, relative to `root` (its import graph). */
  readonly cliModules: readonly string[];
  /** The package version (deno.json). */
  readonly version: string;
  /** Whether `ldconfig` will run (root, and `PREFIX/lib` is searched by the loader). */
  readonly ldconfig: boolean;
}

/**
 * The installation of a checkout into a prefix.
 *
 * @example
 * ```ts
 * import { makePlan } from "./install_plan.ts";
 * const plan = makePlan({
 *   prefix: "/opt/t", root: "/src", deno: "/src/.tools/deno", buildDir: "/src/zig-src/zig-out",
 *   cliModules: ["cli.ts"], version: "0.1.0", ldconfig: false,
 * });
 * plan.entries.some((e) => e.path === "/opt/t/bin/hmctl"); // true
 * ```
 */
export function makePlan(input: PlanInput): InstallPlan {
  const { prefix } = input;
  if (!prefix.startsWith("/")) throw new TypeError(`prefix "${prefix}" is not absolute`);
  if (/['\n\\]/.test(prefix)) {
    throw new TypeError(`prefix "${prefix}": quotes, backslashes and newlines are not supported`);
  }
  const at = (path: string): string => join(prefix, path);
  const home = at("lib/tiermem");
  const entries: Entry[] = [];
  entries.push({ kind: "copy", path: `${home}/deno`, from: input.deno, mode: 0o755 });
  for (const module of input.cliModules) {
    entries.push({
      kind: "copy",
      path: `${home}/src/${module}`,
      from: join(input.root, module),
      mode: 0o644,
    });
  }
  for (const name of COMMANDS) {
    const entry = `${home}/src/bin/${name}.ts`;
    entries.push({ kind: "text", path: entry, text: entryModule(name, entry, home), mode: 0o644 });
    entries.push({
      kind: "text",
      path: at(`bin/${name}`),
      text: wrapperScript(name, input.version, prefix, entry),
      mode: 0o755,
    });
  }
  const lib = at("lib");
  entries.push({
    kind: "copy",
    path: `${lib}/libhmalloc.so.1.0.0`,
    from: `${input.buildDir}/lib/libhmalloc.so.1.0.0`,
    mode: 0o755,
  });
  entries.push({ kind: "symlink", path: `${lib}/libhmalloc.so.1`, target: "libhmalloc.so.1.0.0" });
  entries.push({ kind: "symlink", path: `${lib}/libhmalloc.so`, target: "libhmalloc.so.1" });
  entries.push({
    kind: "copy",
    path: `${lib}/libmemtier.so`,
    from: `${input.buildDir}/lib/libmemtier.so`,
    mode: 0o755,
  });
  entries.push({
    kind: "copy",
    path: at("include/hmalloc.h"),
    from: `${input.buildDir}/include/hmalloc.h`,
    mode: 0o644,
  });
  entries.push({
    kind: "text",
    path: `${lib}/pkgconfig/hmalloc.pc`,
    text: pkgConfig(prefix, input.version, !input.ldconfig),
    mode: 0o644,
  });
  for (const page of MAN_PAGES) {
    const section = page.file.slice(page.file.lastIndexOf(".") + 1);
    const dir = at(`share/man/man${section}`);
    entries.push({
      kind: "copy",
      path: `${dir}/${page.file}`,
      from: join(input.root, "man", page.file),
      mode: 0o644,
    });
    for (const alias of page.aliases) {
      const aliasSection = alias.slice(alias.lastIndexOf(".") + 1);
      entries.push({
        kind: "text",
        path: at(`share/man/man${aliasSection}/${alias}`),
        text: `.so man${section}/${page.file}\n`,
        mode: 0o644,
      });
    }
  }
  return { prefix, entries, ldconfig: input.ldconfig };
}

/** The entry module of one command: runs the CLI as `name`. */
function entryModule(name: string, entry: string, home: string): string {
  const cli = relative(dirname(entry), `${home}/src/${CLI_MODULE}`);
  const specifier = cli.startsWith("../") ? cli : `./${cli}`;
  return `// Installed by tiermem's scripts/install.sh: the \`${name}\` command.\n` +
    `import { runCommand } from "${specifier}";\n\n` +
    `Deno.exit(await runCommand("${name}", Deno.args));\n`;
}

/**
 * The `bin/NAME` wrapper: the installed Deno, by absolute path, runs the entry module with the
 * installed libraries. `--no-config` keeps a `deno.json` of the user's working directory out;
 * `--no-lock` writes nothing beside the installed modules.
 *
 * @example
 * ```ts
 * import { wrapperScript } from "./install_plan.ts";
 * wrapperScript("hmctl", "0.1.0", "/opt/t", "/opt/t/lib/tiermem/src/bin/hmctl.ts").startsWith("#!/bin/sh"); // true
 * ```
 */
export function wrapperScript(
  name: string,
  version: string,
  prefix: string,
  entry: string,
): string {
  return `#!/bin/sh
# ${name}: tiermem ${version}, installed by scripts/install.sh (man ${
    name === "hmctl" ? "8 hmctl" : "1 tiermem"
  }).
: "\${TIERMEM_HMALLOC_LIB:=${prefix}/lib/libhmalloc.so.1}"
: "\${TIERMEM_MEMTIER_LIB:=${prefix}/lib/libmemtier.so}"
export TIERMEM_HMALLOC_LIB TIERMEM_MEMTIER_LIB
DENO_NO_UPDATE_CHECK=1 exec '${prefix}/lib/tiermem/deno' run -A --no-config --no-lock '${entry}' "$@"
`;
}

/**
 * `hmalloc.pc`. With `rpath`, `Libs` carries `-Wl,-rpath,${libdir}` so programs find the library
 * at run time without the loader's cache.
 *
 * @example
 * ```ts
 * import { pkgConfig } from "./install_plan.ts";
 * pkgConfig("/opt/t", "0.1.0", true).includes("-Wl,-rpath,${libdir}"); // true
 * ```
 */
export function pkgConfig(prefix: string, version: string, rpath: boolean): string {
  return `prefix=${prefix}
exec_prefix=\${prefix}
libdir=\${exec_prefix}/lib
includedir=\${prefix}/include

Name: hmalloc
Description: tiermem's heterogeneous-memory allocator: malloc-like API, pools with NUMA policies
Version: ${version}
Libs: -L\${libdir} -lhmalloc${rpath ? " -Wl,-rpath,${libdir}" : ""}
Cflags: -I\${includedir}
`;
}
