import assert from "node:assert/strict";
import {
  parseMappingPolicy,
  parseNumaMaps,
  processNumaUsage,
  readNumaMaps,
  summarizeNumaMaps,
} from "../../lib/numa_maps.ts";
import { fakeTree } from "../support/fake_sysfs.ts";

// A process in the 4-node VM: a binary, its heap bound to node 2, an interleaved arena, a
// preferred-many one, a weighted-interleave one, a 2 MiB hugetlb page, its stack, an untouched
// mapping.
const fixture = [
  "55d0c5a00000 default file=/usr/bin/my\\040prog mapped=3 N0=3 kernelpagesize_kB=4",
  "55d0c5c00000 bind:2 heap anon=256 dirty=256 active=0 N2=256 kernelpagesize_kB=4",
  "7f0000000000 interleave:0-3 anon=1024 dirty=1024 N0=256 N1=256 N2=256 N3=256 kernelpagesize_kB=4",
  "7f1000000000 prefer (many)=static:2-3 anon=512 dirty=512 N2=300 N3=212 kernelpagesize_kB=4",
  "7f2000000000 weighted interleave:0,2 anon=400 dirty=400 N0=300 N2=100 kernelpagesize_kB=4",
  "7f3000000000 prefer:1 file=/dev/hugepages/x huge dirty=1 N1=1 kernelpagesize_kB=2048",
  "7ffc00000000 default stack anon=33 dirty=33 N0=33 kernelpagesize_kB=4",
  "7ffd00000000 default",
  "",
].join("\n");

Deno.test("policy texts become the project's policy names", () => {
  assert.deepEqual(parseMappingPolicy("bind:2"), {
    raw: "bind:2",
    mode: "bind",
    flags: [],
    nodes: "2",
  });
  assert.deepEqual(parseMappingPolicy("prefer (many)=static:2-3"), {
    raw: "prefer (many)=static:2-3",
    mode: "preferred-many",
    flags: ["static"],
    nodes: "2-3",
  });
  assert.equal(parseMappingPolicy("weighted interleave:0-3").mode, "weighted-interleave");
  assert.equal(parseMappingPolicy("prefer:1").mode, "preferred");
  assert.deepEqual(parseMappingPolicy("interleave=static|relative:0-1").flags, [
    "static",
    "relative",
  ]);
  assert.equal(parseMappingPolicy("default").nodes, "");
});

Deno.test("mappings: kind, file, policy, page size and per-node pages", () => {
  const maps = parseNumaMaps(fixture);
  assert.equal(maps.length, 8);
  assert.deepEqual(maps.map((m) => m.kind), [
    "file",
    "heap",
    "anon",
    "anon",
    "anon",
    "file",
    "stack",
    "anon",
  ]);
  assert.equal(maps[0].file, "/usr/bin/my prog");
  assert.deepEqual(maps[1].pagesPerNode, { 2: 256 });
  assert.equal(maps[1].policy.mode, "bind");
  assert.deepEqual(maps[2].pagesPerNode, { 0: 256, 1: 256, 2: 256, 3: 256 });
  assert.equal(maps[3].policy.mode, "preferred-many");
  assert.equal(maps[4].policy.nodes, "0,2");
  assert.equal(maps[5].huge, true);
  assert.equal(maps[5].pageSizeBytes, 2 * 1024 * 1024);
  assert.deepEqual(maps[7].pagesPerNode, {});
  assert.deepEqual(maps[1].counters, { anon: 256, dirty: 256, active: 0 });
});

Deno.test("summary: bytes and MiB per node, per kind", () => {
  const usage = summarizeNumaMaps(parseNumaMaps(fixture));
  const page = 4096;
  assert.deepEqual(usage.bytesPerNode, {
    0: (3 + 256 + 300 + 33) * page,
    1: 256 * page + 2 * 1024 * 1024,
    2: (256 + 256 + 300 + 100) * page,
    3: (256 + 212) * page,
  });
  assert.equal(usage.mibPerNode[1], 3);
  assert.deepEqual(usage.bytesPerNodeByKind.heap, { 2: 256 * page });
  assert.deepEqual(usage.bytesPerNodeByKind.stack, { 0: 33 * page });
  assert.equal(
    usage.totalBytes,
    Object.values(usage.bytesPerNode).reduce((a, b) => a + b, 0),
  );
  assert.equal(usage.mappings, 8);
});

Deno.test("a malformed line is a RangeError naming its line", () => {
  assert.throws(() => parseNumaMaps("7f00 default N0=1\nnot a mapping\n"), {
    name: "RangeError",
    message: /line 2 .*not a mapping/,
  });
});

Deno.test("readNumaMaps reads a fake /proc/PID/numa_maps", () => {
  using tree = fakeTree();
  tree.write("/proc/4242/numa_maps", fixture);
  assert.equal(readNumaMaps(4242, { root: tree.root }).length, 8);
  assert.equal(processNumaUsage(4242, { root: tree.root }).mibPerNode[1], 3);
});

Deno.test("readNumaMaps: no such process → RangeError naming the PID; bad PID → TypeError", () => {
  using tree = fakeTree();
  assert.throws(() => readNumaMaps(999999, { root: tree.root }), {
    name: "RangeError",
    message: "no process 999999: /proc/999999/numa_maps does not exist",
  });
  assert.throws(() => readNumaMaps(-1), { name: "TypeError", message: /got -1/ });
  assert.throws(() => readNumaMaps(1.5), { name: "TypeError", message: /got 1.5/ });
});

Deno.test("the real /proc/self/numa_maps: a 64 MiB touched buffer shows up in the summary", () => {
  const before = processNumaUsage("self").totalBytes;
  const size = 64 * 1024 * 1024;
  const buf = new Uint8Array(size);
  buf.fill(1);
  const maps = readNumaMaps("self");
  assert.ok(maps.some((m) => m.kind === "stack"));
  assert.ok(maps.some((m) => m.kind === "file" && m.file !== undefined));
  const after = processNumaUsage("self").totalBytes;
  assert.ok(after - before >= size * 0.9, `grew by ${after - before} bytes`);
  assert.equal(buf[size - 1], 1);
});
