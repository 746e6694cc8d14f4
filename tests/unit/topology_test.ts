import assert from "node:assert/strict";
import {
  currentNode,
  highestBandwidthNodes,
  highestCapacityNodes,
  lowerTierNodes,
  lowestLatencyNodes,
  nodeDistance,
  readMemoryTiers,
  readTopology,
  sysfsReader,
  topTierNodes,
} from "../../lib/topology.ts";
import { fakeOneNode, fakeTree, fakeVm } from "../support/fake_sysfs.ts";

Deno.test("sysfsReader rejects an empty root", () => {
  assert.throws(() => sysfsReader(""), { name: "TypeError", message: /root/ });
});

Deno.test("4-node VM: nodes, CPUs, memory and CPU-less nodes", () => {
  using tree = fakeVm();
  const t = readTopology({ root: tree.root });
  assert.deepEqual(t.possible, [0, 1, 2, 3]);
  assert.deepEqual(t.online, [0, 1, 2, 3]);
  assert.deepEqual(t.nodes.map((n) => n.cpus), [[0], [1], [], []]);
  assert.deepEqual(t.cpuLessNodes, [2, 3]);
  assert.equal(t.nodes[0].memTotalBytes, 1030716 * 1024);
  assert.equal(t.nodes[3].memFreeBytes, 1020552 * 1024);
  assert.equal(t.nodes[2].hasCpu, false);
  assert.equal(t.nodes[2].hasMemory, true);
});

Deno.test("4-node VM: nodes 2-3 are in the lower tier", () => {
  using tree = fakeVm();
  const t = readTopology({ root: tree.root });
  assert.deepEqual(t.tiers, [{ id: 4, nodes: [0, 1] }, { id: 54, nodes: [2, 3] }]);
  assert.deepEqual(t.nodes.map((n) => n.tier), [4, 4, 54, 54]);
  assert.deepEqual(lowerTierNodes(t), [2, 3]);
  assert.deepEqual(topTierNodes(t), [0, 1]);
  assert.deepEqual(readMemoryTiers(sysfsReader(tree.root)), t.tiers);
});

Deno.test("4-node VM: SLIT distance matrix", () => {
  using tree = fakeVm();
  const t = readTopology({ root: tree.root });
  assert.deepEqual(t.nodes.map((n) => n.distances), [
    [10, 21, 30, 40],
    [21, 10, 40, 30],
    [30, 40, 10, 21],
    [40, 30, 21, 10],
  ]);
  assert.equal(nodeDistance(t, 0, 3), 40);
  assert.equal(nodeDistance(t, 3, 2), 21);
  assert.equal(nodeDistance(t, 0, 7), undefined);
});

Deno.test("4-node VM: HMAT access classes with their initiators", () => {
  using tree = fakeVm();
  const t = readTopology({ root: tree.root });
  assert.deepEqual(t.nodes[2].access0, {
    initiators: [0],
    readBandwidthMBps: 5120,
    writeBandwidthMBps: 5120,
    readLatencyNs: 300,
    writeLatencyNs: 300,
  });
  assert.deepEqual(t.nodes[3].access1?.initiators, [1]);
  assert.equal(t.nodes[0].access1?.readBandwidthMBps, 20480);
  assert.equal(t.nodes[1].access0?.readLatencyNs, 100);
});

Deno.test("memspaces: highest capacity orders memory nodes by size", () => {
  using tree = fakeVm();
  const t = readTopology({ root: tree.root });
  assert.deepEqual(highestCapacityNodes(t), [0, 3, 2, 1]);
});

Deno.test("memspaces: highest bandwidth and lowest latency are local DRAM", () => {
  using tree = fakeVm();
  const t = readTopology({ root: tree.root });
  assert.deepEqual(highestBandwidthNodes(t, { initiator: 0 }), [0]);
  assert.deepEqual(highestBandwidthNodes(t, { initiator: 1 }), [1]);
  assert.deepEqual(lowestLatencyNodes(t, { initiator: 1 }), [1]);
  // The fake /proc/self/stat says CPU 1, on node 1.
  const reader = sysfsReader(tree.root);
  assert.equal(currentNode(t, reader), 1);
  assert.deepEqual(lowestLatencyNodes(t, { reader }), [1]);
});

Deno.test("memspaces: a CPU-less initiator without HMAT falls back to SLIT distance", () => {
  using tree = fakeVm();
  const t = readTopology({ root: tree.root });
  assert.deepEqual(highestBandwidthNodes(t, { initiator: 2 }), [2]);
  assert.throws(() => lowestLatencyNodes(t, { initiator: 9 }), {
    name: "RangeError",
    message: /initiator node 9 is not online \(online: 0-3\)/,
  });
});

Deno.test("one-node machine: one node, one tier, no HMAT, no lower tier", () => {
  using tree = fakeOneNode();
  const t = readTopology({ root: tree.root });
  assert.equal(t.nodes.length, 1);
  assert.deepEqual(t.nodes[0].cpus, [0, 1]);
  assert.equal(t.nodes[0].access0, undefined);
  assert.deepEqual(t.cpuLessNodes, []);
  assert.deepEqual(t.tiers, [{ id: 4, nodes: [0] }]);
  assert.deepEqual(lowerTierNodes(t), []);
  assert.deepEqual(highestBandwidthNodes(t, { initiator: 0 }), [0]);
  assert.deepEqual(lowestLatencyNodes(t, { reader: sysfsReader(tree.root) }), [0]);
});

Deno.test("no NUMA sysfs: an empty topology, not an error", () => {
  using tree = fakeTree();
  const t = readTopology({ root: tree.root });
  assert.deepEqual(t, { possible: [], online: [], nodes: [], tiers: [], cpuLessNodes: [] });
  assert.throws(() => currentNode(t, sysfsReader(tree.root)), RangeError);
});

Deno.test("the real machine: every online node is read with CPUs and memory", () => {
  const t = readTopology();
  assert.ok(t.nodes.length >= 1);
  assert.ok(t.nodes.some((n) => n.cpus.length > 0));
  assert.ok(t.nodes.every((n) => n.distances.length === t.nodes.length));
  assert.ok(t.online.includes(currentNode(t)));
});
