/**
 * lib/pool.ts: pools with explicit policies. On this one-node machine every policy names node
 * 0; placement on several nodes is proven in the VM (tests/vm/vm_deno_test.ts).
 */

import assert from "node:assert/strict";
import { hfree, hmmap, hmunmap, hrealloc, isHmallocBuffer } from "../../lib/buffers.ts";
import { defaultPool, livePoolCount, policyString, Pool, type PoolPolicy } from "../../lib/pool.ts";
import { residency } from "../../lib/residency.ts";

Deno.test("policyString spells every option in HMALLOC_POLICY syntax", () => {
  const cases: [PoolPolicy, string][] = [
    [{}, "default"],
    [{ bind: [2] }, "bind:2"],
    [{ bind: "0-1" }, "bind:0-1"],
    [{ preferred: 1 }, "preferred:1"],
    [{ preferredMany: [2, 3] }, "preferred-many:2,3"],
    [{ interleave: "0-3" }, "interleave:0-3"],
    [{ interleave: [0, 1, 2, 3] }, "interleave:0,1,2,3"],
    [{ weighted: { 0: 3, 2: 1 } }, "weighted-interleave:0=3,2=1"],
    [{ weighted: "0-3" }, "weighted-interleave:0-3"],
    [{ bind: undefined }, "default"],
  ];
  for (const [policy, want] of cases) assert.equal(policyString(policy), want);
});

Deno.test("a malformed policy object is a TypeError naming the problem", () => {
  const cases: [unknown, RegExp][] = [
    [{ bind: [0], interleave: [1] }, /one policy at a time, got bind and interleave/],
    [{ membind: [0] }, /unknown policy key "membind"/],
    [{ bind: [] }, /bind is an empty node list/],
    [{ bind: "" }, /bind is an empty node list/],
    [{ bind: [0, -1] }, /bind has -1, not a node number/],
    [{ bind: [1.5] }, /bind has 1.5/],
    [{ bind: 2 }, /bind must be an array of node numbers or a node-list string/],
    [{ preferred: [1] }, /preferred is 1, not a node/],
    [{ weighted: { 0: 0 } }, /weight 0 of node 0 is not an integer ≥ 1/],
    [{ weighted: {} }, /weighted has no node/],
    [null, /must be an object/],
  ];
  for (const [policy, message] of cases) {
    assert.throws(() => policyString(policy as PoolPolicy), { name: "TypeError", message });
    assert.throws(() => new Pool(policy as PoolPolicy), { name: "TypeError", message });
  }
});

Deno.test("a node that is not online is a RangeError with the library's message naming it", () => {
  assert.throws(() => new Pool({ bind: [9] }), {
    name: "RangeError",
    message: `Pool: invalid policy "bind:9": node 9 is not online`,
  });
  assert.throws(() => new Pool({ interleave: "0,7" }), { name: "RangeError", message: /7/ });
});

Deno.test("a bad token in a node-list string is a TypeError naming the token", () => {
  assert.throws(() => new Pool({ interleave: "0-x" }), {
    name: "TypeError",
    message: `Pool: invalid policy "interleave:0-x": bad token "x"`,
  });
});

Deno.test("a policy string with a NUL inside is a TypeError naming it whole, not its prefix", () => {
  const cases: [PoolPolicy, string][] = [
    [{ bind: "0\u0000garbage" }, "bind:0\u0000garbage"],
    [{ interleave: "0\u0000" }, "interleave:0\u0000"],
    [{ weighted: "\u00000" }, "weighted-interleave:\u00000"],
  ];
  const before = livePoolCount();
  for (const [policy, spec] of cases) {
    const nul = spec.indexOf("\0");
    assert.throws(() => new Pool(policy), {
      name: "TypeError",
      message: `Pool: policy ${JSON.stringify(spec)} has a NUL character at index ${nul} ` +
        `(C would read only ${JSON.stringify(spec.slice(0, nul))})`,
    });
  }
  assert.equal(livePoolCount(), before, "no pool was made");
});

Deno.test("every policy mode makes a pool on node 0, reporting its policy", () => {
  const cases: [PoolPolicy, string][] = [
    [{}, "default"],
    [{ bind: [0] }, "bind:0"],
    [{ preferred: 0 }, "preferred:0"],
    [{ preferredMany: [0] }, "preferred-many:0"],
    [{ interleave: "0" }, "interleave:0"],
    [{ weighted: { 0: 2 } }, "weighted-interleave:0=2"],
  ];
  for (const [policy, want] of cases) {
    using pool = new Pool(policy);
    assert.equal(pool.policy, want);
    assert.equal(pool.isDefault, false);
    const buf = pool.hmalloc(1 << 20);
    new Uint8Array(buf).fill(1);
    hfree(buf);
  }
});

