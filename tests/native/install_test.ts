/**
 * `bash scripts/install.sh --prefix TMP` for real (issue 10, "An installed command"): the README's
 * C example built through pkg-config and run, every man page rendered without a warning, the
 * installed hmctl and memtier behaving like `tiermem` / `tiermem memtier`, and `--uninstall`
 * leaving the prefix exactly as it was (a file of the user's in it included).
 */
import assert from "node:assert/strict";
import { type Installed, installInto, installScript } from "../support/install_prefix.ts";
import { readmeBlocks } from "../support/readme_blocks.ts";
import { MAN_PAGES } from "../../scripts/install_plan.ts";

const decoder = new TextDecoder();

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(
  cmd: string,
  args: readonly string[],
  opts: { cwd?: string; env?: Record<string, string> } = {},
): Promise<Result> {
  const out = await new Deno.Command(cmd, {
    args: [...args],
    cwd: opts.cwd,
    env: {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      HOME: Deno.env.get("HOME") ?? "/",
      ...opts.env,
    },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** Every file, link and directory under `dir`, relative, with each link's target. */
async function tree(dir: string, base = dir): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const path = `${dir}/${e.name}`;
    const rel = path.slice(base.length + 1);
    if (e.isSymlink) out.push(`${rel} -> ${await Deno.readLink(path)}`);
    else if (e.isDirectory) out.push(`${rel}/`, ...(await tree(path, base)));
    else out.push(rel);
  }
  return out.sort();
}

/** One prefix for the whole file: a pre-existing user file in it must survive the uninstall. */
const prefix = await Deno.makeTempDir({ prefix: "tiermem-install-test-" });
await Deno.mkdir(`${prefix}/bin`);
await Deno.writeTextFile(`${prefix}/bin/users-own-tool`, "#!/bin/sh\n");
const before = await tree(prefix);
let installation: Promise<Installed> | undefined;
function installed(): Promise<Installed> {
  installation ??= installInto(prefix);
  return installation;
}

Deno.test("install: the layout of PREFIX (soname links, pkg-config, man pages)", async () => {
  const inst = await installed();
  const files = new Set(await tree(inst.prefix));
  for (
    const expected of [
      "bin/tiermem",
      "bin/hmctl",
      "bin/memtier",
      "lib/libhmalloc.so.1.0.0",
      "lib/libhmalloc.so.1 -> libhmalloc.so.1.0.0",
      "lib/libhmalloc.so -> libhmalloc.so.1",
      "lib/libmemtier.so",
      "include/hmalloc.h",
      "lib/pkgconfig/hmalloc.pc",
      "lib/tiermem/deno",
      "lib/tiermem/install-manifest.json",
      "share/man/man3/hmalloc.3",
      "share/man/man3/hfree.3",
      "share/man/man8/hmctl.8",
      "share/man/man1/tiermem.1",
      "share/man/man7/libmemtier.7",
    ]
  ) assert.ok(files.has(expected), `${expected} missing; installed:\n${[...files].join("\n")}`);
  const soname = await run("readelf", ["-d", `${inst.prefix}/lib/libhmalloc.so.1.0.0`]);
  assert.match(soname.stdout, /\(SONAME\)\s+Library soname: \[libhmalloc\.so\.1\]/);
  const pc = await run("pkg-config", ["--cflags", "--libs", "hmalloc"], { env: inst.env });
  assert.equal(pc.code, 0, pc.stderr);
  assert.equal(
    pc.stdout.trim(),
    `-I${inst.prefix}/include -L${inst.prefix}/lib -lhmalloc -Wl,-rpath,${inst.prefix}/lib`,
  );
});

Deno.test("install: the README's C example builds with pkg-config and runs on this machine", async () => {
  const inst = await installed();
  const example = readmeBlocks().find((b) => b.file === "ex.c");
  assert.ok(example !== undefined, "README has no ```c file=ex.c block");
  const work = await Deno.makeTempDir({ prefix: "tiermem-ex-" });
  try {
    await Deno.writeTextFile(`${work}/ex.c`, example.text);
    const cc = await run("bash", [
      "-c",
      "cc -Wall -Wextra -Werror ex.c $(pkg-config --cflags --libs hmalloc) -o ex",
    ], {
      cwd: work,
      env: inst.env,
    });
    assert.equal(cc.code, 0, cc.stderr);
    // No LD_LIBRARY_PATH: the rpath from hmalloc.pc finds the installed library.
    const ldd = await run("ldd", [`${work}/ex`]);
    assert.match(
      ldd.stdout,
      new RegExp(`libhmalloc\\.so\\.1 => ${inst.prefix}/lib/libhmalloc\\.so\\.1 `),
    );
    const pages = 64 * 1024 * 1024 /
      Number(
        decoder.decode(new Deno.Command("getconf", { args: ["PAGESIZE"] }).outputSync().stdout)
          .trim(),
      );
    const onNode0 = await run(`${work}/ex`, ["0"]);
    assert.deepEqual(onNode0, {
      code: 0,
      stdout: `${pages} of ${pages} pages on node 0\n`,
      stderr: "",
    });
    const underHmctl = await run(`${inst.prefix}/bin/hmctl`, ["-m", "0", `${work}/ex`, "0"]);
    assert.deepEqual(underHmctl, onNode0);
    const online = Deno.readTextFileSync("/sys/devices/system/node/online").trim();
    if (online === "0") {
      // One node: hm_pool_create("bind:2") returns NULL, and the example says why.
      const missing = await run(`${work}/ex`, []);
      assert.deepEqual(missing, {
        code: 1,
        stdout: "",
        stderr: `hm_pool_create("bind:2"): invalid policy "bind:2": node 2 is not online\n`,
      });
    }
  } finally {
    await Deno.remove(work, { recursive: true });
  }
});

Deno.test("install: every man page renders with groff -ww and passes mandoc -T lint", async () => {
  const inst = await installed();
  const names = MAN_PAGES.flatMap((p) => [p.file, ...p.aliases]);
  for (const name of names) {
    const section = name.slice(name.lastIndexOf(".") + 1);
    const path = `${inst.prefix}/share/man/man${section}/${name}`;
    // man -l follows the .so links of the aliases, from the page's man directory.
    const man = await run("man", ["--warnings=w", "-l", path], {
      cwd: `${inst.prefix}/share/man`,
      env: { MANWIDTH: "80" },
    });
    assert.equal(man.code, 0, `${name}: ${man.stderr}`);
    assert.equal(man.stderr, "", `${name}: warnings`);
    assert.ok(man.stdout.includes("SEE ALSO"), `${name} renders no SEE ALSO`);
    const page = MAN_PAGES.find((p) => p.file === name);
    if (page === undefined) continue;
    const groff = await run("groff", ["-ww", "-man", "-Tutf8", path]);
    assert.equal(groff.stderr, "", `${name}: groff warnings`);
    const lint = await run("mandoc", ["-T", "lint", "-W", "warning", path]);
    assert.deepEqual([lint.code, lint.stdout + lint.stderr], [0, ""], `${name}: mandoc -T lint`);
    assert.ok(man.stdout.includes("scripts/install.sh"), `${name}: SEE ALSO names the installer`);
  }
});

Deno.test("install: hmctl -m 0 true and memtier --tiers DRAM:1 true exit 0, errors are one line", async () => {
  const inst = await installed();
  const bin = `${inst.prefix}/bin`;
  assert.deepEqual(await run(`${bin}/hmctl`, ["-m", "0", "true"]), {
    code: 0,
    stdout: "",
    stderr: "",
  });
  assert.deepEqual(await run(`${bin}/memtier`, ["--tiers", "DRAM:1", "true"]), {
    code: 0,
    stdout: "",
    stderr: "",
  });
  const policy = await run(`${bin}/tiermem`, [
    "-m",
    "0",
    "sh",
    "-c",
    "echo $HMALLOC_POLICY $TIERMEM_MEMTIER_LIB",
  ]);
  assert.deepEqual(policy, {
    code: 0,
    stdout: `bind:0 ${inst.prefix}/lib/libmemtier.so\n`,
    stderr: "",
  });
  const bad = await run(`${bin}/hmctl`, ["-m", "1000", "true"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^hmctl: invalid node "1000"[^\n]*\n$/);
  // hmctl has no subcommands, as SK hynix's: `hmctl memtier` runs a program named memtier.
  const hmctlSub = await run(`${bin}/hmctl`, ["topology"], { env: { PATH: "/usr/bin:/bin" } });
  assert.deepEqual(hmctlSub, {
    code: 2,
    stdout: "",
    stderr: `hmctl: program "topology" not found in PATH\n`,
  });
  const help = await run(`${bin}/memtier`, ["--help"]);
  assert.ok(help.stdout.startsWith("Usage: memtier [OPTION]"), help.stdout);
  const hmctlHelp = await run(`${bin}/hmctl`, ["--help"]);
  assert.ok(hmctlHelp.stdout.startsWith("Usage: hmctl [OPTION]"), hmctlHelp.stdout);
});

Deno.test("install: a second install replaces the first; a foreign file in the way is refused", async () => {
  const inst = await installed();
  await installScript(["--prefix", inst.prefix]);
  const other = await Deno.makeTempDir({ prefix: "tiermem-install-conflict-" });
  try {
    await Deno.mkdir(`${other}/include`);
    await Deno.writeTextFile(`${other}/include/hmalloc.h`, "/* someone else's */\n");
    await assert.rejects(
      installScript(["--prefix", other]),
      (e: Error) =>
        e.message.includes(
          `not overwriting files tiermem did not install: ${other}/include/hmalloc.h`,
        ),
    );
    assert.equal(await Deno.readTextFile(`${other}/include/hmalloc.h`), "/* someone else's */\n");
    assert.deepEqual(await tree(other), ["include/", "include/hmalloc.h"]);
  } finally {
    await Deno.remove(other, { recursive: true });
  }
});

Deno.test("install: --uninstall leaves the prefix exactly as it was", async () => {
  const inst = await installed();
  const log = await inst.uninstall();
  assert.match(log, /install: removed \d+ files of tiermem/);
  assert.deepEqual(await tree(prefix), before);
  await assert.rejects(
    installScript(["--prefix", prefix, "--uninstall"]),
    /no tiermem installation/,
  );
  await Deno.remove(prefix, { recursive: true });
});
