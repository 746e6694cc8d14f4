/**
 * The README's quick start on a bare machine: a Debian 12 root made with `debootstrap`
 * (minbase + git + ca-certificates, nothing else), the repository cloned into it with git, then
 * the README's two commands verbatim — the demo and the tests — each of which must install what
 * it needs and pass. The figures are each command's wall time.
 *
 * Runs as root where debootstrap exists (always in CI); elsewhere it is skipped, saying why.
 * Inside the bare root the whole suite runs again, this test excluded (TIERMEM_IN_BARE_ROOT).
 * The debootstrap tarball is cached (~/.cache/tiermem/bare-root/) to save ~1.5 min a run.
 *
 * What is copied into the root is this workplace's, not a user's: its CA certificates, registry
 * settings (pip, npm, apt) and resolver, without which the package registries cannot be reached
 * here.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import $ from "dax";
import { repoRoot } from "../support/vm.ts";

const inCi = Deno.env.get("CI") === "true";
const nested = Deno.env.get("TIERMEM_IN_BARE_ROOT") === "1";

async function skipReason(): Promise<string | undefined> {
  if (nested) return "already inside the bare root";
  if (Deno.uid() !== 0) return "needs root (debootstrap, chroot, mounts)";
  if (!await $.commandExists("debootstrap")) return "debootstrap is not installed";
  return undefined;
}

const reason = await skipReason();
if (reason !== undefined && !nested) {
  console.log(
    `bare-root quick-start test skipped: ${reason}${inCi ? "" : " (it always runs in CI)"}`,
  );
}

const mirror = "http://deb.debian.org/debian";
const tarball = join(
  Deno.env.get("HOME") ?? "/root",
  ".cache/tiermem/bare-root/bookworm-minbase-git.tgz",
);

/** The workplace's files that reaching the registries needs (copied when present). */
const workplaceFiles = [
  "/etc/resolv.conf",
  "/etc/pip.conf",
  "/etc/apt/apt.conf.d/99artifact-registry",
];

async function makeRoot(): Promise<string> {
  await Deno.mkdir(join(tarball, ".."), { recursive: true });
  if (!await $.path(tarball).exists()) {
    const work = await Deno.makeTempDir({ prefix: "tiermem-debootstrap-" });
    await $`debootstrap --variant=minbase --include=git,ca-certificates --make-tarball=${tarball}.tmp bookworm ${work} ${mirror}`
      .quiet();
    await Deno.rename(`${tarball}.tmp`, tarball);
    // debootstrap --make-tarball removes its work directory itself.
    await Deno.remove(work, { recursive: true }).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
  }
  const root = await Deno.makeTempDir({ dir: "/var/tmp", prefix: "tiermem-bare-root-" });
  await $`debootstrap --variant=minbase --include=git,ca-certificates --unpack-tarball=${tarball} bookworm ${root} ${mirror}`
    .quiet();
  for (const file of workplaceFiles) {
    if (await $.path(file).exists()) {
      await Deno.mkdir(join(root, file, ".."), { recursive: true });
      await Deno.copyFile(file, join(root, file));
    }
  }
  const home = Deno.env.get("HOME") ?? "/root";
  if (await $.path(join(home, ".npmrc")).exists()) {
    await Deno.copyFile(join(home, ".npmrc"), join(root, "root/.npmrc"));
  }
  const cas = "/usr/local/share/ca-certificates";
  if (await $.path(cas).exists()) {
    await $`/bin/cp -a ${cas}/. ${join(root, cas)}/`;
    await $`chroot ${root} update-ca-certificates`.quiet();
  }
  for (
    const [source, target, type] of [
      ["proc", "proc", "proc"],
      ["sysfs", "sys", "sysfs"],
      ["/dev", "dev", "bind"],
      ["/dev/pts", "dev/pts", "bind"],
    ]
  ) {
    await $`mount ${type === "bind" ? ["--bind"] : ["-t", type]} ${source} ${join(root, target)}`;
  }
  return root;
}

