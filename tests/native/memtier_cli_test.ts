// `cli.ts memtier`, spawned for real: configuration checked before the program runs, the
// program's environment, exit codes and signals; plus the parser of cli/memtier_launch.ts.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  findMemtierLibrary,
  memtierConfig,
  memtierEnv,
  type MemtierRequest,
  parseMemtierArgs,
} from "../../cli/memtier_launch.ts";
import { missingLibrary } from "../support/c_programs.ts";

const CLI = fileURLToPath(new URL("../../cli.ts", import.meta.url));
const LIB = fileURLToPath(new URL("../../zig-src/zig-out/lib/libmemtier.so", import.meta.url));
const HMALLOC_LIB = LIB.replace("libmemtier.so", "libhmalloc.so");
const libraryMissing = missingLibrary(LIB);
if (libraryMissing) {
  console.log(`memtier CLI tests that need the library skipped: ${libraryMissing}`);
}
const needsLib = libraryMissing !== false;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function baseEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" };
  const home = Deno.env.get("HOME");
  if (home !== undefined) env.HOME = home;
  return { ...env, ...extra };
}

function cliCommand(args: string[], env: Record<string, string>): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-check", CLI, "memtier", ...args],
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

async function memtier(args: string[], env: Record<string, string> = baseEnv()): Promise<Result> {
  const out = await cliCommand(args, env).output();
  const decode = (b: Uint8Array): string => new TextDecoder().decode(b);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}

/** Runs `body` with a fresh temp dir, removed afterwards. */
async function inTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "memtier_cli_test" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** A program that leaves a marker file: proof that it ran. */
const marking = (marker: string): string[] => ["sh", "-c", `touch '${marker}'`];

const SHOW_ENV = [
  "sh",
  "-c",
  'printf "%s|%s|%s|%s\\n" "$LD_PRELOAD" "$MEMKIND_MEM_TIERS" ' +
  '"${MEMKIND_MEM_THRESHOLDS-unset}" "${MEMKIND_MEM_TIERING_LOG_LEVEL-unset}"',
];

// ---- the parser (no process) -------------------------------------------------------

function run(argv: string[]): Extract<MemtierRequest, { kind: "run" }> {
  const r = parseMemtierArgs(argv);
  assert.equal(r.kind, "run");
  return r as Extract<MemtierRequest, { kind: "run" }>;
}

Deno.test("parseMemtierArgs: options end at PROGRAM or --, the rest is the program's", () => {
  const r = run(["--tiers=DRAM:1", "--log-level", "2", "--", "-prog", "--tiers", "x"]);
  assert.equal(r.tiers, "DRAM:1");
  assert.equal(r.logLevel, 2);
  assert.equal(r.program, "-prog");
  assert.deepEqual(r.args, ["--tiers", "x"]);
  const s = run(["ls", "--help"]);
  assert.equal(s.program, "ls");
  assert.deepEqual(s.args, ["--help"]);
  assert.equal(parseMemtierArgs(["--help", "ls"]).kind, "help");
});

Deno.test("parseMemtierArgs: each usage error names the option or value", () => {
  const cases: [string[], string][] = [
    [["--frob", "ls"], `unknown option "--frob"`],
    [["--tiers"], `option "--tiers" needs a value`],
    [["--tiers", "DRAM:1"], "no program given"],
    [["--tiers=DRAM:1", "--tiers=DRAM:2", "ls"], `option "--tiers" given twice`],
    [
      ["--tiers=DRAM:1", "--mem-tiers=x", "ls"],
      `options "--tiers" and "--mem-tiers" exclude each other`,
    ],
    [
      ["--tiers=DRAM:1", "--policy=fast", "ls"],
      `--policy: bad value "fast": expected static or dynamic`,
    ],
    [["--log-level=3", "ls"], `--log-level: bad value "3": expected 0, 1 or 2`],
    [
      ["--policy=dynamic", "ls"],
      `option "--policy" goes with "--tiers" (with --mem-tiers, POLICY is part of the string)`,
    ],
  ];
  for (const [argv, message] of cases) {
    assert.throws(() => parseMemtierArgs(argv), new TypeError(message), argv.join(" "));
  }
});

