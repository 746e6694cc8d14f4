/**
 * The test run's closing lines (scripts/test.ts): counts from each suite's own summary, and the
 * names of the failed tests printed just above `N passed, N failed`, where a CI log's tail shows
 * them.
 */
import assert from "node:assert/strict";
import { denoTally, failedTestNames, zigTally } from "../../scripts/test.ts";

const zigLog = `test
+- run test 1 pass, 1 fail (2 total)
error: 't.test.this one fails' failed:
       /tmp/zt/t.zig:3:25: 0x124e9d9 in test.this one fails (t.zig)
Build Summary: 1/3 steps succeeded (1 failed); 1/2 tests passed (1 failed)
`;

const denoLog = `ok | 3 passed | 0 failed (1s)

 ERRORS 

tier --pid tiers a running program the same way => ./tests/vm/vm_tiering_test.ts:336:6
error: AssertionError: phase 1: never both >= 90% within 10 s:

 FAILURES 

tier --pid tiers a running program the same way => ./tests/vm/vm_tiering_test.ts:336:6
stress 8 threads => ./tests/native/stress_test.ts:159:8

FAILED | 509 passed | 2 failed | 2 ignored (8m45s)
`;

Deno.test("a Zig run's counts and failed test come from its build summary", () => {
  assert.deepEqual(zigTally(zigLog, false), { passed: 1, failed: 1 });
  assert.deepEqual(failedTestNames(zigLog), ["zig: t.test.this one fails"]);
});

Deno.test("a deno run's failed tests are its FAILURES list, not its ERRORS", () => {
  assert.deepEqual(denoTally(denoLog, false), { passed: 509, failed: 2 });
  assert.deepEqual(failedTestNames(denoLog), [
    "tier --pid tiers a running program the same way => ./tests/vm/vm_tiering_test.ts:336:6",
    "stress 8 threads => ./tests/native/stress_test.ts:159:8",
  ]);
});

Deno.test("a run without a summary counts as one failure, a clean one as none", () => {
  assert.deepEqual(zigTally("error: the build failed", false), { passed: 0, failed: 1 });
  assert.deepEqual(denoTally("", true), { passed: 0, failed: 0 });
  assert.deepEqual(failedTestNames("ok | 3 passed | 0 failed (1s)\n"), []);
});
