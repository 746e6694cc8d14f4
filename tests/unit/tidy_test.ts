/**
 * Keeps the code base tidy, in the spirit of TigerBeetle's tidy check: a rule checked by a test
 * lives in the code, not in a review.
 *
 * - A comment that names a file of this project (`pool.zig`, `cli/launch.ts`,
 *   `scripts/test.sh`, …) names one that exists: file essays and comments are how a newcomer
 *   finds their way, and a stale reference sends them nowhere.
 * - The TypeScript folders import downwards only: `ffi/` nothing of `lib/` or `cli/`, `lib/`
 *   nothing of `cli/` (the library must not need what only the command line uses).
 * - No line of Zig, C or shell source is longer than 200 characters (TypeScript's width is
 *   `deno fmt`'s, checked by CI's lint), and no Zig function is longer than 200 lines.
 */
import assert from "node:assert/strict";
import { basename, dirname, join, normalize } from "node:path";
import { repoRoot } from "../support/vm.ts";

const tracked = new TextDecoder().decode(
  new Deno.Command("git", { args: ["ls-files"], cwd: repoRoot, stdout: "piped" }).outputSync()
    .stdout,
).split("\n").filter((f) => f !== "" && Deno.statSync(join(repoRoot, f)).isFile);
const trackedSet = new Set(tracked);
const basenames = new Set(tracked.map((f) => basename(f)));
const sources = tracked.filter((f) => /\.(zig|ts|c|h|sh)$/.test(f));

/** Files comments may name that are not in the tree: the README's C example (written by tests). */
const outsideTree = new Set(["ex.c"]);

