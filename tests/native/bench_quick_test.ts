/**
 * The benchmark suite's sanity run (CI): `bench/run.ts --quick --instructions` (tiny sizes, one
 * repetition) must run every workload under every peer and report a number for every cell.
 * No timing assertion: the numbers are only checked to exist and be finite. Needs the built
 * libraries (scripts/test.sh builds them first), gcc, python3, strace, valgrind, /usr/bin/time.
 */

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { parseKeyValues, straceCalls } from "../../bench/run.ts";
import {
  type Cell,
  formatTables,
  renderSvg,
  type RowResult,
  type RunResult,
  withRatios,
} from "../../bench/report.ts";
import { type RowSpec, rowSpecs } from "../../bench/rows.ts";
import { repoRoot } from "../support/vm.ts";

const outDir = `${repoRoot}/tests/out/bench`;

Deno.test("bench --quick: every row reports a number for every peer, and the chart is written", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `${repoRoot}/bench/run.ts`,
      "--quick",
      "--instructions",
      "--no-build",
      "--out",
      outDir,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const log: string = new TextDecoder().decode(out.stderr);
  const result = JSON.parse(readFileSync(`${outDir}/results.json`, "utf8")) as RunResult;
  assert.equal(result.mode, "quick");
  const ids: string[] = result.rows.map((r: RowResult) => r.id);
  for (
    const id of [
      "mixed-1t",
      "mixed-2t",
      "xthread",
      "larson",
      "xmalloc",
      "threads-32",
      "mleak",
      "mleak-rss",
      "realloc",
      "large",
      "rss-1m",
      "vm-20k-vmsize",
      "vm-20k-rss",
      "mbind",
      "python-time",
      "python-rss",
      "mixed-1t-instr",
      "mixed-2t-instr",
    ]
  ) {
    assert.ok(ids.includes(id), `row ${id} missing from results.json (rows: ${ids.join(", ")})`);
  }
  const missing: string[] = result.rows.flatMap((r: RowResult) =>
    r.cells.filter((c: Cell) => c.value === null || !Number.isFinite(c.value)).map((c: Cell) =>
      `${r.id}/${c.peer}: ${c.error ?? "no value"}`
    )
  );
  assert.deepEqual(missing, [], `cells without a number:\n${missing.join("\n")}\n${log}`);
  for (const r of result.rows.filter((x: RowResult) => !x.id.startsWith("ffi"))) {
    const peers: string[] = r.cells.map((c: Cell) => c.peer);
    const expected: string[] = r.id.startsWith("python")
      ? ["glibc", "jemalloc", "mimalloc", "tcmalloc", "memtier", "memkind"]
      : ["glibc", "jemalloc", "mimalloc", "tcmalloc", "hmalloc", "memtier"];
    if (!["mbind", "vm-20k-vmsize"].includes(r.id) && !r.id.startsWith("python")) {
      expected.push("memtier-2t");
    }
    assert.deepEqual(peers, expected, `peers of ${r.id}`);
    if (expected.includes("memtier-2t")) {
      assert.ok(Number.isFinite(r.tierRatio), `${r.id}: no memtier-2t / memtier ratio`);
    }
  }
  const specIds: string[] = rowSpecs.map((s: RowSpec) => s.id);
  assert.ok(specIds.every((id: string) => ids.includes(id)), "every row of bench/rows.ts ran");
  const mbind: RowResult = result.rows.find((r: RowResult) => r.id === "mbind")!;
  const hm: Cell = mbind.cells.find((c: Cell) => c.peer === "hmalloc")!;
  assert.ok(hm.extra.counter_calls > 0, "hmalloc with bind:0 made no mbind call");
  assert.ok(
    Math.abs(hm.extra.strace_calls - hm.extra.counter_calls) <= 1,
    `strace saw ${hm.extra.strace_calls} mbind calls, hm_pool_mbind_calls says ${hm.extra.counter_calls}` +
      " (only the start-up mode probe may differ)",
  );
  assert.equal(out.code, 0, log);
  const svg: string = readFileSync(`${outDir}/bench.svg`, "utf8");
  assert.ok(svg.startsWith("<svg") && svg.trimEnd().endsWith("</svg>"));
  assert.ok(existsSync(`${outDir}/table.txt`));
});

Deno.test("bench parsers: key=value lines and strace -c summaries", () => {
  assert.deepEqual(parseKeyValues("ns_per_op=12.50\nops=100\nnoise line\nbad=x\n"), {
    ns_per_op: 12.5,
    ops: 100,
  });
  const summary = [
    "% time     seconds  usecs/call     calls    errors syscall",
    "------ ----------- ----------- --------- --------- ----------------",
    "100.00    0.000106           3        30           mbind",
    "------ ----------- ----------- --------- --------- ----------------",
    "100.00    0.000106           3        30           total",
  ].join("\n");
  assert.equal(straceCalls(summary, "mbind"), 30);
  assert.equal(straceCalls("", "mbind"), 0);
});

Deno.test("bench ratios: best ranges over external peers only; a named reference; none; two tiers vs one", () => {
  const cell = (peer: string, value: number | null): Cell => ({
    peer,
    value,
    ratio: null,
    extra: {},
  });
  const row: RowResult = {
    id: "x",
    title: "x",
    unit: "ns",
    reference: "best",
    cells: [cell("glibc", 40), cell("jemalloc", 20), cell("hmalloc", 10), cell("memtier", null)],
  };
  const best: number[] = withRatios(row, ["glibc", "jemalloc"]).cells.map((c: Cell) =>
    c.ratio ?? -1
  );
  assert.deepEqual(best, [2, 1, 0.5, -1]);
  const named = withRatios({ ...row, reference: "glibc" }, []).cells.map((c: Cell) => c.ratio);
  assert.deepEqual(named, [1, 0.5, 0.25, null]);
  const none = withRatios({ ...row, reference: "none" }, ["glibc"]).cells.map((c: Cell) => c.ratio);
  assert.deepEqual(none, [null, null, null, null]);
  const svg: string = renderSvg([withRatios(row, ["glibc", "jemalloc"])], "t");
  assert.equal((svg.match(/<rect x="300"/g) ?? []).length, 3, "one bar per cell with a ratio");
  assert.equal(withRatios(row, []).tierRatio, undefined, "no memtier-2t cell: no tier ratio");
  const tiers: RowResult = withRatios({
    ...row,
    tierTarget: "≤ 1.10",
    cells: [cell("memtier", 20), cell("memtier-2t", 25)],
  }, []);
  assert.equal(tiers.tierRatio, 1.25);
  assert.match(
    formatTables([tiers]),
    /memtier-2t \/ memtier\s+target\n[- ]+\nx\s+ns\s+20\.00\s+25\.00\s+1\.25\s+≤ 1\.10/,
  );
  const failed: RowResult = withRatios({
    ...row,
    cells: [cell("memtier", 20), cell("memtier-2t", null)],
  }, []);
  assert.equal(failed.tierRatio, null, "a failed memtier-2t cell: ratio null");
});
