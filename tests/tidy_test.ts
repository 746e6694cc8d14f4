/**
 * Keeps the code base tidy, in the spirit of TigerBeetle's tidy check: a rule checked by a test
 * lives in the code, not in a review.
 *
 * - A comment that names a file of this project (`pool.zig`, `lib/launch.ts`,
 *   `scripts/test.sh`, …) names one that exists: file essays and comments are how a newcomer
 *   finds their way, and a stale reference sends them nowhere.
 * - No line of Zig, C or shell source is longer than 200 characters (TypeScript's width is
 *   `deno fmt`'s, checked by CI's lint), and no Zig function is longer than 200 lines.
 */
import assert from "node:assert/strict";
import { basename, join } from "node:path";
import { repoRoot } from "./vm.ts";

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
  const names = [...comment.matchAll(/(?<![\w./@:-])((?:[\w-]+\/)*[\w-]+\.(?:zig|ts|c|h|sh))\b/g)]
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
  // A path below a folder of ours, named from inside it (e.g. `src/pool.zig` in zig-src/).
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
