// `usage PID --heat`: the strip's shading by access frequency, the node row, the region lines, and
// the refusal without DAMON.
import assert from "node:assert/strict";
import { heatLevel, heatText, runHeatView } from "../../cli/heat.ts";
import { FakeDamon } from "../support/fake_damon.ts";

Deno.test("heat levels go from cold (0) to the hottest (4) by nr_accesses", () => {
  assert.deepEqual([0, 1, 7, 14, 20].map((n) => heatLevel(n, 20)), [0, 1, 2, 3, 4]);
});

Deno.test("the heat strip has one cell per region, shaded by heat, with each region's node", () => {
  const text = heatText([
    { start: 0x1000, end: 0x401000, nrAccesses: 20, age: 3, node: 0 },
    { start: 0x401000, end: 0x4401000, nrAccesses: 0, age: 90, node: 2 },
    { start: 0x4401000, end: 0x4402000, nrAccesses: 5, age: 1, node: -1 },
  ], { color: false });
  const lines = text.split("\n");
  assert.equal(lines[1], "heat  █·░");
  assert.equal(lines[2], "node  02-");
  assert.match(lines[6], /^0000000000401000 0000000004401000\s+64\.0\s+0\s+90 {2}2$/);
  const coloured = heatText([{ start: 0, end: 4096, nrAccesses: 20, age: 0, node: 0 }], {
    color: true,
  });
  assert.equal(coloured.split("\n")[1], "heat  \x1b[31m█\x1b[0m");
});

Deno.test("usage --heat refuses with one line and exit 2 when DAMON's sysfs is missing", async () => {
  const err: string[] = [];
  const empty = new FakeDamon();
  empty.files.clear();
  const io = { out: () => {}, err: (t: string) => err.push(t), color: false };
  const status = await runHeatView(Deno.pid, io, { damon: empty });
  assert.equal(status, 2);
  assert.equal(err.length, 1);
  assert.match(err[0], /^usage: --heat: (must run as root|no DAMON sysfs interface)/);
});