async function removeRoot(root: string): Promise<void> {
  for (const target of ["dev/pts", "dev", "sys", "proc"]) {
    await $`umount -l ${join(root, target)}`.noThrow().quiet();
  }
  await $`rm -rf --one-file-system ${root}`.noThrow();
}

/** Runs `command` in the cloned checkout inside the root; returns status, output, seconds. */
async function inRoot(root: string, command: string) {
  const started = performance.now();
  // The environment of a fresh login, plus the workplace's CA settings.
  const env: Record<string, string> = {
    PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    HOME: "/root",
    LANG: "C.UTF-8",
    CI: "true",
    TIERMEM_IN_BARE_ROOT: "1",
  };
  for (const name of ["SSL_CERT_FILE", "SSL_CERT_DIR", "NODE_EXTRA_CA_CERTS", "PIP_CERT"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  const out = await new Deno.Command("chroot", {
    args: [root, "/bin/bash", "-c", `cd /root/tiermem && ${command}`],
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  return { code: out.code, text, seconds: (performance.now() - started) / 1000 };
}

/** The two commands of the README's Quick start, verbatim. */
function quickStartCommands(): string[] {
  const readme = Deno.readTextFileSync(join(repoRoot, "README.md"));
  const section = readme.split(/^## /m).find((s) => s.startsWith("Quick start"));
  assert.ok(section !== undefined, "README.md has a Quick start section");
  const block = section.match(/```sh[^\n]*\n([^]*?)```/)?.[1];
  assert.ok(block !== undefined, "the Quick start has a sh block");
  const commands = block.split("\n").map((l) => l.replace(/\s+#.*$/, "").trim()).filter((l) =>
    l !== ""
  );
  assert.equal(commands.length, 2, `the Quick start has exactly two commands: ${block}`);
  return commands;
}

Deno.test({
  name: "on a bare Debian 12 root with only git, the README's two quick-start commands install " +
    "everything they need and pass",
  ignore: reason !== undefined,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const [demo, tests] = quickStartCommands();
    const root = await makeRoot();
    try {
      // The checkout as a user gets it: a git clone of this repository's HEAD.
      const clone = await new Deno.Command("git", {
        args: ["clone", "-q", "--no-hardlinks", repoRoot, join(root, "root/tiermem")],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(clone.code, 0, new TextDecoder().decode(clone.stderr));
      const demoRun = await inRoot(root, demo);
      await Deno.writeTextFile(join(repoRoot, "tests/out/bare-root-demo.log"), demoRun.text);
      console.log(
        `bare root: \`${demo}\` took ${demoRun.seconds.toFixed(0)} s, exit ${demoRun.code}`,
      );
      assert.equal(demoRun.code, 0, demoRun.text.slice(-3000));
      assert.match(demoRun.text, /hmalloc pool\s+513\.1/);
      const testRun = await inRoot(root, tests);
      await Deno.writeTextFile(join(repoRoot, "tests/out/bare-root-test.log"), testRun.text);
      console.log(
        `bare root: \`${tests}\` took ${testRun.seconds.toFixed(0)} s, exit ${testRun.code}`,
      );
      // The closing line of test.sh's stdout (the text is stdout, then stderr).
      const summary = [...testRun.text.matchAll(/^\d+ passed, \d+ failed$/gm)].at(-1)?.[0] ?? "";
      console.log(`bare root: ${summary}`);
      // On failure: the end of the failed tests' errors and their names (test.sh's `failed:`
      // lines), short enough to stay in view at the end of a CI log.
      const failedLines = testRun.text.split("\n").filter((l) => l.startsWith("failed: "));
      const errorsEnd = testRun.text.lastIndexOf("\n FAILURES");
      const errors = errorsEnd < 0
        ? ""
        : testRun.text.slice(Math.max(0, errorsEnd - 2500), errorsEnd);
      assert.match(summary, /^\d+ passed, 0 failed$/, `${errors}\n${failedLines.join("\n")}`);
      assert.equal(testRun.code, 0);
    } finally {
      await removeRoot(root);
    }
  },
});
