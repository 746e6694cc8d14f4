/**
 * `bash scripts/install.sh [--prefix DIR] [--uninstall]`: installs tiermem as a system (or
 * per-user) command and C library, or removes exactly what an installation created.
 *
 * Install: builds the libraries (fast, portable target: `scripts/build.sh`), computes the plan
 * (`install_plan.ts`), refuses to overwrite any file it did not install itself (a previous
 * installation of this prefix is removed first, through its manifest), writes the manifest, then
 * every file, and runs `ldconfig` when root installs into a directory the loader searches.
 * Uninstall: removes the files and links of the manifest and the directories it created, when
 * empty; nothing else.
 *
 * Run through `scripts/install.sh`, which provides `$DENO` (the pinned Deno) via
 * `scripts/tools.sh`.
 *
 * @module
 */

import $ from "dax";
import { parseArgs } from "node:util";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";
import {
  CLI_MODULE,
  type Entry,
  type InstallPlan,
  makePlan,
  MANIFEST,
  type Manifest,
} from "./install_plan.ts";
import denoConfig from "../deno.json" with { type: "json" };

const ROOT = resolve(dirname(fromFileUrl(import.meta.url)), "..");
const BUILD_DIR = `${ROOT}/zig-src/zig-out`;

const USAGE = `Usage: bash scripts/install.sh [--prefix DIR] [--uninstall]
Installs bin/tiermem, bin/hmctl, bin/memtier, lib/libhmalloc.so.1, lib/libmemtier.so,
include/hmalloc.h, lib/pkgconfig/hmalloc.pc and the man pages under DIR (default
/usr/local as root, ~/.local otherwise); --uninstall removes exactly what was installed.
`;

/** One line on stderr, prefixed like every message of the installer. */
function log(message: string): void {
  console.error(`install: ${message}`);
}

/** An error the user can act on: printed as one line, exit status 1. */
class InstallError extends Error {}

async function main(argv: string[]): Promise<number> {
  let values: { prefix?: string; uninstall?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        prefix: { type: "string" },
        uninstall: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    console.error(`install: ${(error as Error).message}`);
    console.error(USAGE.trimEnd());
    return 2;
  }
  if (values.help) {
    console.log(USAGE.trimEnd());
    return 0;
  }
  const prefix = resolve(values.prefix ?? defaultPrefix());
  try {
    if (values.uninstall) await uninstall(prefix, true);
    else await install(prefix);
    return 0;
  } catch (error) {
    if (error instanceof InstallError) {
      log(error.message);
      return 1;
    }
    throw error;
  }
}

function defaultPrefix(): string {
  if (Deno.uid() === 0) return "/usr/local";
  const home = Deno.env.get("HOME");
  if (home === undefined) throw new InstallError("HOME is not set: give --prefix");
  return `${home}/.local`;
}

async function install(prefix: string): Promise<void> {
  const deno = Deno.env.get("DENO") ?? Deno.execPath();
  log("building libhmalloc.so and libmemtier.so (fast, portable target)");
  await $`bash ${ROOT}/scripts/build.sh`.env({ OPTIMIZE: "fast" }).cwd(ROOT);
  const libDir = `${prefix}/lib`;
  const ldconfig = Deno.uid() === 0 && (await loaderDirectories()).has(realOrSelf(libDir));
  const plan = makePlan({
    prefix,
    root: ROOT,
    deno,
    buildDir: BUILD_DIR,
    cliModules: await cliModules(),
    version: denoConfig.version,
    ldconfig,
  });
  if (await exists(join(prefix, MANIFEST))) {
    log(`removing the previous installation in ${prefix}`);
    await uninstall(prefix, false);
  }
  const conflicts: string[] = [];
  for (const entry of plan.entries) if (await existsOrLink(entry.path)) conflicts.push(entry.path);
  if (conflicts.length > 0) {
    throw new InstallError(
      `not overwriting files tiermem did not install: ${conflicts.join(", ")}`,
    );
  }
  const manifest: Manifest = {
    tiermem: denoConfig.version,
    prefix,
    files: plan.entries.map((e: Entry) => e.path),
    dirs: await missingDirectories(plan),
    ldconfig,
  };
  log(`installing into ${prefix}`);
  try {
    await Deno.mkdir(dirname(join(prefix, MANIFEST)), { recursive: true });
  } catch (error) {
    if (error instanceof Deno.errors.PermissionDenied) {
      throw new InstallError(
        `cannot write to ${prefix}: run as root, or choose another directory with --prefix`,
      );
    }
    throw error;
  }
  await Deno.writeTextFile(
    join(prefix, MANIFEST),
    JSON.stringify({ ...manifest, files: [...manifest.files, join(prefix, MANIFEST)] }, null, 1) +
      "\n",
  );
  for (const entry of plan.entries) await write(entry);
  if (ldconfig) await $`ldconfig`;
  log(
    `${
      plan.entries.length + 1
    } files installed; remove them with: bash scripts/install.sh --prefix ${prefix} --uninstall`,
  );
  const bin = `${prefix}/bin`;
  const path = (Deno.env.get("PATH") ?? "").split(":");
  if (!path.includes(bin)) log(`note: ${bin} is not on PATH`);
}

