import assert from "node:assert/strict";
import { findProgram, launch, LaunchError, signalExitCode } from "../../cli/launch.ts";

/** A temp dir with `bin1/` (a non-executable `tool`) and `bin2/` (an executable `tool`). */
function withBins(body: (dir: string) => void | Promise<void>): () => Promise<void> {
  return async () => {
    const dir = Deno.makeTempDirSync({ prefix: "launch_test" });
    try {
      Deno.mkdirSync(`${dir}/bin1`);
      Deno.mkdirSync(`${dir}/bin2`);
      Deno.mkdirSync(`${dir}/bin2/adir`);
      Deno.writeTextFileSync(`${dir}/bin1/tool`, "#!/bin/sh\necho one\n", { mode: 0o644 });
      Deno.writeTextFileSync(`${dir}/bin2/tool`, "#!/bin/sh\necho two\n", { mode: 0o755 });
      Deno.writeTextFileSync(`${dir}/bin1/plain`, "x\n", { mode: 0o644 });
      await body(dir);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  };
}

function launchError(fn: () => unknown, message: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof LaunchError, String(e));
    assert.equal(e.message, message);
    return true;
  });
}

Deno.test(
  "PATH search takes the first executable file, skipping non-executable ones and directories",
  withBins((dir) => {
    assert.equal(findProgram("tool", `${dir}/bin1:${dir}/bin2`), `${dir}/bin2/tool`);
    assert.equal(findProgram("tool", `/nonexistent:${dir}/bin2/:${dir}/bin1`), `${dir}/bin2/tool`);
    launchError(() => findProgram("adir", `${dir}/bin2`), `program "adir" not found in PATH`);
  }),
);

Deno.test(
  "a name found only without execute permission is reported as not executable",
  withBins((dir) => {
    launchError(
      () => findProgram("plain", `${dir}/bin1:${dir}/bin2`),
      `program "plain" is not executable (${dir}/bin1/plain)`,
    );
  }),
);

Deno.test("a name found nowhere on PATH is an error naming it", () => {
  launchError(
    () => findProgram("no-such-program-tm", "/usr/bin:/bin"),
    `program "no-such-program-tm" not found in PATH`,
  );
  launchError(() => findProgram("", "/usr/bin"), `program "" not found`);
});

Deno.test(
  "an empty PATH entry means the current directory",
  withBins((dir) => {
    const cwd = Deno.cwd();
    Deno.chdir(`${dir}/bin2`);
    try {
      assert.equal(findProgram("tool", "/nonexistent::/usr/bin"), "./tool");
    } finally {
      Deno.chdir(cwd);
    }
  }),
);

Deno.test(
  "a name with a slash is used as given, never searched",
  withBins((dir) => {
    assert.equal(findProgram(`${dir}/bin2/tool`, ""), `${dir}/bin2/tool`);
    launchError(
      () => findProgram(`${dir}/bin1/tool`, `${dir}/bin2`),
      `program "${dir}/bin1/tool" is not executable`,
    );
    launchError(() => findProgram(`${dir}/nope`, `${dir}/bin2`), `program "${dir}/nope" not found`);
    launchError(
      () => findProgram(`${dir}/bin2/adir`, ""),
      `program "${dir}/bin2/adir" is a directory`,
    );
    launchError(() => findProgram("./tool", `${dir}/bin2`), `program "./tool" not found`);
  }),
);

Deno.test("a signal's exit status is 128 plus its Linux number", () => {
  assert.equal(signalExitCode("SIGHUP"), 129);
  assert.equal(signalExitCode("SIGINT"), 130);
  assert.equal(signalExitCode("SIGKILL"), 137);
  assert.equal(signalExitCode("SIGSEGV"), 139);
  assert.equal(signalExitCode("SIGTERM"), 143);
});

Deno.test("launch resolves to the program's exit code and 128+signal", async () => {
  const env = { PATH: "/usr/bin:/bin" };
  assert.equal(await launch("sh", ["-c", "exit 7"], env), 7);
  assert.equal(await launch("sh", ["-c", "exit 0"], env), 0);
  assert.equal(await launch("sh", ["-c", "kill -KILL $$"], env), 137);
});

Deno.test("launch gives the program exactly the environment passed", async () => {
  const out = await Deno.makeTempFile();
  try {
    const code = await launch(
      "sh",
      ["-c", `echo "$A|$HOME" > "$1"`, "sh", out],
      { PATH: "/usr/bin:/bin", A: "x" },
    );
    assert.equal(code, 0);
    assert.equal(Deno.readTextFileSync(out), "x|\n");
  } finally {
    Deno.removeSync(out);
  }
});

Deno.test("launch throws LaunchError for a missing program and runs nothing", async () => {
  await assert.rejects(
    launch("no-such-program-tm", [], { PATH: "/usr/bin:/bin" }),
    (e: unknown) => e instanceof LaunchError && e.program === "no-such-program-tm",
  );
});
