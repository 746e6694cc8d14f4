import assert from "node:assert/strict";
import {
  runTopologyView,
  runUsageView,
  type TopologyJson,
  type UsageJson,
  type ViewOptions,
} from "../../cli/views.ts";
import { fakeTree, fakeVm } from "../support/fake_sysfs.ts";

/** Runs a view with captured stdout/stderr. */
async function capture(
  view: (args: string[], options?: ViewOptions) => Promise<number>,
  args: string[],
  options: ViewOptions = {},
): Promise<{ status: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const status = await view(args, {
    isTerminal: false,
    env: () => undefined,
    ...options,
    write: (text) => out += text,
    writeError: (text) => err += text,
  });
  return { status, out, err };
}

const esc = "\x1b[";

Deno.test("topology --json on the 4-node VM: schema, CPU-less lower tier, memspaces", async () => {
  using tree = fakeVm();
  const { status, out } = await capture(runTopologyView, ["--json"], { root: tree.root });
  assert.equal(status, 0);
  const json = JSON.parse(out) as TopologyJson;
  assert.deepEqual(Object.keys(json).sort(), [
    "cpuLessNodes",
    "memspaces",
    "nodes",
    "online",
    "possible",
    "tiers",
  ]);
  assert.deepEqual(json.cpuLessNodes, [2, 3]);
  assert.deepEqual(json.tiers, [{ id: 4, nodes: [0, 1] }, { id: 54, nodes: [2, 3] }]);
  assert.deepEqual(Object.keys(json.nodes[2]).sort(), [
    "access0",
    "access1",
    "cpus",
    "distances",
    "hasCpu",
    "hasMemory",
    "id",
    "memFreeBytes",
    "memTotalBytes",
    "tier",
  ]);
  assert.deepEqual(json.nodes[3].distances, [40, 30, 21, 10]);
  assert.equal(json.nodes[2].access1?.readLatencyNs, 300);
  assert.deepEqual(json.memspaces, {
    initiator: 1,
    highestCapacity: [0, 3, 2, 1],
    highestBandwidth: [1],
    lowestLatency: [1],
  });
});

Deno.test("topology text on the 4-node VM: nodes, bars, tiers, HMAT, distances; no colour piped", async () => {
  using tree = fakeVm();
  const { status, out } = await capture(runTopologyView, [], { root: tree.root });
  assert.equal(status, 0);
  assert.ok(!out.includes(esc), "no ANSI escapes when stdout is not a terminal");
  const lines = out.split("\n");
  assert.equal(lines[0], "NUMA topology: 4 node(s) online (0-3; possible 0-3)");
  assert.match(out, /^ {3}2 {2}none {2}54 {5}970\.5 MiB {2}955\.6 MiB {2}░+ 2% used$/m);
  assert.match(out, /^ {3}0 {2}0 {5}4 {5}1006\.6 MiB {2}982\.2 MiB {2}█░+ 2% used$/m);
  assert.ok(lines.includes("CPU-less memory nodes: 2-3"));
  assert.ok(lines.includes("  memory_tier4: nodes 0-1  top tier"));
  assert.ok(lines.includes("  memory_tier54: nodes 2-3  lowest tier"));
  assert.ok(lines.includes("     2  0                5120        5120      300       300"));
  assert.ok(lines.includes("  3  40  30  21  10"));
  assert.ok(lines.includes("  highest capacity:  0,3,2,1"));
  // The largest node's bar is the full width; the others are shorter.
  const barOf = (node: string): number =>
    (lines.find((l) => l.startsWith(`   ${node}  `)) ?? "").replace(/[^█░]/g, "").length;
  assert.equal(barOf("0"), 30);
  assert.ok(barOf("1") < 30);
});

Deno.test("colour: on a terminal, off under NO_COLOR, on when NO_COLOR is empty", async () => {
  using tree = fakeVm();
  const tty = await capture(runTopologyView, [], { root: tree.root, isTerminal: true });
  assert.ok(tty.out.includes(`${esc}1m`));
  const noColor = await capture(runTopologyView, [], {
    root: tree.root,
    isTerminal: true,
    env: (name) => name === "NO_COLOR" ? "1" : undefined,
  });
  assert.ok(!noColor.out.includes(esc));
  assert.equal(noColor.out, (await capture(runTopologyView, [], { root: tree.root })).out);
  const empty = await capture(runTopologyView, [], {
    root: tree.root,
    isTerminal: true,
    env: (name) => name === "NO_COLOR" ? "" : undefined,
  });
  assert.ok(empty.out.includes(esc));
  const usage = await capture(runUsageView, [`${Deno.pid}`], {
    isTerminal: true,
    env: (name) => name === "NO_COLOR" ? "1" : undefined,
  });
  assert.ok(!usage.out.includes(esc));
});

Deno.test("topology: usage errors exit 2 naming the argument; --help exits 0", async () => {
  const bad = await capture(runTopologyView, ["--jsn"]);
  assert.deepEqual(bad, {
    status: 2,
    out: "",
    err: "topology: unknown option --jsn\nUsage: cli.ts topology [--json]\n",
  });
  const extra = await capture(runTopologyView, ["3"]);
  assert.equal(extra.status, 2);
  assert.match(extra.err, /^topology: unexpected argument 3\n/);
  const help = await capture(runTopologyView, ["--help"]);
  assert.equal(help.status, 0);
  assert.match(help.out, /^Usage: cli\.ts topology \[--json\]/);
});

