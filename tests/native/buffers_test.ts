/**
 * lib/buffers.ts: the hmalloc family over ArrayBuffers. What a user relies on: a freed buffer
 * is detached (every view length 0), freeing anything not live is a TypeError (never the C
 * library's abort), sizes are checked, contents survive resizing, scopes and the GC free.
 */

import assert from "node:assert/strict";
import {
  allocScoped,
  halignedAlloc,
  hcalloc,
  hfree,
  hmalloc,
  hmallocManaged,
  hmallocUsableSize,
  hmmap,
  hmunmap,
  hrealloc,
  isHmallocBuffer,
  loadHmalloc,
} from "../../lib/buffers.ts";
import { defaultPool, Pool } from "../../lib/pool.ts";
import { recycledByteCount, releaseRecycled } from "../../lib/registry.ts";

function addressOf(buffer: ArrayBuffer): bigint {
  return Deno.UnsafePointer.value(Deno.UnsafePointer.of(buffer));
}

Deno.test("loadHmalloc opens the library through the location chain", async () => {
  const { path, source } = await loadHmalloc();
  assert.match(path, /libhmalloc\.so$/);
  assert.ok(["env", "local", "cache", "built"].includes(source), source);
});

Deno.test("hmalloc returns a writable buffer of the size asked, usable size at least that", () => {
  for (const size of [1, 8, 64, 100, 4096, 65536, 1 << 20, 5 << 20]) {
    const buf = hmalloc(size);
    assert.equal(buf.byteLength, size);
    const bytes = new Uint8Array(buf);
    bytes.fill(0xa5);
    assert.ok(bytes.every((b: number) => b === 0xa5));
    assert.ok(hmallocUsableSize(buf) >= size, `usable ${hmallocUsableSize(buf)} < ${size}`);
    hfree(buf);
  }
});

Deno.test("hfree detaches the buffer: every view of it has length 0", () => {
  const buf = hmalloc(64);
  const u8 = new Uint8Array(buf);
  const f64 = new Float64Array(buf, 8, 4);
  const dv = new DataView(buf);
  u8.fill(5);
  hfree(buf);
  assert.equal(buf.detached, true);
  assert.equal(buf.byteLength, 0);
  assert.equal(u8.length, 0);
  assert.equal(f64.length, 0);
  assert.equal(u8[0], undefined);
  assert.throws(() => dv.getUint8(0), TypeError);
  assert.equal(isHmallocBuffer(buf), false);
});

Deno.test("double free is a TypeError saying the buffer is detached", () => {
  const buf = hmalloc(32);
  hfree(buf);
  assert.throws(() => hfree(buf), { name: "TypeError", message: /hfree: .*detached/ });
  assert.throws(() => hrealloc(buf, 64), { name: "TypeError", message: /hrealloc: .*detached/ });
  assert.throws(() => hmallocUsableSize(buf), TypeError);
});

Deno.test("freeing a buffer hmalloc did not hand out is a TypeError naming it", () => {
  assert.throws(() => hfree(new ArrayBuffer(24)), {
    name: "TypeError",
    message: "hfree: ArrayBuffer(24) was not allocated by tiermem's hmalloc",
  });
  const view = new Uint8Array(hmalloc(16));
  assert.throws(() => hfree(view as unknown as ArrayBuffer), {
    name: "TypeError",
    message: /got Uint8Array \(pass its \.buffer\)/,
  });
  hfree(view.buffer as ArrayBuffer);
  for (const junk of [null, undefined, 42, "buf", {}]) {
    assert.throws(() => hfree(junk as unknown as ArrayBuffer), TypeError);
  }
  assert.throws(() => hrealloc(new ArrayBuffer(8), 16), TypeError);
  assert.throws(() => hmallocUsableSize(new ArrayBuffer(8)), TypeError);
});

Deno.test("a copy of a live buffer is not freeable, and the registry is invisible to reflection", () => {
  const buf = hmalloc(16);
  new Uint8Array(buf).fill(4);
  const copy = structuredClone(buf);
  const sliced = buf.slice(0);
  assert.equal(new Uint8Array(copy)[15], 4);
  assert.throws(() => hfree(copy), { name: "TypeError", message: /not allocated/ });
  assert.throws(() => hfree(sliced), { name: "TypeError", message: /not allocated/ });
  assert.deepEqual(Reflect.ownKeys(buf), []);
  hfree(buf);
});

