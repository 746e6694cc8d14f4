/**
 * The project's scripts reject a bad option with one line naming it and exit status 2, never a
 * stack trace (scripts/support/options.ts). Each script parses its options before doing anything
 * else, so these runs build, install and measure nothing.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const root: string = fileURLToPath(new URL("../..", import.meta.url));

async function runScript(script: string, ...args: string[]): Promise<Deno.CommandOutput> {
  return await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${root}/${script}`, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
}

const scripts: readonly [string, string][] = [
  ["bench/run.ts", "bench"],
  ["bench/mimalloc_bench.ts", "mimalloc_bench"],
  ["scripts/build.ts", "build"],
  ["scripts/dist.ts", "dist"],
];

for (const [script, program] of scripts) {
  Deno.test(`${script}: an unknown option is one line naming it, exit status 2`, async () => {
    const out = await runScript(script, "--no-such-option");
    assert.equal(out.code, 2);
    assert.equal(
      new TextDecoder().decode(out.stderr),
      `${program}: Unknown option '--no-such-option'\n`,
    );
    assert.equal(out.stdout.length, 0);
  });
}

Deno.test("bench/run.ts: an option missing its value is named", async () => {
  const out = await runScript("bench/run.ts", "--rounds");
  assert.equal(out.code, 2);
  assert.equal(
    new TextDecoder().decode(out.stderr),
    "bench: Option '--rounds <value>' argument missing\n",
  );
});
