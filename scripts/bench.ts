/**
 * `deno task bench`: the Debian packages the benchmarks need (peers, strace, /usr/bin/time),
 * then bench/run.ts with the given arguments (it builds the libraries itself).
 *
 * @module
 */
import $ from "dax";
import { join } from "node:path";
import { ensurePackages } from "./support/debian.ts";
import { ensureZig, repoRoot } from "./support/toolchain.ts";

await ensurePackages(["bootstrap", "build", "demo", "test"]);
const zig = await ensureZig();
const env = { PATH: `${join(zig[0], "..")}:${Deno.env.get("PATH") ?? ""}` };
const run = await $`${Deno.execPath()} run -A ${join(repoRoot, "bench/run.ts")} ${Deno.args}`
  .env(env).noThrow();
Deno.exit(run.code);