async function write(entry: Entry): Promise<void> {
  await Deno.mkdir(dirname(entry.path), { recursive: true });
  if (entry.kind === "symlink") {
    await Deno.symlink(entry.target, entry.path);
    return;
  }
  if (entry.kind === "copy") await Deno.copyFile(entry.from, entry.path);
  else await Deno.writeTextFile(entry.path, entry.text);
  await Deno.chmod(entry.path, entry.mode);
}

/** Removes what the manifest lists; `required`: no manifest is an error. */
async function uninstall(prefix: string, required: boolean): Promise<void> {
  const path = join(prefix, MANIFEST);
  let manifest: Manifest;
  try {
    manifest = JSON.parse(await Deno.readTextFile(path)) as Manifest;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      if (!required) return;
      throw new InstallError(`no tiermem installation in ${prefix} (${path} not found)`);
    }
    throw error;
  }
  if (manifest.prefix !== prefix) {
    throw new InstallError(`${path} belongs to prefix ${manifest.prefix}, not ${prefix}`);
  }
  let removed = 0;
  for (const file of manifest.files) {
    if (!file.startsWith(`${prefix}/`)) {
      throw new InstallError(`${path}: "${file}" is outside ${prefix}`);
    }
    try {
      await Deno.remove(file);
      removed++;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  for (const dir of [...manifest.dirs].reverse()) {
    try {
      await Deno.remove(dir);
    } catch (error) {
      // Not empty (something else was put there since) or already gone: leave it.
      if (!(error instanceof Deno.errors.NotFound) && !isNotEmpty(error)) throw error;
    }
  }
  if (manifest.ldconfig) await $`ldconfig`;
  log(`removed ${removed} files of tiermem ${manifest.tiermem} from ${prefix}`);
}

function isNotEmpty(error: unknown): boolean {
  return error instanceof Error && /not empty|ENOTEMPTY/i.test(error.message);
}

/** Directories the plan's files need that do not exist yet, parents first. */
async function missingDirectories(plan: InstallPlan): Promise<string[]> {
  const dirs = new Set<string>();
  for (const entry of [...plan.entries.map((e: Entry) => e.path), join(plan.prefix, MANIFEST)]) {
    for (let dir = dirname(entry); dir !== "/"; dir = dirname(dir)) {
      if (await exists(dir)) break;
      dirs.add(dir);
    }
  }
  return [...dirs].sort((a, b) => a.split("/").length - b.split("/").length || a.localeCompare(b));
}

/** The CLI's modules, relative to the checkout: its local import graph (`deno info`). */
async function cliModules(): Promise<string[]> {
  const info = await $`${Deno.execPath()} info --json ${join(ROOT, CLI_MODULE)}`.cwd(ROOT)
    .json() as {
      modules: { specifier: string }[];
    };
  const modules: string[] = [];
  for (const { specifier } of info.modules) {
    if (specifier.startsWith("node:")) continue; // built into Deno: nothing to fetch or copy
    if (!specifier.startsWith("file://")) {
      throw new InstallError(`the CLI imports ${specifier}: an installed command cannot fetch it`);
    }
    const path = relative(ROOT, fromFileUrl(specifier));
    if (path.startsWith("..")) {
      throw new InstallError(`the CLI imports ${specifier}, outside the checkout`);
    }
    modules.push(path);
  }
  return modules.sort();
}

/** Directories the dynamic loader searches (ldconfig's configuration and built-ins), resolved. */
async function loaderDirectories(): Promise<Set<string>> {
  const out = await $`ldconfig -v -N -X`.stderr("null").noThrow().text();
  const dirs = new Set<string>();
  for (const line of out.split("\n")) {
    const m = /^(\/[^:]*):/.exec(line);
    if (m !== null) dirs.add(realOrSelf(m[1]));
  }
  return dirs;
}

function realOrSelf(path: string): string {
  try {
    return Deno.realPathSync(path);
  } catch {
    return path;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

async function existsOrLink(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
