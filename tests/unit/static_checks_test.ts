/**
 * The TypeScript standards, as tests, so that CI holds them: every module type-checks (`deno
 * run` does not check, so a script with a type error used to pass every test that spawns it),
 * `deno lint` and `deno fmt --check` are clean, and the published entry points pass
 * `deno doc --lint`.
 */
import assert from "node:assert/strict";
import { readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root: string = fileURLToPath(new URL("../..", import.meta.url));
/** Not ours, or generated: never checked. */
const skipped: ReadonlySet<string> = new Set([
  ".git",
  ".tools",
  "node_modules",
  "zig-src",
  "dist",
  "bench/out",
  "tests/out",
]);

/** Every .ts file of the repository, relative to its root, in a stable order. */
function typeScriptFiles(dir: string = root): string[] {
  const found: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    const rel = relative(root, path);
    if (skipped.has(rel)) continue;
    if (statSync(path).isDirectory()) found.push(...typeScriptFiles(path));
    else if (name.endsWith(".ts")) found.push(rel);
  }
  return found;
}

async function deno(...args: string[]): Promise<{ code: number; output: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: root,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code: out.code, output: text.decode(out.stdout) + text.decode(out.stderr) };
}

Deno.test("every TypeScript module type-checks (deno check)", async () => {
  const files = typeScriptFiles();
  assert.ok(files.includes("scripts/support/options.ts") && files.length > 50, files.join(" "));
  const r = await deno("check", "--quiet", ...files);
  assert.equal(r.code, 0, r.output);
});

Deno.test("deno lint is clean", async () => {
  const r = await deno("lint", "--quiet");
  assert.equal(r.code, 0, r.output);
});

Deno.test("deno fmt --check is clean", async () => {
  const r = await deno("fmt", "--check", "--quiet");
  assert.equal(r.code, 0, r.output);
});

Deno.test("the published entry points pass deno doc --lint", async () => {
  const r = await deno("doc", "--lint", "mod.ts", "ffi/mod.ts", "cli.ts");
  assert.equal(r.code, 0, r.output);
});