Deno.test("topology without NUMA sysfs: says so, and --json has no memspaces", async () => {
  using tree = fakeTree();
  const text = await capture(runTopologyView, [], { root: tree.root });
  assert.equal(text.out, "NUMA topology: no node visible (no /sys/devices/system/node)\n");
  const json = await capture(runTopologyView, ["--json"], { root: tree.root });
  assert.deepEqual(JSON.parse(json.out), {
    possible: [],
    online: [],
    nodes: [],
    tiers: [],
    cpuLessNodes: [],
  });
});

const vmProcess = [
  "55d0c5a00000 default file=/usr/bin/prog mapped=256 N0=256 kernelpagesize_kB=4",
  "55d0c5c00000 bind:2 heap anon=768 dirty=768 N2=768 kernelpagesize_kB=4",
  "7f0000000000 interleave:0-3 anon=1024 dirty=1024 N0=256 N1=256 N2=256 N3=256 kernelpagesize_kB=4",
  "7ffc00000000 default stack anon=256 dirty=256 N1=256 kernelpagesize_kB=4",
  "",
].join("\n");

Deno.test("usage PID --json: per-node bytes/MiB by kind, every online node listed", async () => {
  using tree = fakeVm();
  tree.write("/proc/4242/numa_maps", vmProcess);
  tree.write("/proc/4242/comm", "prog\n");
  const { status, out } = await capture(runUsageView, ["4242", "--json"], { root: tree.root });
  assert.equal(status, 0);
  const json = JSON.parse(out) as UsageJson;
  const MiB = 1024 * 1024;
  assert.deepEqual(json, {
    pid: 4242,
    command: "prog",
    totalBytes: 9 * MiB,
    mappings: 4,
    nodes: [
      { node: 0, bytes: 2 * MiB, mib: 2, byKind: { anon: MiB, heap: 0, stack: 0, file: MiB } },
      { node: 1, bytes: 2 * MiB, mib: 2, byKind: { anon: MiB, heap: 0, stack: MiB, file: 0 } },
      { node: 2, bytes: 4 * MiB, mib: 4, byKind: { anon: MiB, heap: 3 * MiB, stack: 0, file: 0 } },
      { node: 3, bytes: MiB, mib: 1, byKind: { anon: MiB, heap: 0, stack: 0, file: 0 } },
    ],
  });
});

Deno.test("usage PID text: one line per node with MiB columns and a share bar", async () => {
  using tree = fakeVm();
  tree.write("/proc/4242/numa_maps", vmProcess);
  tree.write("/proc/4242/comm", "prog\n");
  const { status, out } = await capture(runUsageView, ["4242"], { root: tree.root });
  assert.equal(status, 0);
  const lines = out.split("\n");
  assert.equal(lines[0], "process 4242 (prog): 9.0 MiB present on 4 node(s), 4 mappings");
  assert.equal(lines[2], "node  MiB  anon MiB  heap MiB  stack MiB  file MiB  share");
  assert.equal(
    lines[5],
    `   2  4.0       1.0       3.0        0.0       0.0  ${"█".repeat(13)}${"░".repeat(17)} 44%`,
  );
  assert.equal(
    lines[6],
    `   3  1.0       1.0       0.0        0.0       0.0  ${"█".repeat(3)}${"░".repeat(27)} 11%`,
  );
});

Deno.test("usage: missing/bad PID exit 2, a vanished process exits 1 naming it", async () => {
  using tree = fakeVm();
  assert.deepEqual(await capture(runUsageView, [], { root: tree.root }), {
    status: 2,
    out: "",
    err: "usage: missing PID\nUsage: cli.ts usage PID [--json | --heat]\n",
  });
  const bad = await capture(runUsageView, ["12ab"], { root: tree.root });
  assert.equal(bad.status, 2);
  assert.match(bad.err, /^usage: PID must be a positive integer, got 12ab\n/);
  assert.equal((await capture(runUsageView, ["1", "2"], { root: tree.root })).status, 2);
  assert.equal((await capture(runUsageView, ["1", "--bars"], { root: tree.root })).status, 2);
  assert.deepEqual(await capture(runUsageView, ["999999"], { root: tree.root }), {
    status: 1,
    out: "",
    err: "usage: no process 999999: /proc/999999/numa_maps does not exist\n",
  });
  assert.equal((await capture(runUsageView, ["--help"])).status, 0);
});

Deno.test("usage of this very process: its pages are on an online node", async () => {
  const { status, out } = await capture(runUsageView, [`${Deno.pid}`, "--json"]);
  assert.equal(status, 0);
  const json = JSON.parse(out) as UsageJson;
  assert.equal(json.pid, Deno.pid);
  assert.ok(json.totalBytes > 1024 * 1024);
  assert.ok(json.nodes.some((n) => n.bytes > 0));
});
