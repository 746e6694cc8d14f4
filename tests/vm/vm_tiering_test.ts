/**
 * Automatic tiering proven on 4 NUMA nodes (issue 14), page by page with move_pages(2).
 *
 * One boot of the VM (tests/numavm/: nodes 0-1 DRAM, 2-3 CPU-less lower tier) runs every step;
 * each test asserts on its step's output. The workload is `tests/c/hot_window.c`: 512 MiB moved to
 * node 2, a 64 MiB window read in a loop, the window moved every phase; it prints its own page
 * counts every second. `cli.ts tier` runs as a user types it.
 *
 * Timing under TCG: the guest is ~12x slower than the host, so the phases are 12 s (the issue's
 * bound is 10 s to 90%) and tiering's interval is the default 1 s.
 *
 * The last step mounts cgroup2 and runs the same program under the kernel engine (DAMOS
 * migrate_hot/migrate_cold in a memory cgroup): its budget and clean-up are asserted, its times
 * reported.
 */

import assert from "node:assert/strict";
import { buildCProgram } from "../support/c_programs.ts";
import { repoRoot, runInVm, type VmStepResult, vmTestIgnore } from "../support/vm.ts";

const ignore: boolean = vmTestIgnore();

const q = (s: string): string => `'${s.replaceAll("'", `'\\''`)}'`;
const deno: string = q(Deno.execPath());
const exe = "tests/out/hot_window";
const tier = `${deno} run -A cli.ts tier`;
const admin = "/sys/kernel/mm/damon/admin";
const budgetMib = 128;
const phaseS = 12;
const afterCheck = [
  `echo "after: nr_kdamonds=$(cat ${admin}/kdamonds/nr_kdamonds)"`,
  `echo "after: records=$(ls /run/tiermem 2>/dev/null | wc -l)"`,
].join("\n");

/** Copies the checkout (less tests, tools and caches) and Deno to `$nr`, readable by every user. */
const nonRootCopy = [
  "nr=$(mktemp -d /tmp/tiermem-nonroot.XXXXXX)",
  'tar -C . --exclude=./.git --exclude=./.tools --exclude=./tests --exclude=./zig-src/.zig-cache -cf - . | tar -C "$nr" -xf -',
  `cp ${deno} "$nr/deno"`,
  'chmod -R a+rX "$nr"',
].join("\n");

/** Runs one refused case: its stderr line, its rc, and whether the program started. */
function refusal(name: string, cmd: string): string {
  const marker = `/tmp/started-${name}`;
  return [
    `rm -f ${marker}`,
    `out=$(${cmd} sh -c 'touch ${marker}' 2>&1 >/dev/null); rc=$?`,
    `line=$(printf '%s\\n' "$out" | tail -1)`,
    `started=no; [ -e ${marker} ] && started=yes`,
    `echo "case ${name} rc=$rc started=$started line=$line"`,
  ].join("\n");
}

interface Step {
  key: string;
  script: string;
}

const steps: Step[] = [
  {
    key: "tier",
    script: [
      `${tier} --json --fast 0 --slow 2 --fast-max ${budgetMib}M ${exe} 512 64 3 ${phaseS} 1000 0 2`,
      `echo "tier rc=$?"`,
      afterCheck,
    ].join("\n"),
  },
  {
    key: "numa-balancing",
    script: [
      "echo 2 > /proc/sys/kernel/numa_balancing",
      `${exe} 512 64 2 20 1000 0 2`,
      "rc=$?",
      "echo 0 > /proc/sys/kernel/numa_balancing",
      "exit $rc",
    ].join("\n"),
  },
  {
    key: "pid",
    script: [
      "rm -f /tmp/go",
      `env HOT_WINDOW_GO=/tmp/go ${exe} 512 64 2 ${phaseS} 1000 0 2 > tests/out/hot_window_pid.log & pid=$!`,
      `until grep -q ready tests/out/hot_window_pid.log; do sleep 0.2; done`,
      `${tier} --json --fast 0 --slow 2 --fast-max ${budgetMib}M --pid $pid 2> tests/out/tier_pid.log & tpid=$!`,
      `until grep -q "tier: engine" tests/out/tier_pid.log; do sleep 0.2; done`,
      "touch /tmp/go",
      "wait $tpid",
      `echo "tier rc=$?"`,
      "wait $pid",
      "cat tests/out/tier_pid.log",
      "cat tests/out/hot_window_pid.log",
      afterCheck,
    ].join("\n"),
  },
  {
    key: "refusals",
    script: [
      // A user who is not root runs a copy any user can read: the checkout itself may sit where
      // only root can enter (a clone in /root, as in the bare-root test).
      nonRootCopy,
      refusal(
        "not-root",
        `setpriv --reuid=65534 --regid=65534 --clear-groups env DENO_DIR=/tmp/dd HOME=/tmp "$nr/deno" run -A "$nr/cli.ts" tier --fast 0 --slow 2`,
      ),
      refusal("budget", `${tier} --fast 0 --slow 2 --fast-max 4G`),
      refusal("offline", `${tier} --fast 0 --slow 7`),
      refusal("kernel-engine", `${tier} --engine kernel --fast 0 --slow 2`),
      `echo 1 > ${admin}/kdamonds/nr_kdamonds`,
      refusal("kdamonds-exist", `${tier} --fast 0 --slow 2`),
      `${tier} --use-free-kdamond --fast 0 --slow 2 sleep 3; echo "free kdamond rc=$?"`,
      `echo "free kdamond after: nr=$(cat ${admin}/kdamonds/nr_kdamonds) contexts=$(cat ${admin}/kdamonds/0/contexts/nr_contexts)"`,
      `echo 0 > ${admin}/kdamonds/nr_kdamonds`,
      "mount -t tmpfs none /sys/kernel/mm/damon",
      refusal("no-damon", `${tier} --fast 0 --slow 2`),
      "umount /sys/kernel/mm/damon",
    ].join("\n"),
  },
  {
    key: "sigkill",
    script: [
      `${tier} --fast 0 --slow 2 sleep 60 & tpid=$!`,
      `until [ -n "$(ls /run/tiermem 2>/dev/null)" ]; do sleep 0.2; done; sleep 1`,
      `echo "before kill: nr_kdamonds=$(cat ${admin}/kdamonds/nr_kdamonds) state=$(cat ${admin}/kdamonds/0/state)"`,
      // The program, once started (a slow guest may still be starting it a second later); read
      // from /proc: a bare Debian root has no procps (pgrep).
      "until spid=$(cat /proc/$tpid/task/*/children 2>/dev/null | tr -d ' ') && [ -n \"$spid\" ]; do sleep 0.2; done",
      "kill -9 $tpid; wait $tpid 2>/dev/null; kill $spid",
      `echo "after kill: nr_kdamonds=$(cat ${admin}/kdamonds/nr_kdamonds) records=$(ls /run/tiermem | wc -l)"`,
      `${tier} --cleanup; echo "cleanup rc=$?"`,
      afterCheck,
    ].join("\n"),
  },
  {
    // The kernel engine needs cgroup v2, which this guest does not mount by itself: mounted here,
    // after every other step (the refusal above wants it absent).
    key: "kernel",
    script: [
      "mount -t cgroup2 none /sys/fs/cgroup",
      `out=$(${tier} --engine kernel --fast 0 --slow 2 --pid $$ 2>&1); rc=$?`,
      `echo "case kernel-pid rc=$rc line=$(printf '%s\\n' "$out" | tail -1)"`,
      `echo "auto: $(${tier} --engine auto --fast 0 --slow 2 --fast-max ${budgetMib}M sleep 2 2>&1 | grep 'tier: engine')"`,
      `${tier} --json --engine kernel --fast 0 --slow 2 --fast-max ${budgetMib}M ${exe} 512 64 3 ${phaseS} 1000 0 2`,
      `echo "tier rc=$?"`,
      afterCheck,
      `echo "after: cgroups=$(ls -d /sys/fs/cgroup/tiermem-* 2>/dev/null | wc -l)"`,
      // Killed with SIGKILL while its program runs: --cleanup stops the kdamonds and removes the
      // group, the program moved back out first.
      `${tier} --engine kernel --fast 0 --slow 2 sleep 60 & tpid=$!`,
      `until [ -n "$(ls /run/tiermem 2>/dev/null)" ]; do sleep 0.2; done; sleep 1`,
      // The program, once started (a slow guest may still be starting it a second later); read
      // from /proc: a bare Debian root has no procps (pgrep).
      "until spid=$(cat /proc/$tpid/task/*/children 2>/dev/null | tr -d ' ') && [ -n \"$spid\" ]; do sleep 0.2; done",
      "kill -9 $tpid; wait $tpid 2>/dev/null",
      `echo "after kill: nr_kdamonds=$(cat ${admin}/kdamonds/nr_kdamonds) cgroups=$(ls -d /sys/fs/cgroup/tiermem-* | wc -l)"`,
      `${tier} --cleanup; echo "cleanup rc=$?"`,
      `echo "cleaned: nr_kdamonds=$(cat ${admin}/kdamonds/nr_kdamonds) records=$(ls /run/tiermem | wc -l) cgroups=$(ls -d /sys/fs/cgroup/tiermem-* 2>/dev/null | wc -l) sleep_cgroup=$(cut -d: -f3 /proc/$spid/cgroup)"`,
      "kill $spid",
      "umount /sys/fs/cgroup",
    ].join("\n"),
  },
];

let batch: Promise<Map<string, VmStepResult>> | undefined;

function results(): Promise<Map<string, VmStepResult>> {
  batch ??= (async (): Promise<Map<string, VmStepResult>> => {
    await buildCProgram("hot_window", { hmalloc: false });
    const run = await runInVm(steps.map((s) => s.script), { cwd: repoRoot, stepTimeoutSec: 300 });
    const perStep = steps.map((st, i) => `${st.key} ${(run.steps[i].ms / 1000).toFixed(0)} s`);
    console.log(`VM: one boot, ${(run.bootMs / 1000).toFixed(0)} s (${perStep.join(", ")})`);
    if (run.rc === 125) throw new Error(`the VM failed:\n${run.harness}`);
    return new Map(steps.map((s, i) => [s.key, run.steps[i]]));
  })();
  return batch;
}

async function step(key: string): Promise<VmStepResult> {
  const r = (await results()).get(key);
  if (r === undefined) throw new Error(`no step ${key}`);
  return r;
}

/** One report line of hot_window. */
interface Sample {
  phase: number;
  t_ms: number;
  hot_fast_pct: number;
  cold_slow_pct: number;
  proc_fast_mib: number;
}

/** One interval line of `tier --json`. */
interface Interval {
  interval: number;
  elapsedMs: number;
  fastBytes: number;
  cpuMs: number;
  totalPromotedBytes: number;
  totalDemotedBytes: number;
}

function jsonLines<T>(output: string, key: string): T[] {
  return output.split("\n").filter((l) => l.startsWith("{") && l.includes(`"${key}"`)).map((
    l,
  ) => JSON.parse(l) as T);
}

/** Per phase: ms to >= 90% of the window on node 0 (undefined if never). */
function timesTo90(samples: readonly Sample[]): Array<number | undefined> {
  const phases = Math.max(...samples.map((s) => s.phase)) + 1;
  return Array.from(
    { length: phases },
    (_, p) => samples.find((s) => s.phase === p && s.hot_fast_pct >= 90)?.t_ms,
  );
}

function describeRun(name: string, output: string): string {
  const samples = jsonLines<Sample>(output, "phase");
  const intervals = jsonLines<Interval>(output, "interval");
  const times = timesTo90(samples).map((
    t,
  ) => (t === undefined ? "never" : `${(t / 1000).toFixed(1)} s`));
  const maxFast = Math.max(...samples.map((s) => s.proc_fast_mib));
  const lastOf = (p: number): Sample | undefined => samples.filter((s) => s.phase === p).at(-1);
  const ends = times.map((_, p) => {
    const l = lastOf(p);
    return l === undefined
      ? ""
      : `phase ${p} end: hot ${l.hot_fast_pct}% fast, cold ${l.cold_slow_pct}% slow, fast ${l.proc_fast_mib} MiB`;
  });
  let text = `${name}: time to 90% per phase ${times.join(", ")}; max on node 0 ${maxFast} MiB; ${
    ends.join("; ")
  }`;
  if (intervals.length > 0) {
    const last = intervals.at(-1)!;
    const cpu = intervals.map((i) => i.cpuMs).sort((a, b) => a - b);
    text += `; migrated ${(last.totalPromotedBytes / 2 ** 20).toFixed(0)} MiB up, ${
      (last.totalDemotedBytes / 2 ** 20).toFixed(0)
    } MiB down; tiermem CPU per interval median ${cpu[cpu.length >> 1]} ms, max ${
      cpu.at(-1)
    } ms (guest, TCG)`;
  }
  return text;
}

/**
 * The first tiering interval (1 s nominal) ended after more than this: the emulated guest runs too
 * slowly on this host right now (TCG on a loaded machine) for the issue's 10-second figures to mean
 * anything, so they are reported, not asserted. Seen: 14.5 s while three other VMs and two test
 * suites shared the 2 host cores; 1.5-3 s on a host running this suite alone.
 */
const slowGuestFirstIntervalMs = 6000;

/** The issue's assertions on one tiered run. */
function assertTiered(output: string, phases: number): void {
  const samples = jsonLines<Sample>(output, "phase");
  assert.ok(samples.length > 0, `no samples:\n${output}`);
  const times = timesTo90(samples);
  assert.equal(times.length, phases, output);
  // Whatever the guest's speed: the budget holds and nothing of ours is left behind.
  const limit = budgetMib * 1.05;
  for (const s of samples) {
    assert.ok(
      s.proc_fast_mib <= limit,
      `node 0 held ${s.proc_fast_mib} MiB > ${limit}:\n${output}`,
    );
  }
  assert.match(output, /after: nr_kdamonds=0\n/);
  assert.match(output, /after: records=0\n/);
  const first = jsonLines<Interval>(output, "interval")[0];
  assert.ok(first !== undefined, `tiermem reported no interval:\n${output}`);
  if (first.elapsedMs > slowGuestFirstIntervalMs) {
    console.log(
      `timing checks reported, not asserted: the first 1 s interval took ${first.elapsedMs} ms ` +
        `(> ${slowGuestFirstIntervalMs} ms: the emulated guest is too slow on this host now)`,
    );
    return;
  }
  times.forEach((t, p) =>
    assert.ok(
      t !== undefined && t <= 10_000,
      `phase ${p}: window not 90% on node 0 within 10 s:\n${output}`,
    )
  );
  // Pages the program wrote while setting up were hot then: when the set-up outlasted tiering's
  // first intervals (a slow guest), some are on node 0 before phase 0 starts and leave only once
  // idle for 10 s. Phase 0's cold-page figure is then reported, not asserted.
  const firstSample = samples.find((s) => s.phase === 0);
  const setUpPromoted = firstSample !== undefined && firstSample.cold_slow_pct < 90;
  if (setUpPromoted) {
    console.log(
      `phase 0 cold pages reported, not asserted: ${firstSample.cold_slow_pct}% on node 2 when ` +
        `the phase began (set-up pages promoted while the program wrote them)`,
    );
  }
  for (let p = 0; p < phases; p++) {
    // Within 10 s there is a moment when both hold: >= 90% of the window on node 0 and >= 90% of
    // the cold pages still on node 2 (DAMON's first, coarse regions can take some cold pages along
    // for an interval before they split).
    const both = samples.find((s) =>
      s.phase === p && s.t_ms <= 10_000 && s.hot_fast_pct >= 90 &&
      (s.cold_slow_pct >= 90 || (p === 0 && setUpPromoted))
    );
    assert.ok(both !== undefined, `phase ${p}: never both >= 90% within 10 s:\n${output}`);
    const end = samples.filter((s) => s.phase === p).at(-1)!;
    assert.ok(
      end.hot_fast_pct >= 90 && end.cold_slow_pct >= 90,
      `phase ${p} end: ${JSON.stringify(end)}`,
    );
  }
}

Deno.test({
  name:
    "tier keeps the hot window on node 0 within 10 s, the cold pages on node 2 and node 0 within the 128 MiB budget, through two window moves, and leaves nothing in DAMON's sysfs",
  ignore,
}, async () => {
  const r = await step("tier");
  console.log(describeRun("tier", r.output));
  assert.equal(r.rc, 0, r.output);
  assert.match(r.output, /tier rc=0/);
  assertTiered(r.output, 3);
});

Deno.test({
  name:
    "the kernel's numa_balancing=2 on the same program in the same boot (reported, not asserted)",
  ignore,
}, async () => {
  const r = await step("numa-balancing");
  assert.equal(r.rc, 0, r.output);
  console.log(describeRun("numa_balancing=2", r.output));
});

Deno.test({ name: "tier --pid tiers a running program the same way", ignore }, async () => {
  const r = await step("pid");
  console.log(describeRun("tier --pid", r.output));
  assert.match(r.output, /tier rc=0/);
  assertTiered(r.output, 2);
});

Deno.test({
  name: "refused requests print one line naming the problem, exit 2 and never start the program",
  ignore,
}, async () => {
  const r = await step("refusals");
  const want: Record<string, RegExp> = {
    "not-root": /^tier: must run as root: /,
    budget:
      /^tier: fast-node budget 4\.0 GiB is larger than the fast nodes' memory \(.* on node 0\)$/,
    offline: /^tier: --slow: invalid node "7" \(not online; online nodes: 0-3\)$/,
    "kernel-engine": /^tier: the kernel engine cannot run: no cgroup v2 hierarchy is mounted/,
    "kdamonds-exist":
      /^tier: 1 kdamond\(s\) already exist \(another DAMON user\); tiermem will not replace them/,
    "no-damon": /^tier: no DAMON sysfs interface \(\/sys\/kernel\/mm\/damon\/admin\)/,
  };
  for (const [name, line] of Object.entries(want)) {
    const m = new RegExp(`^case ${name} rc=(\\d+) started=(\\w+) line=(.*)$`, "m").exec(r.output);
    assert.ok(m !== null, `no case ${name}:\n${r.output}`);
    assert.equal(m[1], "2", `${name}: ${m[0]}`);
    assert.equal(m[2], "no", `${name}: the program started`);
    assert.match(m[3], line, name);
  }
  assert.match(r.output, /free kdamond rc=0/);
  assert.match(r.output, /free kdamond after: nr=1 contexts=0/);
});

Deno.test({
  name: "tier --cleanup removes what a tier process killed with SIGKILL left in DAMON's sysfs",
  ignore,
}, async () => {
  const r = await step("sigkill");
  assert.match(r.output, /before kill: nr_kdamonds=1 state=on/, r.output);
  assert.match(r.output, /after kill: nr_kdamonds=1 records=1/, r.output);
  assert.match(r.output, /tier: released kdamond 0 of tier process \d+/, r.output);
  assert.match(r.output, /cleanup rc=0/);
  assert.match(r.output, /after: nr_kdamonds=0\n/);
  assert.match(r.output, /after: records=0\n/);
});

Deno.test({
  name:
    "tier --engine kernel holds the 128 MiB budget within 5% and leaves no kdamond, record or cgroup; auto picks it; --pid is refused; --cleanup after SIGKILL",
  ignore,
}, async () => {
  const r = await step("kernel");
  console.log(describeRun("tier --engine kernel", r.output));
  assert.match(r.output, /tier rc=0/, r.output);
  const samples = jsonLines<Sample>(r.output, "phase");
  const intervals = jsonLines<Interval>(r.output, "interval");
  assert.ok(samples.length > 0 && intervals.length > 0, r.output);
  const peak = Math.max(...intervals.map((i) => i.fastBytes)) / 2 ** 20;
  console.log(`tier --engine kernel: memory.numa_stat peak on node 0 ${peak.toFixed(2)} MiB`);
  assert.match(r.output, /"engine":"kernel"/);
  const limit = budgetMib * 1.05;
  for (const s of samples) {
    assert.ok(
      s.proc_fast_mib <= limit,
      `node 0 held ${s.proc_fast_mib} MiB > ${limit}:\n${r.output}`,
    );
  }
  for (const i of intervals) {
    assert.ok(
      i.fastBytes <= limit * 2 ** 20,
      `memory.numa_stat: ${i.fastBytes} bytes on node 0 > ${limit} MiB:\n${r.output}`,
    );
  }
  assert.match(r.output, /after: nr_kdamonds=0\n/);
  assert.match(r.output, /after: records=0\n/);
  assert.match(r.output, /after: cgroups=0\n/);
  assert.match(r.output, /^auto: tier: engine kernel \(Linux 6\.\d+/m);
  assert.match(
    r.output,
    /^case kernel-pid rc=2 line=tier: the kernel engine cannot run: --pid: a running process's memory stays charged/m,
  );
  assert.match(r.output, /after kill: nr_kdamonds=2 cgroups=1/);
  assert.match(
    r.output,
    /tier: released kdamonds 0,1 and cgroup \/tiermem-\d+ of tier process \d+/,
  );
  assert.match(r.output, /cleanup rc=0/);
  assert.match(r.output, /cleaned: nr_kdamonds=0 records=0 cgroups=0 sleep_cgroup=\/\n/);
});