Deno.test("memtierConfig: flags replace inherited tier variables, inherited ones are checked", () => {
  const inherited = { MEMKIND_MEM_TIERS: "bad", MEMKIND_MEM_THRESHOLDS: "INIT_VAL:1K" };
  const c = memtierConfig(run(["--tiers", "DRAM:1,FS_DAX:4:/tmp", "p"]), inherited);
  assert.equal(
    c.MEMKIND_MEM_TIERS,
    "KIND:DRAM,RATIO:1;KIND:FS_DAX,PATH:/tmp,RATIO:4;POLICY:STATIC_RATIO",
  );
  assert.equal(c.MEMKIND_MEM_THRESHOLDS, null);
  assert.throws(
    () => memtierConfig(run(["p"]), inherited),
    new TypeError(
      `MEMKIND_MEM_TIERING_LOG_ERROR: MEMKIND_MEM_TIERS: bad value "bad": unknown parameter (expected KIND, RATIO, PATH or PMEM_SIZE_LIMIT)`,
    ),
  );
  assert.equal(memtierConfig(run(["p"]), {}).MEMKIND_MEM_TIERS, null);
  assert.throws(
    () => memtierConfig(run(["p"]), { MEMKIND_MEM_TIERING_LOG_LEVEL: "x" }),
    new TypeError(`MEMKIND_MEM_TIERING_LOG_LEVEL: bad value "x": expected 0, 1 or 2`),
  );
});

Deno.test("memtierEnv: the library goes first in LD_PRELOAD, once; unset variables are removed", () => {
  const config = {
    MEMKIND_MEM_TIERS: "KIND:DRAM,RATIO:1;POLICY:STATIC_RATIO",
    MEMKIND_MEM_THRESHOLDS: null,
    MEMKIND_MEM_TIERING_LOG_LEVEL: null,
    spec: null,
  };
  const env = memtierEnv(
    { LD_PRELOAD: "/a.so /m.so:/b.so", MEMKIND_MEM_THRESHOLDS: "x", KEEP: "1" },
    config,
    "/m.so",
  );
  assert.deepEqual(env, {
    LD_PRELOAD: "/m.so:/a.so:/b.so",
    MEMKIND_MEM_TIERS: "KIND:DRAM,RATIO:1;POLICY:STATIC_RATIO",
    KEEP: "1",
  });
});

Deno.test("findMemtierLibrary: TIERMEM_MEMTIER_LIB must exist; else the local build", async () => {
  await assert.rejects(
    () => findMemtierLibrary({ TIERMEM_MEMTIER_LIB: "/nonexistent/libmemtier.so" }),
    new TypeError(`TIERMEM_MEMTIER_LIB: "/nonexistent/libmemtier.so" is not a file`),
  );
  if (!needsLib) assert.equal(await findMemtierLibrary({}), LIB);
});

// ---- spawned -----------------------------------------------------------------------

Deno.test("cli.ts memtier --help prints the usage and exits 0", async () => {
  const r = await memtier(["--help"]);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^Usage: cli\.ts memtier \[OPTION\]\.\.\. \[--\] PROGRAM/);
  assert.match(r.stdout, /--tiers=TIERS/);
  assert.equal(r.stderr, "");
});

Deno.test({
  name: "cli.ts memtier --tiers: LD_PRELOAD gets our absolute library first, the variables are set",
  ignore: needsLib,
  fn: async () => {
    const r = await memtier(
      [
        "--tiers",
        "DRAM:1,FS_DAX:4:16M:/dev/shm",
        "--policy",
        "dynamic",
        "--log-level",
        "0",
        ...SHOW_ENV,
      ],
      baseEnv({ LD_PRELOAD: HMALLOC_LIB }),
    );
    assert.equal(r.stderr, "");
    assert.equal(
      r.stdout,
      `${LIB}:${HMALLOC_LIB}|KIND:DRAM,RATIO:1;KIND:FS_DAX,PATH:/dev/shm,RATIO:4,PMEM_SIZE_LIMIT:16M;` +
        `POLICY:DYNAMIC_THRESHOLD|unset|0\n`,
    );
    assert.equal(r.code, 0);
  },
});

