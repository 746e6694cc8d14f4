// cli.ts in hmctl mode, spawned for real on this machine (`deno run -A cli.ts ...`).
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { formatNodeList, readNodeTopology } from "../../lib/node_list.ts";

const CLI = fileURLToPath(new URL("../../cli.ts", import.meta.url));
const topology = readNodeTopology();

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function cliCommand(
  args: string[],
  options: { env?: Record<string, string>; cwd?: string; stdin?: "piped" | "null" } = {},
): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-check", CLI, ...args],
    env: options.env,
    cwd: options.cwd,
    stdin: options.stdin ?? "null",
    stdout: "piped",
    stderr: "piped",
  });
}

async function cli(
  args: string[],
  options: { env?: Record<string, string>; cwd?: string } = {},
): Promise<Result> {
  const out = await cliCommand(args, options).output();
  const decode = (b: Uint8Array): string => new TextDecoder().decode(b);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}

/** Runs `body` with a fresh temp dir, removed afterwards. */
async function inTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "cli_test" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Reads the child's stdout until `marker` appears, returns what was read. */
async function readUntil(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  marker: string,
): Promise<string> {
  let text = "";
  const decoder = new TextDecoder();
  while (!text.includes(marker)) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  return text;
}

Deno.test("the policy reaches the program's environment, with the reference's variables", async () => {
  const probe = 'echo "$HMALLOC_POLICY|$HMALLOC_JEMALLOC|$HMALLOC_NODEMASK|$HMALLOC_MPOL_MODE"';
  const cases: [string[], string][] = [
    [["-m", "0"], "bind:0|1|1|2"],
    [["--preferred=0"], "preferred:0|1|1|1"],
    [["-P0"], "preferred-many:0|1|1|5"],
    [["--inter", "all"], `interleave:${topology.allowed.join(",")}|1|`],
    [["-w", "+0"], `weighted-interleave:${topology.allowed[0]}|1|`],
  ];
  for (const [options, expected] of cases) {
    const r = await cli([...options, "sh", "-c", probe]);
    assert.equal(r.stderr, "", options.join(" "));
    assert.equal(r.code, 0);
    assert.ok(r.stdout.startsWith(expected), `${options.join(" ")}: ${r.stdout}`);
  }
});

Deno.test("the rest of the environment passes through; without a policy it is untouched", async () => {
  const env = { KEEP: "kept", HMALLOC_POLICY: "interleave:0" };
  const probe = 'echo "$KEEP|$HMALLOC_POLICY"';
  assert.equal((await cli(["-m", "0", "sh", "-c", probe], { env })).stdout, "kept|bind:0\n");
  assert.equal((await cli(["sh", "-c", probe], { env })).stdout, "kept|interleave:0\n");
});

Deno.test("the program's arguments pass through untouched, -- and options included", async () => {
  const r = await cli([
    "-m",
    "0",
    "--",
    "sh",
    "-c",
    'printf "%s|" "$@"',
    "sh",
    "--",
    "-m",
    "9",
    "--help",
    "",
  ]);
  assert.equal(r.stdout, "--|-m|9|--help||");
  assert.equal(r.code, 0);
});

Deno.test("stdin, stdout and stderr are the launcher's", async () => {
  const child = cliCommand(["sh", "-c", "cat; echo err >&2"], { stdin: "piped" }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode("hello\n"));
  await writer.close();
  const out = await child.output();
  assert.equal(new TextDecoder().decode(out.stdout), "hello\n");
  assert.equal(new TextDecoder().decode(out.stderr), "err\n");
});

Deno.test("the program's exit code is the launcher's", async () => {
  assert.equal((await cli(["sh", "-c", "exit 7"])).code, 7);
  assert.equal((await cli(["-m", "0", "false"])).code, 1);
  assert.equal((await cli(["true"])).code, 0);
});

Deno.test("a program killed by a signal makes the launcher exit with 128+signal", async () => {
  assert.equal((await cli(["sh", "-c", "kill -TERM $$"])).code, 143);
  assert.equal((await cli(["sh", "-c", "kill -KILL $$"])).code, 137);
});

Deno.test("SIGTERM, SIGINT, SIGHUP and SIGQUIT to the launcher reach the program", async () => {
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT"] as const) {
    const name = signal.slice(3);
    const script =
      `trap "echo got-${name}; exit 42" ${name}; echo ready; while :; do sleep 0.05; done`;
    const child = cliCommand(["sh", "-c", script]).spawn();
    const reader = child.stdout.getReader();
    assert.ok((await readUntil(reader, "ready")).includes("ready"));
    child.kill(signal);
    const rest = await readUntil(reader, `got-${name}`);
    reader.releaseLock();
    const status = await child.status;
    await child.stderr.cancel();
    assert.ok(rest.includes(`got-${name}`), `${signal}: ${rest}`);
    assert.equal(status.code, 42, signal);
  }
});

Deno.test("a signal that kills the program ends the launcher with 128+signal, program gone", async () => {
  for (const [signal, code] of [["SIGTERM", 143], ["SIGINT", 130], ["SIGHUP", 129]] as const) {
    // $$ is the shell's pid, which `exec` hands to sleep.
    const child = cliCommand(["sh", "-c", "echo ready $$; exec sleep 30"]).spawn();
    const reader = child.stdout.getReader();
    const pid = (await readUntil(reader, "\n")).trim().split(" ")[1];
    await new Promise((resolve) => setTimeout(resolve, 50)); // let sh exec sleep
    const started = Date.now();
    child.kill(signal);
    const status = await child.status;
    reader.releaseLock();
    await child.stdout.cancel();
    await child.stderr.cancel();
    assert.equal(status.code, code, signal);
    assert.equal(status.signal, null, `${signal}: the launcher itself was killed`);
    assert.ok(Date.now() - started < 10_000, `${signal}: the program was not ended`);
    assert.equal(await exists(`/proc/${pid}`), false, `${signal}: sleep ${pid} still runs`);
  }
});

