/**
 * lib/residency.ts: per-buffer page counts (move_pages query) and migration, on node 0 here;
 * several nodes in tests/vm/vm_deno_test.ts.
 */

import assert from "node:assert/strict";
import { hfree, hmalloc, hmmap, hmunmap } from "../../lib/buffers.ts";
import { Pool } from "../../lib/pool.ts";
import { migrate, residency } from "../../lib/residency.ts";
import { parseKernelNodeList } from "../../lib/node_list.ts";

const mib = 1 << 20;
const pageBytes = 4096;
const possible: number[] = parseKernelNodeList(
  Deno.readTextFileSync("/sys/devices/system/node/possible"),
);

Deno.test("a fresh 4 MiB buffer: not present before writing, all on node 0 after", () => {
  using pool = new Pool({ bind: [0] });
  const buf = pool.hmalloc(4 * mib);
  const before = residency(buf);
  assert.equal(before.pages, (4 * mib) / pageBytes);
  assert.equal(before.notPresent, before.pages);
  assert.ok(before.pagesPerNode.every((n: number) => n === 0));
  new Uint8Array(buf).fill(1);
  const after = residency(buf);
  assert.equal(after.notPresent, 0);
  assert.equal(after.pagesPerNode[0], (4 * mib) / pageBytes);
  hfree(buf);
});

Deno.test("residency has one count per possible node and pages = counts + notPresent", () => {
  const buf = hmmap(3 * mib);
  new Uint8Array(buf, 0, mib).fill(1);
  const r = residency(buf);
  assert.equal(r.pagesPerNode.length, Math.max(...possible) + 1);
  assert.equal(r.pages, r.pagesPerNode.reduce((a: number, b: number) => a + b, r.notPresent));
  assert.equal(r.pages, (3 * mib) / pageBytes);
  assert.equal(r.notPresent, (2 * mib) / pageBytes);
  hmunmap(buf);
});

Deno.test("residency takes typed arrays, plain ArrayBuffers and raw ranges", () => {
  const buf = hmmap(8 * pageBytes);
  new Uint8Array(buf).fill(2);
  const view = new Uint8Array(buf, 2 * pageBytes, 3 * pageBytes);
  assert.equal(residency(view).pages, 3);
  assert.equal(residency(view).pagesPerNode[0], 3);
  const straddling = new Uint8Array(buf, pageBytes - 1, 2);
  assert.equal(residency(straddling).pages, 2, "a 2-byte view across a page boundary");
  const address = Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf));
  assert.equal(residency({ address, length: 8 * pageBytes }).pagesPerNode[0], 8);
  const plain = new Uint8Array(1 * mib).fill(1);
  const r = residency(plain);
  assert.ok(r.pagesPerNode[0] >= mib / pageBytes, JSON.stringify(r));
  assert.deepEqual(residency(new ArrayBuffer(0)), {
    pagesPerNode: r.pagesPerNode.map(() => 0),
    notPresent: 0,
    pages: 0,
  });
  hmunmap(buf);
});

Deno.test("residency of a freed buffer or a non-range is a TypeError", () => {
  const buf = hmalloc(64);
  hfree(buf);
  assert.throws(() => residency(buf), { name: "TypeError", message: /detached/ });
  assert.throws(() => residency(42 as unknown as ArrayBuffer), {
    name: "TypeError",
    message: /expected an ArrayBuffer, a typed array or \{ address, length \}, got number/,
  });
  assert.throws(() => residency({ address: 4096n, length: -1 }), RangeError);
});

Deno.test("migrate to node 0 keeps the contents and moves every present page", () => {
  const buf = hmalloc(4 * mib);
  const bytes = new Uint8Array(buf);
  for (let i = 0; i < bytes.length; i += 997) bytes[i] = i % 251;
  assert.deepEqual(migrate(buf, 0), { notMoved: 0 });
  assert.deepEqual(migrate(buf, [0]), { notMoved: 0 });
  assert.deepEqual(migrate(new Uint8Array(buf, 4096, 8192), "all"), { notMoved: 0 });
  for (let i = 0; i < bytes.length; i += 997) assert.equal(bytes[i], i % 251, `byte ${i}`);
  const r = residency(buf);
  assert.equal(r.pagesPerNode[0], r.pages - r.notPresent);
  hfree(buf);
});

Deno.test("migrate names a bad node list: TypeError for syntax, RangeError for absent nodes", () => {
  const buf = hmalloc(4096);
  assert.throws(() => migrate(buf, "0-x"), {
    name: "TypeError",
    message: /migrate: invalid node "x"/,
  });
  assert.throws(() => migrate(buf, [9]), {
    name: "RangeError",
    message: /migrate: invalid node "9" \(not online/,
  });
  assert.throws(() => migrate(buf, []), TypeError);
  assert.throws(() => migrate(buf, [-1]), { name: "TypeError", message: /-1 is not a node/ });
  assert.throws(() => migrate(buf, "0\u0000garbage"), {
    name: "TypeError",
    message:
      `migrate: nodes "0\\u0000garbage" has a NUL character at index 1 (C would read only "0")`,
  });
  hfree(buf);
  assert.throws(() => migrate(buf, 0), { name: "TypeError", message: /detached/ });
});
