import assert from "node:assert/strict";
import {
  formatNodeList,
  type NodeTopology,
  parseKernelNodeList,
  parseNodeList,
  readNodeTopology,
} from "../../lib/node_list.ts";

const fourNodes: NodeTopology = { online: [0, 1, 2, 3], allowed: [0, 1, 2, 3] };
/** Nodes 0-3 online, the cpuset allows only 2 and 3. */
const cpuset: NodeTopology = { online: [0, 1, 2, 3], allowed: [2, 3] };
/** Nodes 0, 2, 3 and 5 online (1 and 4 offline). */
const sparse: NodeTopology = { online: [0, 2, 3, 5], allowed: [0, 2, 3, 5] };

function throwsWith(
  spec: string,
  topology: NodeTopology,
  kind: typeof TypeError | typeof RangeError,
  message: string,
): void {
  assert.throws(() => parseNodeList(spec, topology), (e: unknown) => {
    assert.ok(e instanceof kind, `expected ${kind.name}, got ${String(e)}`);
    assert.equal(e.message, message);
    return true;
  });
}

Deno.test("a single node selects that node", () => {
  assert.deepEqual(parseNodeList("2", fourNodes), [2]);
});

Deno.test("a range selects every node from start to end", () => {
  assert.deepEqual(parseNodeList("0-3", fourNodes), [0, 1, 2, 3]);
  assert.deepEqual(parseNodeList("1-1", fourNodes), [1]);
});

Deno.test("comma lists and ranges combine, sorted without duplicates", () => {
  assert.deepEqual(parseNodeList("0,2", fourNodes), [0, 2]);
  assert.deepEqual(parseNodeList("3,1-2,1", fourNodes), [1, 2, 3]);
  assert.deepEqual(
    parseNodeList("1-2,5", { online: [0, 1, 2, 3, 4, 5], allowed: [0, 1, 2, 3, 4, 5] }),
    [1, 2, 5],
  );
});

Deno.test("leading zeros are plain decimal", () => {
  assert.deepEqual(parseNodeList("02", fourNodes), [2]);
});

Deno.test("all selects every online allowed node", () => {
  assert.deepEqual(parseNodeList("all", fourNodes), [0, 1, 2, 3]);
  assert.deepEqual(parseNodeList("all", cpuset), [2, 3]);
  assert.deepEqual(parseNodeList("all", sparse), [0, 2, 3, 5]);
});

Deno.test("! inverts the list within the allowed nodes", () => {
  assert.deepEqual(parseNodeList("!0", fourNodes), [1, 2, 3]);
  assert.deepEqual(parseNodeList("!1-2", fourNodes), [0, 3]);
  assert.deepEqual(parseNodeList("!2", cpuset), [3]);
});

Deno.test("+ numbers index the allowed nodes", () => {
  assert.deepEqual(parseNodeList("+0", cpuset), [2]);
  assert.deepEqual(parseNodeList("+0-1", cpuset), [2, 3]);
  assert.deepEqual(parseNodeList("+1,3", sparse), [2, 5]);
  assert.deepEqual(parseNodeList("!+0", cpuset), [3]);
  assert.deepEqual(parseNodeList("+all", cpuset), [2, 3]);
});

Deno.test("a range over offline nodes skips them, as numactl does", () => {
  assert.deepEqual(parseNodeList("0-5", sparse), [0, 2, 3, 5]);
  assert.deepEqual(parseNodeList("2-3", sparse), [2, 3]);
});

Deno.test("a node that is not online is a RangeError naming it and the online nodes", () => {
  throwsWith("9", fourNodes, RangeError, `invalid node "9" (not online; online nodes: 0-3)`);
  throwsWith("0,4", fourNodes, RangeError, `invalid node "4" (not online; online nodes: 0-3)`);
  throwsWith("0-4", fourNodes, RangeError, `invalid node "4" (not online; online nodes: 0-3)`);
  throwsWith("1", sparse, RangeError, `invalid node "1" (not online; online nodes: 0,2-3,5)`);
  throwsWith("!7", fourNodes, RangeError, `invalid node "7" (not online; online nodes: 0-3)`);
});