Deno.test({
  name: "cli.ts memtier --mem-tiers and --thresholds are passed as given",
  ignore: needsLib,
  fn: async () => {
    const tiers = "KIND:DRAM,RATIO:1;KIND:FS_DAX,PATH:/dev/shm,RATIO:2;POLICY:DYNAMIC_THRESHOLD";
    const r = await memtier(["--mem-tiers", tiers, "--thresholds", "INIT_VAL:1200", ...SHOW_ENV]);
    assert.equal(r.stdout, `${LIB}|${tiers}|INIT_VAL:1200|unset\n`);
    assert.equal(r.code, 0);
  },
});

// memkind 1.14 segfaults with no message on the first five; each must be one line, exit 2.
const badConfigurations: { args: string[]; line: string }[] = [
  {
    args: ["--mem-tiers", "KIND:DRAM,RATIO"],
    line:
      `MEMKIND_MEM_TIERING_LOG_ERROR: MEMKIND_MEM_TIERS: bad token "RATIO" in "KIND:DRAM,RATIO": missing value`,
  },
  {
    args: [
      "--mem-tiers",
      "KIND:FS_DAX,PATH:/dev/shm,RATIO:1,PMEM_SIZE_LIMIT:1;POLICY:STATIC_RATIO",
    ],
    line: `MEMKIND_MEM_TIERING_LOG_ERROR: MEMKIND_MEM_TIERS: bad token "1" in ` +
      `"KIND:FS_DAX,PATH:/dev/shm,RATIO:1,PMEM_SIZE_LIMIT:1": below the minimum 16M (0 = unlimited)`,
  },
  {
    args: ["--mem-tiers", "KIND:FS_DAX,PATH:/dev/shm,RATIO:1,PMEM_SIZE_LIMIT;POLICY:STATIC_RATIO"],
    line: `MEMKIND_MEM_TIERING_LOG_ERROR: MEMKIND_MEM_TIERS: bad token "PMEM_SIZE_LIMIT" in ` +
      `"KIND:FS_DAX,PATH:/dev/shm,RATIO:1,PMEM_SIZE_LIMIT": missing value`,
  },
  {
    args: [
      "--tiers",
      "DRAM:1,FS_DAX:1:/dev/shm",
      "--policy",
      "dynamic",
      "--thresholds",
      "INIT_VAL",
    ],
    line:
      `MEMKIND_MEM_TIERING_LOG_ERROR: MEMKIND_MEM_THRESHOLDS: bad value "INIT_VAL": missing value`,
  },
  {
    args: [
      "--tiers",
      "DRAM:1,FS_DAX:1:/dev/shm,FS_DAX:1:/tmp",
      "--policy=dynamic",
      "--thresholds=INIT_VAL:1K;",
    ],
    line:
      `MEMKIND_MEM_TIERING_LOG_ERROR: MEMKIND_MEM_THRESHOLDS: bad token "" in "INIT_VAL:1K;": empty item`,
  },
  {
    args: ["--tiers", "DRAM:1,PMEM:4"],
    line: `memtier: --tiers: bad tier "PMEM:4": unknown kind (expected DRAM, KMEM_DAX or FS_DAX)`,
  },
  {
    args: ["--tiers", "DRAM:1,FS_DAX:4:/nonexistent/dir"],
    line: `memtier: FS_DAX: bad PATH "/nonexistent/dir": not an existing directory`,
  },
  { args: ["--log-level", "9"], line: `memtier: --log-level: bad value "9": expected 0, 1 or 2` },
  { args: ["--frob"], line: `memtier: unknown option "--frob"` },
];

for (const bad of badConfigurations) {
  Deno.test({
    name: `cli.ts memtier ${bad.args.join(" ")}: one line, exit 2, program not run`,
    ignore: needsLib,
    fn: () =>
      inTempDir(async (dir: string) => {
        const marker = `${dir}/ran`;
        const r = await memtier([...bad.args, ...marking(marker)]);
        assert.equal(r.stderr, `${bad.line}\n`);
        assert.equal(r.code, 2);
        assert.equal(r.stdout, "");
        assert.equal(exists(marker), false, "the program ran");
      }),
  });
}

