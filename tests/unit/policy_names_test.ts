/**
 * Holds the TypeScript side to the project's one naming table of policy modes,
 * `zig-src/src/testdata/policy_names.json` (zig-src/src/placement/policy_names_test.zig holds
 * policy.zig's `Mode` to the same file): lib/policy_names.ts says the same, every hmctl
 * option parses to its mode, every Pool key formats to its name and every numa_maps word
 * parses back to it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { MPOL_MODE, parseHmctlArgs, policyEnv, type PolicyMode } from "../../cli/hmctl_options.ts";
import type { NodeTopology } from "../../lib/node_list.ts";
import { parseMappingPolicy } from "../../lib/numa_maps.ts";
import { POLICY_MODES } from "../../lib/policy_names.ts";
import { policyString, type PoolPolicy } from "../../lib/pool.ts";

interface Row {
  name: string;
  zigTag: string;
  mpolName: string;
  mpol: number;
  hmctlShort: string | null;
  hmctlLong: string | null;
  poolKey: string | null;
  numaMapsWord: string;
}

const tablePath = join(
  fileURLToPath(new URL("../..", import.meta.url)),
  "zig-src/src/testdata/policy_names.json",
);
const table: Row[] = JSON.parse(Deno.readTextFileSync(tablePath));
const fourNodes: NodeTopology = { online: [0, 1, 2, 3], allowed: [0, 1, 2, 3] };

Deno.test("lib/policy_names.ts is the naming table, row for row", () => {
  assert.deepEqual(
    POLICY_MODES,
    table.map(({ name, mpol, hmctlShort, hmctlLong, poolKey, numaMapsWord }) => ({
      name,
      mpol,
      hmctlShort,
      hmctlLong,
      poolKey,
      numaMapsWord,
    })),
  );
  assert.equal(table.length, 6);
});

Deno.test("every hmctl option of the table sets its mode and MPOL number", () => {
  const optioned = table.filter((row) => row.hmctlLong !== null);
  assert.equal(optioned.length, 5);
  for (const row of optioned) {
    const spellings = [[`--${row.hmctlLong}=1`], [`--${row.hmctlLong}`, "1"], [
      `-${row.hmctlShort}1`,
    ]];
    for (const options of spellings) {
      const request = parseHmctlArgs([...options, "./prog"], fourNodes);
      assert.equal(request.kind, "run", options.join(" "));
      if (request.kind !== "run") continue;
      assert.deepEqual(request.policy, { mode: row.name, nodes: [1] }, options.join(" "));
    }
    const mode = row.name as PolicyMode;
    assert.equal(MPOL_MODE[mode], row.mpol, row.name);
    assert.equal(policyEnv({ mode, nodes: [1] }).HMALLOC_MPOL_MODE, String(row.mpol));
  }
  assert.deepEqual(Object.keys(MPOL_MODE).sort(), optioned.map((row) => row.name).sort());
});

Deno.test("every Pool key of the table formats to its mode's name", () => {
  for (const row of table) {
    if (row.poolKey === null) {
      assert.equal(policyString({}), row.name);
      continue;
    }
    const value = row.poolKey === "preferred" ? 1 : [1];
    assert.equal(policyString({ [row.poolKey]: value } as PoolPolicy), `${row.name}:1`);
  }
  assert.equal(policyString({ weighted: { 1: 3 } }), "weighted-interleave:1=3");
});

Deno.test("every numa_maps word of the table parses to its mode's name", () => {
  for (const row of table) {
    assert.equal(parseMappingPolicy(`${row.numaMapsWord}:1`).mode, row.name, row.numaMapsWord);
    assert.equal(parseMappingPolicy(`${row.numaMapsWord}=static:1`).mode, row.name);
  }
  assert.equal(parseMappingPolicy("default").mode, "default");
  assert.equal(parseMappingPolicy("local").mode, "local");
});