Deno.test("an online node outside Mems_allowed is a RangeError naming the allowed nodes", () => {
  throwsWith("0", cpuset, RangeError, `invalid node "0" (not in this process's Mems_allowed: 2-3)`);
});

Deno.test("a relative index past the allowed nodes is a RangeError", () => {
  throwsWith("+2", cpuset, RangeError, `invalid relative node "+2" (2 usable nodes: +0 to +1)`);
});

Deno.test("a list that selects nothing is a RangeError", () => {
  throwsWith("!all", fourNodes, RangeError, `node list "!all" selects no node`);
  throwsWith("!0", { online: [0], allowed: [0] }, RangeError, `node list "!0" selects no node`);
});

Deno.test("text that is not a node list is a TypeError naming the token", () => {
  throwsWith("", fourNodes, TypeError, `invalid node list "" (empty)`);
  throwsWith("x", fourNodes, TypeError, `invalid node "x" (not a number)`);
  throwsWith("0,abc", fourNodes, TypeError, `invalid node "abc" (not a number)`);
  throwsWith(" 1", fourNodes, TypeError, `invalid node " 1" (not a number)`);
  throwsWith("-1", fourNodes, TypeError, `invalid node range "-1" (needs START-END)`);
  throwsWith("1-", fourNodes, TypeError, `invalid node range "1-" (needs START-END)`);
  throwsWith("1-2-3", fourNodes, TypeError, `invalid node "2-3" (not a number)`);
  throwsWith("3-1", fourNodes, TypeError, `invalid node range "3-1" (start above end)`);
  throwsWith("0,,1", fourNodes, TypeError, `invalid node list "0,,1" (empty element)`);
  throwsWith("1,", fourNodes, TypeError, `invalid node list "1," (empty element)`);
  throwsWith("!", fourNodes, TypeError, `invalid node list "!" (no node after "!")`);
  throwsWith("+", fourNodes, TypeError, `invalid node list "+" (no node after "+")`);
  throwsWith("all,1", fourNodes, TypeError, `invalid node "all" (not a number)`);
  throwsWith("1.5", fourNodes, TypeError, `invalid node "1.5" (not a number)`);
});

Deno.test("kernel lists parse ranges and tolerate a trailing newline", () => {
  assert.deepEqual(parseKernelNodeList("0\n"), [0]);
  assert.deepEqual(parseKernelNodeList("0-3,8,10-11\n"), [0, 1, 2, 3, 8, 10, 11]);
  assert.deepEqual(parseKernelNodeList(""), []);
  assert.throws(() => parseKernelNodeList("0-x"), {
    name: "TypeError",
    message: `invalid kernel node list "0-x" (element "0-x")`,
  });
});

Deno.test("formatNodeList collapses runs into ranges", () => {
  assert.deepEqual(formatNodeList([3, 0, 1, 2, 5, 7, 8]), "0-3,5,7-8");
  assert.deepEqual(formatNodeList([4]), "4");
  assert.deepEqual(formatNodeList([]), "none");
});

Deno.test("readNodeTopology reads online nodes and Mems_allowed_list from the given files", () => {
  const dir = Deno.makeTempDirSync();
  try {
    Deno.writeTextFileSync(`${dir}/online`, "0-3\n");
    Deno.writeTextFileSync(
      `${dir}/status`,
      "Name:\tx\nMems_allowed:\t0000000c\nMems_allowed_list:\t2-3\nvoluntary_ctxt_switches:\t1\n",
    );
    assert.deepEqual(
      readNodeTopology({ online: `${dir}/online`, status: `${dir}/status` }),
      cpuset,
    );
    // No NUMA in sysfs: one node, 0; no Mems_allowed_list: every online node.
    assert.deepEqual(
      readNodeTopology({ online: `${dir}/missing`, status: `${dir}/missing` }),
      { online: [0], allowed: [0] },
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("readNodeTopology on this machine includes node 0 in both sets", () => {
  const topology = readNodeTopology();
  assert.deepEqual(topology.online.includes(0), true);
  assert.deepEqual(topology.allowed.includes(0), true);
});
