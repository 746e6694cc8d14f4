// Automatic tiering on the host: the decision (planMoves), DAMON kdamond ownership on a fake
// sysfs tree, cleanup after SIGKILL, `tier` option parsing and the exact refusal lines.
import assert from "node:assert/strict";
import {
  claimKdamond,
  configureVaddrStat,
  DamonBusyError,
  readTriedRegions,
  releaseKdamond,
  startKdamond,
} from "../../lib/damon.ts";
import { type PlanLimits, planMoves, type PlanRegion } from "../../lib/tiering_plan.ts";
import { parseDuration, parseSize, parseTierArgs } from "../../cli/tier_options.ts";
import { checkTiering, TieringError } from "../../lib/tiering.ts";
import { chooseEngine, kernelEngineUnavailable } from "../../lib/tiering_engine.ts";
import { cleanupLeftovers, recordClaim } from "../../lib/tiering_state.ts";
import { defaultFastNodes, defaultSlowNodes, runTier } from "../../cli/tier_run.ts";
import type { Topology } from "../../lib/topology.ts";
import { FakeDamon } from "../support/fake_damon.ts";

const limits = (over: Partial<PlanLimits> = {}): PlanLimits => ({
  budgetPages: 1000,
  fastUsedPages: 0,
  ratePages: 100_000,
  hotMinAccesses: 1,
  coldMinAge: 5,
  idleMinAge: 100,
  ...over,
});
const region = (nrAccesses: number, age: number, fastPages: number, slowPages: number) => ({
  nrAccesses,
  age,
  fastPages,
  slowPages,
} satisfies PlanRegion);

Deno.test("planMoves promotes the hottest region first and stops at the budget", () => {
  const plan = planMoves(
    [region(12, 1, 0, 800), region(18, 1, 0, 800), region(0, 1, 0, 5000)],
    limits({ budgetPages: 1000, fastUsedPages: 100 }),
  );
  assert.deepEqual(plan.promote, [100, 800, 0]);
  assert.deepEqual(plan.demote, [0, 0, 0]);
});

Deno.test("planMoves never promotes an unaccessed region into free budget", () => {
  const plan = planMoves([region(0, 0, 0, 100)], limits({ hotMinAccesses: 0 }));
  assert.deepEqual(plan, { promote: [0], demote: [0] });
});

Deno.test("planMoves leaves a lukewarm region on the slow nodes even with free budget", () => {
  // A window read in a loop (20 of 20 samples), a region only partly in it (6), a region whose
  // pages were touched once at set-up (1): only the window is promoted; the budget has room left.
  const plan = planMoves(
    [region(20, 3, 0, 100), region(6, 2, 0, 100), region(1, 0, 0, 100)],
    limits(),
  );
  assert.deepEqual(plan, { promote: [100, 0, 0], demote: [0, 0, 0] });
});

Deno.test("planMoves promotes every region at least hotShare as hot as the hottest", () => {
  const plan = planMoves(
    [region(20, 3, 0, 100), region(10, 3, 0, 100), region(9, 3, 0, 100)],
    limits(),
  );
  assert.deepEqual(plan.promote, [100, 100, 0]);
});

Deno.test("planMoves makes room for a hot region only from regions cold for coldMinAge", () => {
  const plan = planMoves(
    [
      region(20, 3, 0, 600), // hot, all slow
      region(0, 2, 300, 0), // cooled down just now: hysteresis keeps it
      region(1, 50, 300, 0), // warm: never displaced
      region(0, 40, 400, 0), // long cold: makes room
    ],
    limits({ budgetPages: 1000, fastUsedPages: 1000 }),
  );
  assert.deepEqual(plan.demote, [0, 0, 0, 400]);
  assert.deepEqual(plan.promote, [400, 0, 0, 0]);
});

Deno.test("planMoves brings the program back within its budget, cold first, then least accessed", () => {
  const plan = planMoves(
    [region(9, 1, 500, 0), region(0, 9, 200, 0), region(2, 1, 500, 0)],
    limits({ budgetPages: 700, fastUsedPages: 1200 }),
  );
  assert.deepEqual(plan.demote, [0, 200, 300]);
  assert.deepEqual(plan.promote, [0, 0, 0]);
});