Deno.test("hmalloc(0) gives a unique zero-length block that frees once", () => {
  const a = hmalloc(0);
  const b = hmalloc(0);
  assert.equal(a.byteLength, 0);
  assert.notEqual(a, b);
  assert.ok(isHmallocBuffer(a) && isHmallocBuffer(b));
  hfree(a);
  assert.equal(isHmallocBuffer(a), false);
  assert.throws(() => hfree(a), { name: "TypeError", message: /detached/ });
  hfree(b);
});

Deno.test("sizes that are not byte counts are RangeErrors naming the value", () => {
  for (const bad of [-1, 1.5, NaN, Infinity, 2 ** 53]) {
    assert.throws(() => hmalloc(bad), {
      name: "RangeError",
      message: /hmalloc: size .* byte count/,
    });
  }
  assert.throws(() => hcalloc(-2, 8), { name: "RangeError", message: /count -2/ });
  assert.throws(() => hcalloc(2 ** 30, 2 ** 30), { name: "RangeError", message: /overflows/ });
  assert.throws(() => hmmap(0), { name: "RangeError", message: /length 0/ });
});

Deno.test("hcalloc returns zeroed memory, even where an earlier block was written", () => {
  const dirty = hmalloc(4096);
  new Uint8Array(dirty).fill(0xff);
  hfree(dirty);
  const buf = hcalloc(512, 8);
  assert.equal(buf.byteLength, 4096);
  assert.ok(new Uint8Array(buf).every((b: number) => b === 0));
  hfree(buf);
});

Deno.test("hrealloc keeps the contents, detaches the old buffer, and shrinks to 0", () => {
  const small = hmalloc(100);
  new Uint8Array(small).forEach((_, i: number, a: Uint8Array) => (a[i] = i));
  const big = hrealloc(small, 3 << 20);
  assert.equal(small.detached, true);
  assert.equal(big.byteLength, 3 << 20);
  assert.deepEqual([...new Uint8Array(big, 0, 100)], [...Array(100).keys()]);
  const shrunk = hrealloc(big, 10);
  assert.deepEqual([...new Uint8Array(shrunk)], [...Array(10).keys()]);
  const empty = hrealloc(shrunk, 0);
  assert.equal(empty.byteLength, 0);
  assert.ok(isHmallocBuffer(empty));
  hfree(empty);
});

Deno.test("a failed hrealloc is a RangeError and leaves the buffer valid", () => {
  const buf = hmalloc(64);
  new Uint8Array(buf)[3] = 9;
  assert.throws(() => hrealloc(buf, 2 ** 52), { name: "RangeError", message: /out of memory/ });
  assert.equal(new Uint8Array(buf)[3], 9);
  hfree(buf);
});

Deno.test("halignedAlloc honours the alignment; a non-power of two is a RangeError", () => {
  for (const alignment of [8, 64, 4096, 1 << 16, 1 << 21]) {
    const buf = halignedAlloc(alignment, 100);
    assert.equal(addressOf(buf) % BigInt(alignment), 0n, `alignment ${alignment}`);
    hfree(buf);
  }
  for (const bad of [0, 3, 24]) {
    assert.throws(() => halignedAlloc(bad, 8), {
      name: "RangeError",
      message: new RegExp(`alignment ${bad} is not a power of two`),
    });
  }
});

Deno.test("halignedAlloc(alignment, 0) for alignments from 8 B to 64 MiB: an empty block hfree takes back", () => {
  // Alignments above 4 KiB used to kill the process (SIGSEGV, or a block hfree refused).
  for (let alignment = 8; alignment <= 64 << 20; alignment *= 2) {
    const buf = halignedAlloc(alignment, 0);
    assert.equal(buf.byteLength, 0);
    assert.equal(addressOf(buf) % BigInt(alignment), 0n, `alignment ${alignment}`);
    hfree(buf);
    assert.throws(() => hfree(buf), TypeError, "freed once");
  }
});

Deno.test("blocks do not overlap: 2000 live blocks keep their own contents", () => {
  const blocks: ArrayBuffer[] = [];
  for (let i = 0; i < 2000; i++) {
    const buf = hmalloc(8 + (i % 300));
    new Uint8Array(buf).fill(i & 0xff);
    blocks.push(buf);
  }
  blocks.forEach((buf: ArrayBuffer, i: number) => {
    assert.ok(new Uint8Array(buf).every((b: number) => b === (i & 0xff)), `block ${i}`);
    hfree(buf);
  });
});

