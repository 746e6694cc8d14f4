/**
 * The exit status memtier's help and docs/memtier.md promise for a bad configuration — 2, one
 * line on stderr, the program's `main` never reached — on both paths: the launcher
 * (`cli.ts memtier`, which checks before starting the program) and libmemtier.so under a
 * plain `LD_PRELOAD` (which checks at its first allocation, before `main`). Issue 10: both
 * used to exit 1 for a KMEM_DAX tier on a machine without memory-only nodes, and the library
 * for every malformed MEMKIND_MEM_TIERS.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { kmemDaxProblem } from "../../cli/kmem_dax_nodes.ts";
import { fakeOneNode, fakeVm } from "../support/fake_sysfs.ts";
import { missingLibrary } from "../support/c_programs.ts";

const CLI = fileURLToPath(new URL("../../cli.ts", import.meta.url));
const LIB = fileURLToPath(new URL("../../zig-src/zig-out/lib/libmemtier.so", import.meta.url));
const libraryMissing = missingLibrary(LIB);
if (libraryMissing) console.log(`memtier exit status tests skipped: ${libraryMissing}`);
const ignore = libraryMissing !== false;

/** Whether this machine has a usable memory-only node (then KMEM_DAX finds one). */
const hasMemoryOnlyNode = kmemDaxProblem(undefined) === null;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function env(extra: Record<string, string>): Record<string, string> {
  return { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", ...extra };
}

async function run(cmd: string, args: string[], extra: Record<string, string>): Promise<Result> {
  const out = await new Deno.Command(cmd, {
    args,
    env: env(extra),
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array): string => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

/** A program that prints "ran" if its main is reached. */
const PROGRAM = ["/bin/sh", "-c", "echo ran"];

function preloaded(tiers: Record<string, string>): Promise<Result> {
  return run(PROGRAM[0], PROGRAM.slice(1), { LD_PRELOAD: LIB, ...tiers });
}

function launcher(args: string[], extra: Record<string, string> = {}): Promise<Result> {
  return run(Deno.execPath(), ["run", "-A", "--no-check", CLI, "memtier", ...args, ...PROGRAM], {
    TIERMEM_MEMTIER_LIB: LIB,
    ...extra,
  });
}

function assertRefused(r: Result, line: string): void {
  assert.equal(r.stderr, `${line}\n`);
  assert.equal(r.stdout, "", "the program's main must not run");
  assert.equal(r.code, 2);
}

Deno.test({
  name: "LD_PRELOAD: a malformed MEMKIND_MEM_TIERS exits 2 with one line, before main",
  ignore,
  fn: async () => {
    assertRefused(
      await preloaded({ MEMKIND_MEM_TIERS: "KIND:DRAM,RATIO:x" }),
      `MEMKIND_MEM_TIERING_LOG_ERROR: MEMKIND_MEM_TIERS: bad token "x" in "KIND:DRAM,RATIO:x": ` +
        `not a decimal number`,
    );
  },
});

Deno.test({
  name: "LD_PRELOAD: a bad MEMKIND_MEM_TIERING_LOG_LEVEL exits 2 with one line, before main",
  ignore,
  fn: async () => {
    assertRefused(
      await preloaded({ MEMKIND_MEM_TIERING_LOG_LEVEL: "7" }),
      `MEMKIND_MEM_TIERING_LOG_ERROR: MEMKIND_MEM_TIERING_LOG_LEVEL: bad value "7": ` +
        `expected 0, 1 or 2`,
    );
  },
});

Deno.test({
  name: "LD_PRELOAD: KMEM_DAX without a memory-only node exits 2 with one line, before main",
  ignore: ignore || hasMemoryOnlyNode,
  fn: async () => {
    const r = await preloaded({
      MEMKIND_MEM_TIERS: "KIND:DRAM,RATIO:1;KIND:KMEM_DAX,RATIO:4;POLICY:STATIC_RATIO",
    });
    assertRefused(r, `MEMKIND_MEM_TIERING_LOG_ERROR: ${kmemDaxProblem(undefined)}`);
  },
});

Deno.test({
  name: "LD_PRELOAD: KMEM_DAX with MEMKIND_DAX_KMEM_NODES naming no usable node exits 2",
  ignore,
  fn: async () => {
    const r = await preloaded({
      MEMKIND_MEM_TIERS: "KIND:DRAM,RATIO:1;KIND:KMEM_DAX,RATIO:4;POLICY:STATIC_RATIO",
      MEMKIND_DAX_KMEM_NODES: "1000",
    });
    assert.equal(r.code, 2);
    assert.equal(r.stdout, "");
    assert.match(
      r.stderr,
      /^MEMKIND_MEM_TIERING_LOG_ERROR: KMEM_DAX: [^\n]+\n$/,
    );
  },
});

Deno.test({
  name: "memtier --tiers DRAM:1,KMEM_DAX:4 without a memory-only node: exit 2, program not run",
  ignore: ignore || hasMemoryOnlyNode,
  fn: async () => {
    assertRefused(
      await launcher(["--tiers", "DRAM:1,KMEM_DAX:4"]),
      "memtier: KMEM_DAX: no memory-only NUMA node found (nodes with memory: 1, none without " +
        "CPUs); set MEMKIND_DAX_KMEM_NODES",
    );
  },
});

Deno.test({
  name: "memtier with MEMKIND_DAX_KMEM_NODES naming an offline node: exit 2, program not run",
  ignore,
  fn: async () => {
    const r = await launcher(["--tiers", "DRAM:1,KMEM_DAX:4"], { MEMKIND_DAX_KMEM_NODES: "1000" });
    assert.equal(r.code, 2);
    assert.equal(r.stdout, "");
    assert.match(r.stderr, /^memtier: KMEM_DAX: MEMKIND_DAX_KMEM_NODES: .*"1000".*\n$/);
  },
});

Deno.test({
  name: "memtier with MEMKIND_DAX_KMEM_NODES=0 runs KMEM_DAX bound to node 0",
  ignore,
  fn: async () => {
    const r = await launcher(["--tiers", "DRAM:1,KMEM_DAX:4"], { MEMKIND_DAX_KMEM_NODES: "0" });
    assert.deepEqual(r, { code: 0, stdout: "ran\n", stderr: "" });
  },
});

Deno.test("kmemDaxProblem: the 4-node VM's memory-only nodes 2-3 are found", () => {
  using tree = fakeVm();
  const topology = { online: [0, 1, 2, 3], allowed: [0, 1, 2, 3] };
  assert.equal(kmemDaxProblem(undefined, { root: tree.root, topology }), null);
  assert.equal(
    kmemDaxProblem(undefined, {
      root: tree.root,
      topology: { online: [0, 1, 2, 3], allowed: [0] },
    }),
    "KMEM_DAX: no memory-only NUMA node found (nodes with memory: 4, none without CPUs); " +
      "set MEMKIND_DAX_KMEM_NODES",
  );
});

Deno.test("kmemDaxProblem: one node with CPUs has no memory-only node", () => {
  using tree = fakeOneNode();
  assert.equal(
    kmemDaxProblem(undefined, { root: tree.root, topology: { online: [0], allowed: [0] } }),
    "KMEM_DAX: no memory-only NUMA node found (nodes with memory: 1, none without CPUs); " +
      "set MEMKIND_DAX_KMEM_NODES",
  );
  assert.equal(
    kmemDaxProblem("0", { root: tree.root, topology: { online: [0], allowed: [0] } }),
    null,
  );
});