Deno.test({
  name: "cli.ts memtier checks an inherited MEMKIND_MEM_TIERS before running anything",
  ignore: needsLib,
  fn: () =>
    inTempDir(async (dir: string) => {
      const marker = `${dir}/ran`;
      const r = await memtier(
        marking(marker),
        baseEnv({ MEMKIND_MEM_TIERS: "KIND:DRAM,RATIO:0;POLICY:STATIC_RATIO" }),
      );
      assert.equal(
        r.stderr,
        `MEMKIND_MEM_TIERING_LOG_ERROR: MEMKIND_MEM_TIERS: bad token "0" in "KIND:DRAM,RATIO:0": out of range 1..4294967295\n`,
      );
      assert.equal(r.code, 2);
      assert.equal(exists(marker), false);
    }),
});

Deno.test("cli.ts memtier: a missing library is one line saying how to build it", async () => {
  const r = await memtier(["true"], baseEnv({ TIERMEM_MEMTIER_LIB: "/nonexistent.so" }));
  assert.equal(r.stderr, `memtier: TIERMEM_MEMTIER_LIB: "/nonexistent.so" is not a file\n`);
  assert.equal(r.code, 2);
});

Deno.test({
  name: "cli.ts memtier: TIERMEM_MEMTIER_LIB names the library to preload",
  ignore: needsLib,
  fn: () =>
    inTempDir(async (dir: string) => {
      await Deno.copyFile(LIB, `${dir}/libmemtier.so`);
      const r = await memtier(
        ["sh", "-c", 'echo "$LD_PRELOAD"'],
        baseEnv({ TIERMEM_MEMTIER_LIB: `${dir}/libmemtier.so` }),
      );
      assert.equal(r.stdout, `${dir}/libmemtier.so\n`);
      assert.equal(r.code, 0);
    }),
});

Deno.test({
  name: "cli.ts memtier: a program not found is one line, exit 2",
  ignore: needsLib,
  fn: async () => {
    const r = await memtier(["--tiers", "DRAM:1", "no-such-program-xyz"]);
    assert.equal(r.stderr, `memtier: program "no-such-program-xyz" not found in PATH\n`);
    assert.equal(r.code, 2);
  },
});

Deno.test({
  name: "cli.ts memtier: the program's exit code, and 128+N when signal N ends it",
  ignore: needsLib,
  fn: async () => {
    assert.equal((await memtier(["--tiers", "DRAM:1", "sh", "-c", "exit 7"])).code, 7);
    assert.equal((await memtier(["--tiers", "DRAM:1", "sh", "-c", "kill -TERM $$"])).code, 143);
  },
});

Deno.test({
  name: "cli.ts memtier forwards SIGTERM to the program",
  ignore: needsLib,
  fn: async () => {
    const child = cliCommand(
      [
        "--tiers",
        "DRAM:1",
        "sh",
        "-c",
        "trap 'echo got-term; exit 5' TERM; echo ready; while :; do sleep 0.05; done",
      ],
      baseEnv(),
    ).spawn();
    const reader = child.stdout.getReader();
    let text = "";
    const decoder = new TextDecoder();
    while (!text.includes("ready")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    child.kill("SIGTERM");
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    const status = await child.status;
    await child.stderr.cancel();
    assert.equal(text, "ready\ngot-term\n");
    assert.equal(status.code, 5);
  },
});

Deno.test({
  name: "cli.ts memtier --log-level 1: the tiers at start and one summary line per tier at exit",
  ignore: needsLib,
  fn: async () => {
    const r = await memtier([
      "--tiers",
      "DRAM:1,FS_DAX:4:/dev/shm",
      "--log-level",
      "1",
      "python3",
      "-c",
      "print('hi')",
    ]);
    assert.equal(r.stdout, "hi\n");
    assert.equal(r.code, 0);
    assert.match(r.stderr, /MEMKIND_MEM_TIERING_LOG_INFO: tier 0: DRAM, ratio 1\n/);
    assert.match(
      r.stderr,
      /MEMKIND_MEM_TIERING_LOG_INFO: tier 1 FS_DAX: \d+ bytes now, \d+ bytes peak, \d+ allocations, \d+ fallbacks\n/,
    );
  },
});