/** Comment text of a line (`//`, `///`, `//!`, `*`, `#`), or undefined for code. */
function commentOf(line: string): string | undefined {
  const m = line.match(/^\s*(?:\/\/[/!]?|\/?\*+|#(?!!|include|define|if|endif|else|undef))(.*)$/);
  return m?.[1];
}

/** Project file names a comment mentions: paths with a directory, or bare names of our kinds. */
function referencedFiles(comment: string): string[] {
  const names = [
    ...comment.matchAll(/(?<![\w./@:*<>{}-])((?:[\w-]+\/)*[\w-]+\.(?:zig|ts|c|h|sh))\b/g),
  ]
    .map((m) => m[1]);
  // Not ours to check: placeholders (`tests/c/NAME.c`, `DIR/NAME.sh`), system headers, and the
  // README's example program, which its tests write out.
  return names.filter((n) =>
    !/(^|\/)[A-Z]+(\.|\/)/.test(n) && !/^(linux|sys|asm)\//.test(n) && !/^std\./.test(n) &&
    !outsideTree.has(n) && !systemHeader(n)
  );
}

/** A C library header (`stdlib.h`): named in comments of the C API, not a file of ours. */
function systemHeader(name: string): boolean {
  if (!name.endsWith(".h")) return false;
  try {
    return Deno.statSync(`/usr/include/${name}`).isFile;
  } catch {
    return false;
  }
}

function exists(reference: string, from: string): boolean {
  if (!reference.includes("/")) return basenames.has(reference);
  if (trackedSet.has(reference)) return true;
  const relative = join(from, "..", reference).replace(/^\.\//, "");
  if (trackedSet.has(relative)) return true;
  // A path below a folder of ours, named from inside it (e.g. `src/alloc/pool.zig` in zig-src/).
  return tracked.some((f) => f.endsWith(`/${reference}`));
}

Deno.test("every project file a comment names exists", () => {
  const stale: string[] = [];
  for (const file of sources) {
    const lines = Deno.readTextFileSync(join(repoRoot, file)).split("\n");
    lines.forEach((line, i) => {
      const comment = commentOf(line);
      if (comment === undefined) return;
      for (const reference of referencedFiles(comment)) {
        if (!exists(reference, file)) stale.push(`${file}:${i + 1}: ${reference}`);
      }
    });
  }
  assert.deepEqual(stale, [], `comments naming files that do not exist:\n${stale.join("\n")}`);
});

/** The folders a folder's modules must not import (`ffi/` < `lib/` < `cli/`, `cli.ts`). */
const forbiddenImports: Record<string, string[]> = {
  "ffi/": ["lib/", "cli/", "cli.ts", "mod.ts"],
  "lib/": ["cli/", "cli.ts", "mod.ts"],
};

/** The local modules a TypeScript file imports (static, dynamic and type-only), repo-relative. */
function localImports(file: string): string[] {
  const text = Deno.readTextFileSync(join(repoRoot, file));
  const specifiers = [
    ...text.matchAll(/^\s*(?:import|export)\b[^;]*?\bfrom\s*["']([^"']+)["']/gms),
    ...text.matchAll(/^\s*import\s*["']([^"']+)["']/gm),
    ...text.matchAll(/\bimport\(\s*["']([^"']+)["']\s*\)/g),
  ].map((m) => m[1]).filter((s) => s.startsWith("."));
  return specifiers.map((s) => normalize(join(dirname(file), s)));
}

Deno.test("ffi/ imports nothing of lib/ or cli/, and lib/ nothing of cli/", () => {
  const wrong: string[] = [];
  for (const file of tracked.filter((f) => f.endsWith(".ts"))) {
    const folder = Object.keys(forbiddenImports).find((f) => file.startsWith(f));
    if (folder === undefined) continue;
    for (const target of localImports(file)) {
      if (forbiddenImports[folder].some((f) => target === f || target.startsWith(f))) {
        wrong.push(`${file} imports ${target}`);
      }
    }
  }
  assert.deepEqual(wrong, []);
});

Deno.test("no Zig, C or shell line is longer than 200 characters", () => {
  const long: string[] = [];
  for (const file of sources.filter((f) => /\.(zig|c|h|sh)$/.test(f))) {
    Deno.readTextFileSync(join(repoRoot, file)).split("\n").forEach((line, i) => {
      if (line.length > 200) long.push(`${file}:${i + 1} (${line.length})`);
    });
  }
  assert.deepEqual(long, []);
});

Deno.test("no Zig function is longer than 200 lines", () => {
  const long: string[] = [];
  for (const file of sources.filter((f) => f.endsWith(".zig"))) {
    const lines = Deno.readTextFileSync(join(repoRoot, file)).split("\n");
    let start = -1;
    let name = "";
    lines.forEach((line, i) => {
      const open = line.match(/^(?:pub )?(?:inline )?fn (\w+)\(.*\{$/);
      if (open) {
        start = i;
        name = open[1];
      } else if (start >= 0 && line === "}") {
        if (i - start > 200) long.push(`${file}:${start + 1} ${name} (${i - start} lines)`);
        start = -1;
      }
    });
  }
  assert.deepEqual(long, []);
});

// The Zig folders (zig-src/src/<folder>/, ARCHITECTURE.md): a folder with a root file of its own
// name is a named module; `abi/` holds the libraries' roots.
const zigSrc = "zig-src/src/";
const zigFolders = [
  ...new Set(
    tracked.filter((f) => f.startsWith(zigSrc) && f.endsWith(".zig"))
      .map((f) => f.slice(zigSrc.length).split("/")[0]),
  ),
];
const zigFilesOf = (folder: string): string[] =>
  tracked.filter((f) => f.startsWith(`${zigSrc}${folder}/`) && f.endsWith(".zig"))
    .map((f) => basename(f));
/** Roots of their own beside the code they test or attack: not part of the folder's module. */
const ownRoot = (file: string): boolean => /_(test|fuzz)\.zig$/.test(file);

Deno.test("every Zig file of a folder module is referenced by the folder's root, so its tests run", () => {
  const missing: string[] = [];
  for (const folder of zigFolders) {
    const files = zigFilesOf(folder);
    const root = `${folder}.zig`;
    if (files.includes(root)) {
      const text = Deno.readTextFileSync(join(repoRoot, zigSrc, folder, root));
      for (const file of files) {
        if (file !== root && !ownRoot(file) && !text.includes(`@import("${file}")`)) {
          missing.push(`${zigSrc}${folder}/${file} (not imported by ${root})`);
        }
      }
    } else {
      // abi/: each file is a library root named in build.zig or imported by one of the folder.
      const build = Deno.readTextFileSync(join(repoRoot, "zig-src/build.zig"));
      const texts = files.map((f) => Deno.readTextFileSync(join(repoRoot, zigSrc, folder, f)));
      for (const file of files) {
        if (ownRoot(file) || build.includes(`"src/${folder}/${file}"`)) continue;
        if (!texts.some((t) => t.includes(`@import("${file}")`))) {
          missing.push(`${zigSrc}${folder}/${file} (neither a library root nor imported)`);
        }
      }
    }
  }
  assert.deepEqual(missing, []);
});

/** The folders each folder may import by module name (ARCHITECTURE.md's "Zig folders"). */
const zigImportsAllowed: Record<string, string[]> = {
  placement: [],
  alloc: ["placement"],
  memtier: ["alloc", "placement"],
  abi: ["alloc", "placement", "memtier"],
};

Deno.test("Zig folders import only the folders ARCHITECTURE.md allows (no cycle)", () => {
  assert.deepEqual(
    zigFolders.filter((f) => f !== "testdata").sort(),
    Object.keys(zigImportsAllowed).sort(),
  );
  const wrong: string[] = [];
  for (const folder of Object.keys(zigImportsAllowed)) {
    for (const file of zigFilesOf(folder)) {
      const text = Deno.readTextFileSync(join(repoRoot, zigSrc, folder, file));
      for (const [, name] of text.matchAll(/@import\("(\w+)"\)/g)) {
        if (name === "std" || name === "builtin" || zigImportsAllowed[folder].includes(name)) {
          continue;
        }
        // A test or fuzz root imports the module it tests; a fuzz target its checks.
        if (ownRoot(file) && (name === folder || name === "fuzz_check")) continue;
        wrong.push(`${zigSrc}${folder}/${file} imports "${name}"`);
      }
    }
  }
  assert.deepEqual(wrong, []);
});
