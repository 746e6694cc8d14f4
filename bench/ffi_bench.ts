/**
 * The Deno FFI path of the hmalloc family against `new ArrayBuffer`, in one run:
 * `hmalloc(size)` + `hfree` (one FFI call, a non-owning ArrayBuffer over the block, a registry
 * entry; then a lookup, a detach and one FFI call) versus allocating an ArrayBuffer of the same
 * size (which V8 zero-fills, and the GC later frees).
 *
 *     deno bench -A bench/ffi_bench.ts            # table with ratios per group
 *     deno bench -A --json bench/ffi_bench.ts     # for bench/'s runner
 *
 * Targets (issue 3): ≤ 1.0x at 64 B and ≤ 0.02x at 1 MiB (hmalloc time / ArrayBuffer time).
 * Each group's baseline is `new ArrayBuffer`; deno prints "x times faster/slower than" it.
 * Also measured: the same through a pool, `hcalloc` (zeroed, like ArrayBuffer), a GC-managed
 * block, and a `using` scope, so that their overheads are visible next to the plain path.
 */

import {
  allocScoped,
  hcalloc,
  hfree,
  hmalloc,
  hmallocManaged,
  loadHmalloc,
} from "../lib/buffers.ts";
import { Pool } from "../lib/pool.ts";
import { ffiSizes } from "./rows.ts";

await loadHmalloc();
const pool = new Pool({ bind: "all" });

/** Keeps V8 from optimizing the ArrayBuffer allocation away. */
const sink: { buffer?: ArrayBuffer } = {};

for (const { label, size, samples: n, batch } of ffiSizes) {
  const warmup = n / 10;
  Deno.bench({
    name: `new ArrayBuffer(${label})`,
    group: label,
    baseline: true,
    n,
    warmup,
    fn(): void {
      for (let i = 0; i < batch; i++) {
        sink.buffer = new ArrayBuffer(size);
      }
    },
  });
  Deno.bench({
    name: `hmalloc(${label}) + hfree`,
    group: label,
    n,
    warmup,
    fn(): void {
      for (let i = 0; i < batch; i++) {
        hfree(hmalloc(size));
      }
    },
  });
  Deno.bench({
    name: `pool.hmalloc(${label}) + hfree`,
    group: label,
    n,
    warmup,
    fn(): void {
      for (let i = 0; i < batch; i++) {
        hfree(pool.hmalloc(size));
      }
    },
  });
  Deno.bench({
    name: `hcalloc(1, ${label}) + hfree`,
    group: label,
    n,
    warmup,
    fn(): void {
      for (let i = 0; i < batch; i++) {
        hfree(hcalloc(1, size));
      }
    },
  });
  Deno.bench({
    name: `using allocScoped(${label})`,
    group: label,
    n,
    warmup,
    fn(): void {
      for (let i = 0; i < batch; i++) {
        using scoped = allocScoped(size);
        sink.buffer = scoped.buffer;
      }
    },
  });
  Deno.bench({
    name: `hmallocManaged(${label}) + hfree`,
    group: label,
    n,
    warmup,
    fn(): void {
      for (let i = 0; i < batch; i++) {
        hfree(hmallocManaged(size));
      }
    },
  });
}

globalThis.addEventListener("unload", () => {
  sink.buffer = undefined;
  pool.destroy();
});
