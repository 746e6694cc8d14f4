/**
 * The hmalloc C API's contract, through real C programs linked against the built
 * libhmalloc.so: malloc(3)/mmap(2) semantics, and each bug of the reference (SK hynix HMSDK
 * hmalloc) proven absent. Misuse (foreign, interior, double-freed pointers) must end the
 * program with one line naming the call and SIGABRT, never corrupt silently.
 */

import assert from "node:assert/strict";
import { buildCProgram, libDir } from "../support/c_programs.ts";

const decoder = new TextDecoder();

interface Outcome {
  code: number;
  signal: Deno.Signal | null;
  stdout: string;
  stderr: string;
}

async function run(
  exe: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<Outcome> {
  const out = await new Deno.Command(exe, { args, env, stdout: "piped", stderr: "piped" }).output();
  return {
    code: out.code,
    signal: out.signal,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
}

const checks: Record<string, string> = {
  alignments:
    "every power-of-two alignment from 8 B to 1 GiB is honoured (reference: > 4 KiB ignored)",
  bad_alignments:
    "hposix_memalign(2) and other invalid alignments give EINVAL (reference: accepted 2)",
  calloc_overflow: "hcalloc(2^33, 2^32) returns NULL with ENOMEM (reference: returned memory)",
  errno_not_success: "a stale errno does not make hmalloc fail (reference: read errno)",
  ulimit_v:
    "under ulimit -v, hmalloc gives NULL and hmmap MAP_FAILED with ENOMEM (reference: MAP_FAILED as memory), and allocation recovers",
  zero_size: "hmalloc(0) gives unique pointers; hfree(NULL) and hrealloc(p, 0) behave like glibc",
  realloc_contents: "hrealloc keeps the contents across small, large and huge sizes",
  hmmap_basic: "hmmap maps placed memory and fails like mmap on bad arguments",
  cross_thread: "blocks freed by another thread are reused, not leaked",
  address_space: "20,000 x 3000 B live map at most twice their size (reference: 5.4 GB for 44 MB)",
  pools:
    "pools with explicit policies allocate, describe their policy and reject bad ones naming the token",
  aligned_overflow:
    "haligned_alloc, hposix_memalign and hm_pool_aligned_alloc near SIZE_MAX give NULL/ENOMEM as glibc (was: a wrapped, misaligned block)",
  aligned_zero_size:
    "size 0 with alignments from 8 B to 1 GiB gives an aligned block hfree takes back (was: SIGSEGV, or a block past its mapping)",
};

for (const [check, behaviour] of Object.entries(checks)) {
  Deno.test(`hmalloc API: ${behaviour}`, async () => {
    const exe = await buildCProgram("api_checks", { extra: ["-pthread"] });
    const r = await run(exe, [check]);
    assert.equal(r.code, 0, `${check}: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /^ok$/m);
  });
}

const misuse: Record<string, RegExp> = {
  double_free_small: /^hmalloc: hfree\(0x[0-9a-f]+\): invalid pointer: double free$/m,
  double_free_large: /^hmalloc: hfree\(0x[0-9a-f]+\): invalid pointer: not in use/m,
  double_free_huge: /^hmalloc: hfree\(0x[0-9a-f]+\): invalid pointer: not allocated by hmalloc/m,
  stack_pointer: /^hmalloc: hfree\(0x[0-9a-f]+\): invalid pointer: not allocated by hmalloc/m,
  glibc_pointer: /^hmalloc: hfree\(0x[0-9a-f]+\): invalid pointer: not allocated by hmalloc/m,
  interior_small: /^hmalloc: hfree\(0x[0-9a-f]+\): invalid pointer: not the start of a block$/m,
  interior_large: /^hmalloc: hfree\(0x[0-9a-f]+\): invalid pointer: not the start of a block$/m,
  interior_huge: /^hmalloc: hfree\(0x[0-9a-f]+\): invalid pointer: not the start of a block$/m,
  free_after_realloc: /^hmalloc: hfree\(0x[0-9a-f]+\): invalid pointer: double free$/m,
  realloc_foreign: /^hmalloc: hrealloc\(0x[0-9a-f]+\): invalid pointer: not allocated by hmalloc/m,
  usable_size_interior:
    /^hmalloc: hmalloc_usable_size\(0x[0-9a-f]+\): invalid pointer: not the start of a block$/m,
  signal_handler_allocates:
    /^hmalloc: allocator re-entered while this thread holds its lock \(malloc or free called from a signal handler\?\)$/m,
};

for (const [misuseCase, message] of Object.entries(misuse)) {
  Deno.test(`hmalloc API: ${misuseCase.replaceAll("_", " ")} is reported in one line and aborts`, async () => {
    const exe = await buildCProgram("misuse");
    const r = await run(exe, [misuseCase]);
    assert.equal(r.signal, "SIGABRT", `${misuseCase}: code ${r.code}, ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert(!r.stdout.includes("not detected"));
  });
}

Deno.test("hmalloc API: dlclose does not unload the library under threads that used it", async () => {
  const exe = await buildCProgram("dlclose_threads", {
    hmalloc: false,
    extra: ["-pthread", "-ldl"],
  });
  const r = await run(exe, [`${libDir}/libhmalloc.so`]);
  assert.equal(r.code, 0, `signal ${r.signal}: ${r.stdout}${r.stderr}`);
  assert.match(r.stdout, /^survived$/m);
});