Deno.test("the program is searched on PATH", async () => {
  await inTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/bin`);
    await Deno.writeTextFile(`${dir}/bin/tm-probe`, '#!/bin/sh\necho "probe $*"\n', {
      mode: 0o755,
    });
    const env = { PATH: `/nonexistent:${dir}/bin:/usr/bin:/bin` };
    const r = await cli(["-m", "0", "tm-probe", "a", "b"], { env });
    assert.equal(r.stdout, "probe a b\n");
    assert.equal(r.code, 0);
  });
});

Deno.test("a missing program: exit 2, one error line and the hint, nothing run", async () => {
  const r = await cli(["-m", "0", "no-such-program-tm"]);
  assert.equal(r.code, 2);
  assert.equal(r.stderr, `hmctl: program "no-such-program-tm" not found in PATH\n`);
  assert.equal(r.stdout, "");
  const none = await cli(["-m", "0"]);
  assert.equal(none.code, 2);
  assert.equal(none.stderr, `hmctl: missing program\n`);
});

Deno.test("a program without execute permission: exit 2, not run", async () => {
  await inTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/prog`, `#!/bin/sh\ntouch ${dir}/ran\n`, { mode: 0o644 });
    const r = await cli(["./prog"], { cwd: dir });
    assert.equal(r.code, 2);
    assert.equal(r.stderr, `hmctl: program "./prog" is not executable\n`);
    assert.equal(await exists(`${dir}/ran`), false);
  });
});

Deno.test("a node that is not online: exit 2 naming it, program not run", async () => {
  const offline = Math.max(...topology.online) + 1;
  await inTempDir(async (dir) => {
    const r = await cli(["-m", `0,${offline}`, "sh", "-c", `touch ${dir}/ran`]);
    assert.equal(r.code, 2);
    assert.equal(
      r.stderr,
      `hmctl: invalid node "${offline}" (not online; online nodes: ${
        formatNodeList(topology.online)
      })\n`,
    );
    assert.equal(await exists(`${dir}/ran`), false);
  });
});

Deno.test("the seed's usage line `cli.ts -p 1 ./prog` works where node 1 exists", async () => {
  await inTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/prog`, '#!/bin/sh\necho "$HMALLOC_POLICY"\n', { mode: 0o755 });
    const r = await cli(["-p", "1", "./prog"], { cwd: dir });
    if (topology.allowed.includes(1) && topology.online.includes(1)) {
      assert.equal(r.stdout, "preferred:1\n");
      assert.equal(r.code, 0);
    } else {
      assert.equal(r.code, 2);
      assert.ok(r.stderr.startsWith(`hmctl: invalid node "1" (not`), r.stderr);
      assert.equal(r.stdout, "");
    }
  });
});

Deno.test("conflicting policies and bad options: exit 2 naming them, program not run", async () => {
  const cases: [string[], string][] = [
    [["-m", "0", "-i", "0"], `conflicting policies "-m" and "-i"`],
    [["--p", "0"], `ambiguous option "--p" (could be --preferred, --preferred-many)`],
    [["-x"], `invalid option "-x"`],
    [["-m", "zero"], `invalid node "zero" (not a number)`],
  ];
  for (const [options, message] of cases) {
    const r = await cli([...options, "sh", "-c", "echo ran"]);
    assert.equal(r.code, 2, options.join(" "));
    assert.equal(r.stderr, `hmctl: ${message}\n`);
    assert.equal(r.stdout, "");
  }
});

Deno.test("--help prints the full usage and exits 0; --usage the synopsis", async () => {
  for (const option of ["--help", "-?", "--he"]) {
    const r = await cli([option]);
    assert.equal(r.code, 0);
    assert.ok(r.stdout.startsWith("Usage: cli.ts [OPTION] PROGRAM [ARGS...]\n"), r.stdout);
    assert.ok(r.stdout.includes("--weighted-interleave=NODES"));
    assert.equal(r.stderr, "");
  }
  const r = await cli(["--usage"]);
  assert.equal(r.code, 0);
  assert.ok(r.stdout.startsWith("Usage: cli.ts [-?] [-m NODES]"), r.stdout);
});

/** Runs cli.ts with its stdout on /dev/full (every write fails with ENOSPC). */
async function cliToFullDisk(args: string[]): Promise<Result> {
  const quoted = [Deno.execPath(), "run", "-A", "--no-check", CLI, ...args]
    .map((a: string) => `'${a.replaceAll("'", "'\\''")}'`).join(" ");
  const out = await new Deno.Command("sh", {
    args: ["-c", `exec ${quoted} > /dev/full`],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array): string => new TextDecoder().decode(b);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}

Deno.test("output that cannot be written (stdout on /dev/full): one line, exit 1, for every subcommand", async () => {
  const commands = [
    ["--help"],
    ["--usage"],
    ["topology"],
    ["topology", "--json"],
    ["usage", String(Deno.pid)],
    ["memtier", "--help"],
  ];
  for (const args of commands) {
    const r = await cliToFullDisk(args);
    assert.equal(
      r.stderr,
      "tiermem: cannot write to stdout: No space left on device (ENOSPC)\n",
      args.join(" "),
    );
    assert.equal(r.code, 1, args.join(" "));
  }
});

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}
