/**
 * The published package (deno.json "publish") carries the library, the CLI and the Zig sources
 * the loader builds from, and no tests or test data (issue 10): the file list is the one
 * `deno publish --dry-run` prints, offline.
 */
import assert from "node:assert/strict";
import { repoRoot } from "../support/vm.ts";

Deno.test("the published file set has no *_test.zig, no *_fuzz.zig, no test data and no tests/", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["publish", "--dry-run", "--allow-dirty", "--no-check"],
    cwd: repoRoot,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.ok(out.success, text);
  const files = [...text.matchAll(/file:\/\/(\S+)/g)].map((m) => m[1].slice(repoRoot.length + 1));
  assert.ok(files.includes("mod.ts") && files.includes("zig-src/src/alloc/pool.zig"), text);
  const unwanted = files.filter((f: string) =>
    f.endsWith("_test.zig") || f.endsWith("_fuzz.zig") || f.includes("testdata/") ||
    f.startsWith("tests/")
  );
  assert.deepEqual(unwanted, []);
});
