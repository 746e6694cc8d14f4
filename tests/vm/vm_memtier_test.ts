/**
 * libmemtier on 4 NUMA nodes (issue 4): `KIND:DRAM,RATIO:1;KIND:KMEM_DAX,RATIO:4` puts 80% of a
 * program's heap on the memory-only nodes 2-3 and the rest on the CPU nodes 0-1, by page counts
 * (move_pages(2) in query mode over the program's own blocks, `tests/c/memtier_probe.c place`).
 *
 * All checks run in ONE boot of the VM (tests/numavm/): the variables set directly, and the same
 * configuration through `cli.ts memtier --tiers DRAM:1,KMEM_DAX:4` (the launcher's path).
 *
 * Guest topology: nodes 0,1 = CPU + 1 GiB; nodes 2,3 = memory-only 1 GiB (KMEM_DAX found from
 * sysfs: nodes with memory and no CPU, nearest by SLIT distance).
 */
import assert from "node:assert/strict";
import { buildCProgram, type PageCounts } from "../support/c_programs.ts";
import { repoRoot, runInVm, type VmStepResult, vmTestIgnore } from "../support/vm.ts";

const ignore: boolean = vmTestIgnore();

const heapMib = 256;
const kmemSharePct = 80;
const tolerancePct = 2;
const lib = `${repoRoot}/zig-src/zig-out/lib/libmemtier.so`;
const probeExe = "tests/out/memtier_probe";
const tiers = "KIND:DRAM,RATIO:1;KIND:KMEM_DAX,RATIO:4;POLICY:STATIC_RATIO";
const q = (s: string): string => `'${s.replaceAll("'", `'\\''`)}'`;

interface Step {
  key: string;
  script: string;
}

const steps: readonly Step[] = [
  {
    key: "topology",
    script: "cat /sys/devices/system/node/online /sys/devices/system/node/has_cpu; " +
      "for n in 0 1 2 3; do cat /sys/devices/system/node/node$n/distance; done",
  },
  {
    key: "env",
    script: `env LD_PRELOAD=${q(lib)} MEMKIND_MEM_TIERS=${q(tiers)} ` +
      `MEMKIND_MEM_TIERING_LOG_LEVEL=1 ${probeExe} place ${heapMib}`,
  },
  {
    key: "cli",
    script: `${q(Deno.execPath())} run -A cli.ts memtier --tiers DRAM:1,KMEM_DAX:4 ` +
      `${probeExe} place ${heapMib}`,
  },
];

/** The probe's JSON line: the same page counts as placement.c reports. */
type PlaceReport = PageCounts;

let batch: Promise<Map<string, VmStepResult>> | undefined;

function results(): Promise<Map<string, VmStepResult>> {
  batch ??= (async (): Promise<Map<string, VmStepResult>> => {
    await buildCProgram("memtier_probe", { hmalloc: false, extra: ["-pthread"] });
    const run = await runInVm(steps.map((s: Step) => s.script), {
      cwd: repoRoot,
      stepTimeoutSec: 600,
    });
    console.log(`VM: one boot, ${steps.length} steps, ${(run.bootMs / 1000).toFixed(1)} s`);
    if (run.rc === 125) throw new Error(`the VM failed:\n${run.harness}`);
    return new Map(steps.map((s: Step, i: number) => [s.key, run.steps[i]]));
  })();
  return batch;
}

async function placement(key: string): Promise<PlaceReport> {
  const r = (await results()).get(key);
  if (r === undefined) throw new Error(`no step ${key}`);
  if (r.rc !== 0) throw new Error(`step "${key}" exited ${r.rc}:\n${r.output}`);
  const line = r.output.split("\n").find((l: string) => l.startsWith("{"));
  if (line === undefined) throw new Error(`step "${key}": no JSON line:\n${r.output}`);
  const rep = JSON.parse(line) as PlaceReport;
  const on = (nodes: number[]): number => nodes.reduce((s, n) => s + (rep.nodes[n] ?? 0), 0);
  console.log(
    `${key}: ${rep.pages} pages [${rep.nodes.join(" ")}], ` +
      `${((100 * on([2, 3])) / rep.pages).toFixed(2)}% on nodes 2-3`,
  );
  const summary = r.output.split("\n").filter((l: string) => l.includes("bytes now"));
  if (summary.length > 0) console.log(summary.join("\n"));
  return rep;
}

Deno.test(
  { name: "numavm: nodes 0-3 online, CPUs only on 0-1 (2-3 are the KMEM_DAX tier)", ignore },
  async () => {
    const r = (await results()).get("topology");
    assert.ok(r !== undefined);
    const [online, hasCpu] = r.output.trim().split("\n");
    assert.equal(r.rc, 0, r.output);
    assert.equal(online, "0-3");
    assert.equal(hasCpu, "0-1");
  },
);

for (const key of ["env", "cli"]) {
  const how = key === "env"
    ? `MEMKIND_MEM_TIERS="${tiers}"`
    : "cli.ts memtier --tiers DRAM:1,KMEM_DAX:4";
  Deno.test({
    name: `${how}: ${heapMib} MiB heap, ${kmemSharePct}% ± ${tolerancePct}% of its pages on ` +
      "nodes 2-3, the rest on 0-1",
    ignore,
  }, async () => {
    const rep = await placement(key);
    assert.equal(rep.absent, 0, "pages never touched");
    assert.equal(rep.errors, 0, "pages move_pages could not report");
    assert.ok(rep.bytes >= heapMib * 2 ** 20);
    const slow = (rep.nodes[2] ?? 0) + (rep.nodes[3] ?? 0);
    const fast = (rep.nodes[0] ?? 0) + (rep.nodes[1] ?? 0);
    assert.equal(slow + fast, rep.pages, "pages outside nodes 0-3");
    const share = (100 * slow) / rep.pages;
    assert.ok(
      Math.abs(share - kmemSharePct) <= tolerancePct,
      `${share.toFixed(2)}% of the pages on nodes 2-3 (want ${kmemSharePct} ± ${tolerancePct})`,
    );
  });
}