Deno.test("planMoves never moves more than the rate, demotions that make room included", () => {
  const plan = planMoves(
    [region(20, 1, 0, 1000), region(0, 30, 1000, 0)],
    limits({ budgetPages: 1000, fastUsedPages: 1000, ratePages: 200 }),
  );
  const moved = plan.promote[0] + plan.demote[1];
  assert.ok(moved <= 200, `${moved} pages moved`);
  assert.deepEqual(plan, { promote: [100, 0], demote: [0, 100] });
});

Deno.test("planMoves demotes idle regions even under the budget, and leaves them when not idle", () => {
  const idle = planMoves([region(0, 150, 64, 0)], limits({ fastUsedPages: 64 }));
  assert.deepEqual(idle.demote, [64]);
  const recent = planMoves([region(0, 20, 64, 0)], limits({ fastUsedPages: 64 }));
  assert.deepEqual(recent.demote, [0]);
});

Deno.test("claimKdamond creates the first kdamond only when none exists, and refuses otherwise", () => {
  const fake = new FakeDamon();
  assert.deepEqual(claimKdamond(fake), { index: 0, created: true });
  assert.deepEqual(fake.writes, ["kdamonds/nr_kdamonds=1"]);
  const before = fake.writes.length;
  assert.throws(
    () => claimKdamond(fake),
    (e: unknown) =>
      e instanceof DamonBusyError &&
      e.message ===
        "1 kdamond(s) already exist (another DAMON user); tiermem will not replace them (--use-free-kdamond reuses a free one)",
  );
  assert.equal(fake.writes.length, before, "a refused claim writes nothing");
});

Deno.test("claimKdamond with useFree reuses an off kdamond without contexts, never a busy one", () => {
  const fake = new FakeDamon();
  fake.write("kdamonds/nr_kdamonds", "2");
  fake.write("kdamonds/0/contexts/nr_contexts", "1"); // someone's
  assert.deepEqual(claimKdamond(fake, { useFree: true }), { index: 1, created: false });
  fake.write("kdamonds/1/contexts/nr_contexts", "1");
  assert.throws(
    () => claimKdamond(fake, { useFree: true }),
    /2 kdamond\(s\) exist and none is free/,
  );
});

Deno.test("configureVaddrStat opens every access-pattern bound (a new scheme's max is 0)", () => {
  const fake = new FakeDamon();
  const claim = claimKdamond(fake);
  configureVaddrStat(fake, claim.index, 4242);
  const s = "kdamonds/0/contexts/0/schemes/0";
  assert.equal(fake.read("kdamonds/0/contexts/0/targets/0/pid_target"), "4242");
  assert.equal(fake.read("kdamonds/0/contexts/0/operations"), "vaddr");
  assert.equal(fake.read(`${s}/action`), "stat");
  for (const k of ["sz", "nr_accesses", "age"]) {
    assert.notEqual(fake.read(`${s}/access_pattern/${k}/max`), "0", k);
  }
});

Deno.test("readTriedRegions reads every region in address order after asking for an update", () => {
  const fake = new FakeDamon();
  const claim = claimKdamond(fake);
  configureVaddrStat(fake, claim.index, 1);
  startKdamond(fake, claim.index);
  fake.regions = [
    { start: 0x2000, end: 0x3000, nrAccesses: 0, age: 7 },
    { start: 0x1000, end: 0x2000, nrAccesses: 12, age: 1 },
  ];
  const got = readTriedRegions(fake, claim.index);
  assert.deepEqual(got.map((r) => r.start), [0x1000, 0x2000]);
  assert.equal(got[0].nrAccesses, 12);
  assert.ok(fake.writes.includes("kdamonds/0/state=update_schemes_tried_regions"));
});

Deno.test("releaseKdamond turns ours off and removes only what tiermem created", () => {
  const fake = new FakeDamon();
  const claim = claimKdamond(fake);
  configureVaddrStat(fake, claim.index, 1);
  startKdamond(fake, claim.index);
  releaseKdamond(fake, claim);
  assert.equal(fake.read("kdamonds/nr_kdamonds"), "0");
  releaseKdamond(fake, claim); // twice is harmless
  // A reused free kdamond stays, free again; the other kdamond is untouched.
  fake.write("kdamonds/nr_kdamonds", "2");
  fake.write("kdamonds/0/contexts/nr_contexts", "1");
  const reused = claimKdamond(fake, { useFree: true });
  configureVaddrStat(fake, reused.index, 1);
  startKdamond(fake, reused.index);
  releaseKdamond(fake, reused);
  assert.equal(fake.read("kdamonds/nr_kdamonds"), "2");
  assert.equal(fake.read("kdamonds/1/state"), "off");
  assert.equal(fake.read("kdamonds/1/contexts/nr_contexts"), "0");
  assert.equal(fake.read("kdamonds/0/contexts/nr_contexts"), "1");
});

