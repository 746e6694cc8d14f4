/**
 * The Deno API proven on 4 NUMA nodes (issue 3): pools place their buffers where their policy
 * says, residency agrees with move_pages(2), migrate moves a live buffer with its contents, and
 * the topology sees the CPU-less lower tier.
 *
 * ONE boot of the VM (tests/numavm/): deno runs tests/support/vm_deno_probe.ts inside it (~12x slower
 * than here, so it does only what placement needs) and prints one JSON report; each test below
 * asserts on its part. Guest: nodes 0,1 = CPU + 1 GiB; nodes 2,3 = memory-only 1 GiB, lower tier.
 */

import assert from "node:assert/strict";
import type { Placement, ProbeReport } from "../support/vm_deno_probe.ts";
import { repoRoot, runInVm, vmTestIgnore } from "../support/vm.ts";

const ignore: boolean = vmTestIgnore();
const pages = (64 << 20) / 4096;
const tolerancePct = 2;

const q = (s: string): string => `'${s.replaceAll("'", `'\\''`)}'`;

let batch: Promise<ProbeReport> | undefined;

/** Boots the VM once for every test of this file and parses the probe's report. */
function probe(): Promise<ProbeReport> {
  batch ??= (async (): Promise<ProbeReport> => {
    const run = await runInVm(`${q(Deno.execPath())} run -A tests/support/vm_deno_probe.ts`, {
      cwd: repoRoot,
      stepTimeoutSec: 600,
    });
    console.log(`VM: one boot, ${(run.bootMs / 1000).toFixed(1)} s`);
    if (run.rc !== 0) throw new Error(`probe exited ${run.rc}:\n${run.output}\n${run.harness}`);
    const line = run.output.trim().split("\n").at(-1) ?? "";
    try {
      return JSON.parse(line) as ProbeReport;
    } catch {
      throw new Error(`no JSON report from the probe:\n${run.output}`);
    }
  })();
  return batch;
}

/** The part `key` of the report; throws with the probe's error for it. */
async function part<K extends Exclude<keyof ProbeReport, "errors">>(
  key: K,
): Promise<NonNullable<ProbeReport[K]>> {
  const report = await probe();
  const error = report.errors[key];
  if (error !== undefined) throw new Error(`probe ${key}: ${error}`);
  const value = report[key];
  if (value === undefined) throw new Error(`probe has no ${key}`);
  return value as NonNullable<ProbeReport[K]>;
}

const percent = (counts: number[]): string =>
  counts.map((c: number, n: number) => `node${n} ${((100 * c) / pages).toFixed(2)}%`).join(", ");

function expectShares(p: Placement, want: number[]): void {
  assert.equal(p.notPresent, 0);
  const got = p.residency.map((c: number) => (100 * c) / pages);
  const bad = want.some((w: number, n: number) => Math.abs(got[n] - w) > tolerancePct);
  assert.ok(!bad, `want ${want.join("/")}% ±${tolerancePct}, got ${percent(p.residency)}`);
}

Deno.test(
  { name: "vm: topology reports nodes 2-3 CPU-less and in the lower tier", ignore },
  async () => {
    const t = await part("topology");
    assert.deepEqual(t.cpuLess, [2, 3]);
    assert.deepEqual(t.lowerTier, [2, 3]);
    assert.deepEqual(t.cpus.map((c: number[]) => c.length > 0), [true, true, false, false]);
  },
);

Deno.test(
  { name: "vm: Pool({ bind: [2] }) puts every page of a 64 MiB buffer on node 2", ignore },
  async () => {
    const p = await part("bind2");
    assert.equal(p.policy, "bind:2");
    assert.deepEqual(p.residency, [0, 0, pages, 0], percent(p.residency));
    assert.equal(p.notPresent, 0);
  },
);

Deno.test(
  { name: 'vm: Pool({ interleave: "0-3" }) spreads 64 MiB 25% ± 2% per node', ignore },
  async () => {
    const p = await part("interleave");
    assert.equal(p.policy, "interleave:0-3");
    expectShares(p, [25, 25, 25, 25]);
  },
);

Deno.test({
  name: "vm: Pool({ weighted: { 0: 3, 2: 1 } }) splits 64 MiB 75/25 between nodes 0 and 2",
  ignore,
}, async () => {
  const p = await part("weighted");
  assert.equal(p.policy, "weighted-interleave:0=3,2=1");
  expectShares(p, [75, 0, 25, 0]);
});

Deno.test(
  { name: "vm: residency() reports exactly what move_pages(2) reports", ignore },
  async () => {
    for (const key of ["bind2", "interleave", "weighted"] as const) {
      const p = await part(key);
      assert.deepEqual(p.residency, p.movePages, key);
      assert.equal(p.notPresent, p.movePagesAbsent, key);
    }
  },
);

Deno.test({
  name: "vm: migrate(buf, 3) moves a 64 MiB buffer from node 0 to node 3, contents intact",
  ignore,
}, async () => {
  const m = await part("migrate");
  assert.deepEqual(m.before, [pages, 0, 0, 0], `before: ${percent(m.before)}`);
  assert.equal(m.notMoved, 0);
  assert.deepEqual(m.after, [0, 0, 0, pages], `after: ${percent(m.after)}`);
  assert.deepEqual(m.afterMovePages, m.after, "residency after migrate vs move_pages");
  assert.equal(m.notPresent, 0);
  assert.equal(m.contentsIntact, true);
});