Deno.test("hmmap/hmunmap: a placed mapping, detached on unmap; kinds are not mixed", () => {
  const map = hmmap(1 << 20);
  const view = new Uint8Array(map);
  view[0] = 1;
  view[(1 << 20) - 1] = 2;
  assert.ok(isHmallocBuffer(map));
  assert.throws(() => hfree(map), { name: "TypeError", message: /came from hmmap/ });
  hmunmap(map);
  assert.equal(view.length, 0);
  assert.throws(() => hmunmap(map), { name: "TypeError", message: /detached/ });
  const block = hmalloc(64);
  assert.throws(() => hmunmap(block), { name: "TypeError", message: /came from hmalloc/ });
  assert.throws(() => hmunmap(new ArrayBuffer(4096)), { name: "TypeError", message: /hmmap/ });
  hfree(block);
  const shared = hmmap(8192, { shared: true });
  new Uint8Array(shared).fill(3);
  hmunmap(shared);
});

Deno.test("allocScoped frees at the end of the scope, and tolerates an earlier hfree", () => {
  let kept: ArrayBuffer;
  {
    using scoped = allocScoped(256);
    kept = scoped.buffer;
    assert.equal(kept.byteLength, 256);
  }
  assert.equal(kept.detached, true);
  {
    using scoped = allocScoped(16);
    hfree(scoped.buffer);
  }
  const pool = defaultPool();
  {
    using scoped = pool.allocScoped(8);
    assert.ok(isHmallocBuffer(scoped.buffer));
  }
});

Deno.test("a managed buffer can still be freed explicitly, once", () => {
  const buf = hmallocManaged(128);
  new Uint8Array(buf).fill(1);
  assert.ok(isHmallocBuffer(buf));
  assert.ok(hmallocUsableSize(buf) >= 128);
  const grown = hrealloc(buf, 4096);
  assert.equal(new Uint8Array(grown)[127], 1);
  hfree(grown);
  assert.throws(() => hfree(grown), TypeError);
});

Deno.test("the GC frees unreachable managed buffers (FinalizationRegistry)", async () => {
  // A child with --expose-gc: allocate managed blocks in a pool, drop them, collect, and watch
  // the pool's live count fall to 0 (finalizers ran and called hfree without a crash).
  const script = `
    import { Pool } from ${JSON.stringify(new URL("../../lib/pool.ts", import.meta.url).href)};
    const pool = new Pool({ bind: [0] });
    const kept = pool.hmallocManaged(64);
    (() => { for (let i = 0; i < 1000; i++) pool.hmallocManaged(256); })();
    const before = pool.liveBlocks;
    for (let i = 0; i < 20 && pool.liveBlocks > 1; i++) {
      globalThis.gc();
      await new Promise((r) => setTimeout(r, 10));
    }
    console.log(JSON.stringify({ before, after: pool.liveBlocks, kept: kept.byteLength }));
    pool.destroy();
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--v8-flags=--expose-gc", "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = out.stdin.getWriter();
  await writer.write(new TextEncoder().encode(script));
  await writer.close();
  const result = await out.output();
  const stderr = new TextDecoder().decode(result.stderr);
  assert.equal(result.code, 0, stderr);
  const counts = JSON.parse(new TextDecoder().decode(result.stdout));
  assert.deepEqual(counts, { before: 1001, after: 1, kept: 64 });
});

Deno.test("a freed small block is recycled: the next hmalloc of its size reuses its memory, the old buffer stays detached", () => {
  releaseRecycled();
  const first = hmalloc(48);
  const address = addressOf(first);
  const view = new Uint8Array(first);
  hfree(first);
  assert.equal(view.length, 0);
  assert.equal(recycledByteCount(), 48);
  const second = hmalloc(48);
  assert.equal(addressOf(second), address); // the C block came back without a library call
  assert.notEqual(second, first);
  assert.equal(first.byteLength, 0);
  assert.throws(() => hfree(first), TypeError); // the old buffer is still dead
  new Uint8Array(second).fill(1);
  hfree(second);
  releaseRecycled();
  assert.equal(recycledByteCount(), 0);
});

Deno.test("recycling is bounded per size and in all, and only for the default pool's small blocks", () => {
  releaseRecycled();
  const many: ArrayBuffer[] = Array.from({ length: 500 }, () => hmalloc(64));
  for (const b of many) hfree(b);
  assert.equal(recycledByteCount(), 32 * 64); // 32 per size
  const sizes: ArrayBuffer[] = [];
  for (let size = 1; size <= 1024; size++) sizes.push(hmalloc(size));
  for (const b of sizes) hfree(b);
  assert.ok(recycledByteCount() <= 64 * 1024, `${recycledByteCount()} bytes kept`);
  const before = recycledByteCount();
  hfree(hmalloc(4096)); // above the recycled sizes
  using pool = new Pool({ bind: "all" });
  hfree(pool.hmalloc(16)); // another pool's block goes back to the library
  assert.equal(recycledByteCount(), before);
  releaseRecycled();
});
