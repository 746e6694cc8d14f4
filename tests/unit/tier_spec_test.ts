/**
 * lib/tier_spec.ts against the case table the Zig parser also runs
 * (zig-src/src/testdata/tier_spec_cases.json), plus the flag converter.
 */
import assert from "node:assert/strict";
import { parseTierSpec, tierEnvFromFlags, type TierSpec } from "../../lib/tier_spec.ts";

interface CaseTier {
  kind: string;
  ratio: number;
  path: string;
  pmemSizeLimitBytes: string;
}

interface CaseThreshold {
  minBytes: string;
  initBytes: string;
  maxBytes: string;
}

interface Case {
  name: string;
  tiers: string;
  thresholds: string | null;
  message?: string;
  expect?: { policy: string; tiers: CaseTier[]; thresholds: CaseThreshold[] };
}

const casesUrl = new URL("../../zig-src/src/testdata/tier_spec_cases.json", import.meta.url);
const cases: Case[] = JSON.parse(Deno.readTextFileSync(casesUrl));

function specAsCase(spec: TierSpec): Case["expect"] {
  return {
    policy: spec.policy,
    tiers: spec.tiers.map((t) => ({
      kind: t.kind,
      ratio: t.ratio,
      path: t.path,
      pmemSizeLimitBytes: t.pmemSizeLimitBytes.toString(),
    })),
    thresholds: spec.thresholds.map((t) => ({
      minBytes: t.minBytes.toString(),
      initBytes: t.initBytes.toString(),
      maxBytes: t.maxBytes.toString(),
    })),
  };
}

Deno.test("the shared case table is large enough to mean something", () => {
  assert.ok(cases.length >= 80);
});

for (const c of cases) {
  Deno.test(`tier spec: ${c.name}`, () => {
    const result = parseTierSpec(c.tiers, c.thresholds);
    if (c.message !== undefined) {
      assert.equal(result.ok ? "(parsed)" : result.failure.message, c.message);
    } else {
      assert.deepEqual(result.ok ? specAsCase(result.spec) : result.failure.message, c.expect);
    }
  });
}

Deno.test("a failure's offsets locate its token and context in the input", () => {
  const input = "KIND:DRAM,RATIO:1;KIND:FS_DAX,RATIO:2,PATH:/mnt/a:b,PMEM_SIZE_LIMIT:8M;" +
    "POLICY:STATIC_RATIO";
  const result = parseTierSpec(input);
  assert.ok(!result.ok);
  const f = result.failure;
  assert.equal(f.token, "8M");
  assert.equal(input.slice(f.tokenOffset, f.tokenOffset + f.token.length), f.token);
  assert.equal(input.slice(f.contextOffset, f.contextOffset + f.context.length), f.context);
});

Deno.test("flags: DRAM:1,KMEM_DAX:4 is the 1:4 STATIC_RATIO configuration", () => {
  assert.deepEqual(tierEnvFromFlags({ tiers: "DRAM:1,KMEM_DAX:4" }), {
    MEMKIND_MEM_TIERS: "KIND:DRAM,RATIO:1;KIND:KMEM_DAX,RATIO:4;POLICY:STATIC_RATIO",
  });
});

Deno.test("flags: FS_DAX with a limit and a path holding ':', dynamic policy, thresholds", () => {
  assert.deepEqual(
    tierEnvFromFlags({
      tiers: "DRAM:1,FS_DAX:2:1G:/mnt/a:b",
      policy: "dynamic",
      thresholds: "INIT_VAL:1K",
    }),
    {
      MEMKIND_MEM_TIERS:
        "KIND:DRAM,RATIO:1;KIND:FS_DAX,PATH:/mnt/a:b,RATIO:2,PMEM_SIZE_LIMIT:1G;POLICY:DYNAMIC_THRESHOLD",
      MEMKIND_MEM_THRESHOLDS: "INIT_VAL:1K",
    },
  );
  assert.equal(
    tierEnvFromFlags({ tiers: "FS_DAX:3:/pmem" }).MEMKIND_MEM_TIERS,
    "KIND:FS_DAX,PATH:/pmem,RATIO:3;POLICY:STATIC_RATIO",
  );
});

Deno.test("flags: a bad flag token is named; a bad value gets libmemtier's message", () => {
  assert.throws(
    () => tierEnvFromFlags({ tiers: "HBW:1" }),
    new TypeError('--tiers: bad tier "HBW:1": unknown kind (expected DRAM, KMEM_DAX or FS_DAX)'),
  );
  assert.throws(
    () => tierEnvFromFlags({ tiers: "FS_DAX:1:pmem" }),
    new TypeError(
      '--tiers: bad tier "FS_DAX:1:pmem": expected FS_DAX:RATIO[:LIMIT]:PATH with an absolute PATH',
    ),
  );
  assert.throws(
    () => tierEnvFromFlags({ tiers: "DRAM" }),
    new TypeError('--tiers: bad tier "DRAM": expected DRAM:RATIO'),
  );
  assert.throws(
    () => tierEnvFromFlags({ tiers: "DRAM:0" }),
    new TypeError(
      'MEMKIND_MEM_TIERING_LOG_ERROR: MEMKIND_MEM_TIERS: bad token "0" in "KIND:DRAM,RATIO:0": ' +
        "out of range 1..4294967295",
    ),
  );
  assert.throws(
    () => tierEnvFromFlags({ tiers: "DRAM:1", policy: "dynamic" }),
    new TypeError(
      'MEMKIND_MEM_TIERING_LOG_ERROR: MEMKIND_MEM_TIERS: bad token "DYNAMIC_THRESHOLD" in ' +
        '"POLICY:DYNAMIC_THRESHOLD": DYNAMIC_THRESHOLD needs at least 2 tiers',
    ),
  );
});