Deno.test("cleanupLeftovers releases the claims of dead tier processes and keeps live ones", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const fake = new FakeDamon();
    const claim = claimKdamond(fake);
    configureVaddrStat(fake, claim.index, 77);
    startKdamond(fake, claim.index);
    recordClaim(dir, { owner: 999_999_001, target: 77, claim });
    recordClaim(dir, { owner: 999_999_002, target: 78, claim: { index: 5, created: false } });
    const alive = (pid: number): boolean => pid === 999_999_002;
    const result = cleanupLeftovers(fake, dir, alive);
    assert.deepEqual(result.released.map((r) => r.owner), [999_999_001]);
    assert.deepEqual(result.live.map((r) => r.owner), [999_999_002]);
    assert.equal(fake.read("kdamonds/nr_kdamonds"), "0");
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["tier-999999002.json"]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("parseTierArgs reads options up to the program and leaves its arguments alone", () => {
  const r = parseTierArgs([
    "--fast",
    "0",
    "--slow=2-3",
    "--fast-max",
    "25%",
    "--interval",
    "500ms",
    "--rate",
    "256M/s",
    "--json",
    "./prog",
    "--fast",
    "x",
  ]);
  assert.deepEqual(r, {
    kind: "run",
    fast: "0",
    slow: "2-3",
    fastMax: { percent: 25 },
    intervalMs: 500,
    rateBytesPerSec: 256 << 20,
    json: true,
    engine: "user",
    useFreeKdamond: false,
    pid: undefined,
    command: ["./prog", "--fast", "x"],
  });
  const p = parseTierArgs(["--pid", "42", "--fast-max", "128M"]);
  assert.ok(p.kind === "run" && p.pid === 42 && p.fastMax === 128 << 20 && p.command.length === 0);
  assert.deepEqual(parseTierArgs(["--cleanup"]), { kind: "cleanup" });
});

Deno.test("parseTierArgs names the bad token", () => {
  const cases: Array<[string[], string]> = [
    [["--fats", "0", "p"], "unknown option --fats"],
    [["--fast"], "option --fast needs a value"],
    [["--fast-max", "12X", "p"], `invalid --fast-max "12X" (want e.g. 128M, 2G, 4096)`],
    [["--fast-max", "150%", "p"], `invalid --fast-max "150%" (a percentage from 0 to 100)`],
    [["--interval", "soon", "p"], `invalid interval "soon" (want 10ms to 1h, e.g. 500ms, 2s)`],
    [["--rate", "fast", "p"], `invalid --rate "fast" (want e.g. 128M, 2G, 4096)`],
    [["--engine", "magic", "p"], `invalid --engine "magic" (user, kernel or auto)`],
    [["--pid", "x"], `invalid --pid "x" (a process id)`],
    [["--pid", "4", "prog"], "--pid and a program (prog) exclude each other"],
    [["--json"], "missing PROGRAM (or --pid PID)"],
    [["--cleanup", "prog"], "--cleanup takes no other option and no program"],
    [["--fast", "0", "--fast", "1", "p"], "option --fast given twice"],
  ];
  for (const [args, message] of cases) {
    assert.throws(
      () => parseTierArgs(args),
      (e: unknown) => e instanceof TypeError && e.message === message,
      args.join(" "),
    );
  }
  assert.equal(parseSize("2G"), 2 ** 31);
  assert.equal(parseSize("64KiB"), 65536);
  assert.equal(parseDuration("2"), 2000);
});

const fourNodes: Topology = {
  possible: [0, 1, 2, 3],
  online: [0, 1, 2, 3],
  tiers: [{ id: 4, nodes: [0, 1] }, { id: 22, nodes: [2, 3] }],
  cpuLessNodes: [2, 3],
  nodes: [0, 1, 2, 3].map((id) => ({
    id,
    cpus: id < 2 ? [id] : [],
    hasCpu: id < 2,
    hasMemory: true,
    memTotalBytes: 1 << 30,
    memFreeBytes: 1 << 29,
    distances: [],
  })),
};
const root = { uid: 0, damonPresent: true, topology: fourNodes };

Deno.test("checkTiering refuses with one line naming the problem", () => {
  const cases: Array<[Parameters<typeof checkTiering>, string]> = [
    [
      [{ fast: [0], slow: [2] }, { ...root, uid: 1000 }],
      "must run as root: DAMON's sysfs and moving another process's pages need it",
    ],
    [
      [{ fast: [0], slow: [2] }, { ...root, damonPresent: false }],
      "no DAMON sysfs interface (/sys/kernel/mm/damon/admin): the kernel needs CONFIG_DAMON_SYSFS and CONFIG_DAMON_VADDR",
    ],
    [[{ fast: [0], slow: [5] }, root], "node 5 is not online (online: 0-3)"],
    [
      [{ fast: [0], slow: [] }, root],
      "no lower-tier node to demote to (the kernel shows one memory tier): give --slow NODES",
    ],
    [[{ fast: [0], slow: [0, 2] }, root], "node 0 is both fast and slow"],
    [
      [{ fast: [0], slow: [2], fastMax: 2 ** 31 }, root],
      "fast-node budget 2.0 GiB is larger than the fast nodes' memory (1.0 GiB on node 0)",
    ],
  ];
  for (const [args, message] of cases) {
    assert.throws(
      () => checkTiering(...args),
      (e: unknown) => e instanceof TieringError && e.message === message,
      message,
    );
  }
  assert.equal(
    checkTiering({ fast: [0, 1], slow: [2], fastMax: { percent: 25 } }, root).budgetBytes,
    1 << 29,
  );
});

Deno.test("default nodes: the top tier near the program's CPUs, and every lower tier", () => {
  assert.deepEqual(defaultFastNodes(fourNodes, [1]), [1]);
  assert.deepEqual(defaultFastNodes(fourNodes, [7]), [0, 1]);
  assert.deepEqual(defaultSlowNodes(fourNodes), [2, 3]);
});

Deno.test("the kernel engine says why it cannot run, and auto then picks user", () => {
  assert.equal(
    kernelEngineUnavailable({ release: "6.1.0-30-amd64", mounts: "" }),
    "Linux 6.1.0-30-amd64 has no DAMOS migrate_hot/migrate_cold (6.11+)",
  );
  assert.equal(
    kernelEngineUnavailable({ release: "6.12.9", mounts: "proc /proc proc rw 0 0\n" }),
    "no cgroup v2 hierarchy is mounted, so DAMOS cannot be scoped to the program",
  );
  const auto = chooseEngine("auto", { release: "6.12.9", mounts: "" });
  assert.equal(auto.engine, "user");
  assert.match(auto.note, /^engine user \(kernel engine unavailable: no cgroup v2/);
  assert.throws(
    () => chooseEngine("kernel", { release: "6.12.9", mounts: "" }),
    /^TypeError: the kernel engine cannot run: no cgroup v2/,
  );
});

Deno.test("tier on this machine refuses before starting the program, with exit status 2", async () => {
  const lines: string[] = [];
  const marker = Deno.makeTempFileSync();
  Deno.removeSync(marker);
  const status = await runTier(["--fast-max", "1M", "sh", "-c", `touch ${marker}`], {
    err: (t: string) => lines.push(t),
    isTerminal: false,
  });
  assert.equal(status, 2);
  assert.equal(lines.length, 1);
  // Whichever precondition this host lacks comes first; on a one-node root host with DAMON it
  // is the missing lower tier.
  assert.match(lines[0], /^tier: (must run as root|no DAMON sysfs|no lower-tier node)[^\n]*\n$/);
  assert.throws(() => Deno.statSync(marker), Deno.errors.NotFound);
  const usage: string[] = [];
  assert.equal(await runTier(["--bogus"], { err: (t) => usage.push(t), isTerminal: false }), 2);
  assert.deepEqual(usage, ["tier: unknown option --bogus\n"]);
});