Deno.test("Pool({ bind: [0] }): every page of its buffers is on node 0", () => {
  using pool = new Pool({ bind: [0] });
  const bufs = [
    pool.hmalloc(4 << 20),
    pool.hmalloc(100_000),
    pool.hcalloc(1000, 64),
    pool.halignedAlloc(1 << 16, 1 << 20),
    pool.hmmap(2 << 20),
  ];
  for (const buf of bufs) {
    new Uint8Array(buf).fill(7);
    const r = residency(buf);
    assert.equal(r.notPresent, 0);
    assert.equal(r.pagesPerNode[0], r.pages, `${buf.byteLength} bytes: ${JSON.stringify(r)}`);
  }
  assert.ok(pool.mbindCalls >= 1);
  assert.ok(pool.mappedBytes >= 4 << 20);
  hmunmap(bufs.pop() as ArrayBuffer);
  for (const buf of bufs) hfree(buf);
  assert.equal(pool.liveBlocks, 0);
});

Deno.test("destroy detaches every live buffer of the pool, and only of that pool", () => {
  const pool = new Pool({ bind: [0] });
  const other = new Pool({ bind: [0] });
  const block = pool.hmalloc(64);
  const view = new Uint8Array(block);
  const big = pool.hcalloc(1, 8 << 20);
  const managed = pool.hmallocManaged(32);
  const mapping = pool.hmmap(4096);
  const survivor = other.hmalloc(64);
  new Uint8Array(survivor).fill(3);
  assert.equal(pool.liveBlocks, 3);
  const before = livePoolCount();
  pool.destroy();
  assert.equal(livePoolCount(), before - 1);
  assert.equal(pool.destroyed, true);
  for (const buf of [block, big, managed, mapping]) {
    assert.equal(buf.detached, true);
    assert.equal(isHmallocBuffer(buf), false);
    assert.throws(() => hfree(buf), { name: "TypeError", message: /detached/ });
  }
  assert.equal(view.length, 0);
  assert.equal(new Uint8Array(survivor)[63], 3);
  pool.destroy(); // idempotent
  assert.throws(() => pool.hmalloc(8), { name: "TypeError", message: /destroyed/ });
  assert.throws(() => pool.hmmap(4096), { name: "TypeError", message: /destroyed/ });
  assert.throws(() => pool.policy, { name: "TypeError", message: /destroyed/ });
  hfree(survivor);
  other.destroy();
});

Deno.test("destroy detaches exactly the blocks still live after frees in any order", () => {
  const pool = new Pool({ bind: [0] });
  const blocks = Array.from({ length: 500 }, (_, i: number) => pool.hmalloc(16 + (i % 50)));
  const freed = new Set<number>();
  for (let i = 0; i < 500; i += 1 + (i % 3)) {
    const j = (i * 7919) % 500;
    if (freed.has(j)) continue;
    hfree(blocks[j]);
    freed.add(j);
  }
  assert.equal(pool.liveBlocks, 500 - freed.size);
  blocks.forEach((buf: ArrayBuffer, i: number) => assert.equal(buf.detached, freed.has(i)));
  pool.destroy();
  blocks.forEach((buf: ArrayBuffer) => assert.equal(buf.detached, true));
  assert.equal(pool.liveBlocks, 0);
});

Deno.test("using disposes the pool at the end of its scope", () => {
  let buf: ArrayBuffer;
  let outer: Pool;
  {
    using pool = new Pool({ bind: [0] });
    outer = pool;
    buf = pool.hmalloc(1000);
  }
  assert.equal(outer.destroyed, true);
  assert.equal(buf.detached, true);
});

Deno.test("hfree and hrealloc take any pool's block; hrealloc keeps the block's pool", () => {
  using a = new Pool({ bind: [0] });
  using b = new Pool({ interleave: [0] });
  const x = a.hmalloc(10);
  new Uint8Array(x).set([1, 2, 3]);
  const y = b.hmalloc(10);
  const x2 = hrealloc(x, 1 << 20);
  assert.equal(a.liveBlocks, 1);
  assert.equal(b.liveBlocks, 1);
  assert.deepEqual([...new Uint8Array(x2, 0, 3)], [1, 2, 3]);
  hfree(y);
  assert.equal(b.liveBlocks, 0);
  hfree(x2);
  assert.equal(a.liveBlocks, 0);
});

Deno.test("defaultPool: one object, the environment's policy, cannot be destroyed", () => {
  const pool = defaultPool();
  assert.equal(defaultPool(), pool);
  assert.equal(pool.isDefault, true);
  assert.equal(pool.policy, Deno.env.get("HMALLOC_POLICY") ?? "default");
  const buf = pool.hmalloc(64);
  const mapped = pool.hmmap(4096);
  assert.throws(() => pool.destroy(), { name: "TypeError", message: /default pool/ });
  assert.equal(buf.byteLength, 64);
  hfree(buf);
  hmunmap(mapped);
  const plain = hmmap(4096);
  hmunmap(plain);
});

Deno.test("pool slots are reused: 200 pools created and destroyed in turn", () => {
  const before = livePoolCount();
  for (let i = 0; i < 200; i++) {
    using pool = new Pool(i % 2 === 0 ? { bind: [0] } : { interleave: "all" });
    new Uint8Array(pool.hmalloc(4096)).fill(i & 0xff);
  }
  assert.equal(livePoolCount(), before);
});
