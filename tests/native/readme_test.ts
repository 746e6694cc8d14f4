/**
 * Every code block of README.md runs, where its info string says (`tests/support/readme_blocks.ts`):
 * on this machine in the checkout, after an install into a temporary prefix, or in the 4-node VM.
 * A block fails the test when it exits non-zero; the output is in the failure message.
 */
import assert from "node:assert/strict";
import { dirname } from "node:path";
import { type ReadmeBlock, readmeBlocks } from "../support/readme_blocks.ts";
import { repoRoot, runInVm, vmTestIgnore } from "../support/vm.ts";
import { type Installed, installInto } from "../support/install_prefix.ts";

const blocks = readmeBlocks();
const denoDir = dirname(Deno.execPath());
const decoder = new TextDecoder();

/** The environment of a block: ours, minus tiermem's variables, with the pinned Deno on PATH. */
function blockEnv(
  extra: Record<string, string> = {},
  pathFirst: string[] = [],
): Record<string, string> {
  const env = Deno.env.toObject();
  for (const name of Object.keys(env)) {
    if (name.startsWith("TIERMEM_") || name.startsWith("HMALLOC_") || name.startsWith("MEMKIND_")) {
      delete env[name];
    }
  }
  delete env.LD_PRELOAD;
  env.PATH = [...pathFirst, denoDir, env.PATH ?? "/usr/bin:/bin"].join(":");
  return { ...env, ...extra };
}

async function bash(
  script: string,
  cwd: string,
  env: Record<string, string>,
): Promise<{ code: number; output: string }> {
  const out = await new Deno.Command("bash", {
    args: ["-e", "-o", "pipefail", "-c", script],
    cwd,
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, output: decoder.decode(out.stdout) + decoder.decode(out.stderr) };
}

function where(block: ReadmeBlock): string {
  return `README.md:${block.line} (\`\`\`${block.info})`;
}

Deno.test("every README code block says where it runs", () => {
  const unknown = blocks.filter((b: ReadmeBlock) => b.kind === null).map(where);
  assert.deepEqual(unknown, [], "blocks this runner does not know how to run");
  assert.ok(blocks.some((b: ReadmeBlock) => b.kind === "sh install"), "the C example's build");
  assert.ok(blocks.some((b: ReadmeBlock) => b.kind === "ts"), "the Deno example");
});

for (const block of blocks.filter((b: ReadmeBlock) => b.kind === "sh")) {
  Deno.test(`README block ${where(block)} runs in the checkout`, async () => {
    const r = await bash(block.text, repoRoot, blockEnv());
    assert.equal(r.code, 0, `${where(block)} exited ${r.code}:\n${r.output}`);
  });
}

for (const block of blocks.filter((b: ReadmeBlock) => b.kind === "ts")) {
  Deno.test(`README block ${where(block)} runs as written against the checkout`, async () => {
    // Saved in the root, so that `./mod.ts` is the checkout's; the package's own name is mapped
    // to it too, for an example written as a registry import.
    const file = `${repoRoot}/.readme-block-${block.line}.ts`;
    const map = `${repoRoot}/tests/out/readme-import-map.json`;
    await Deno.mkdir(`${repoRoot}/tests/out`, { recursive: true });
    await Deno.writeTextFile(file, block.text);
    await Deno.writeTextFile(
      map,
      JSON.stringify({
        imports: {
          "@tiermem/tiermem": `${repoRoot}/mod.ts`,
          "jsr:@tiermem/tiermem": `${repoRoot}/mod.ts`,
          "./mod.ts": `${repoRoot}/mod.ts`,
        },
      }),
    );
    try {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--no-lock", `--import-map=${map}`, file],
        cwd: repoRoot,
        env: blockEnv(),
        clearEnv: true,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      const output = decoder.decode(out.stdout) + decoder.decode(out.stderr);
      assert.equal(out.code, 0, `${where(block)} exited ${out.code}:\n${output}`);
    } finally {
      await Deno.remove(file);
    }
  });
}

let installed: Promise<Installed> | undefined;

for (const block of blocks.filter((b: ReadmeBlock) => b.kind === "sh install")) {
  Deno.test(`README block ${where(block)} runs after scripts/install.sh`, async () => {
    installed ??= installInto();
    const inst = await installed;
    const work = await Deno.makeTempDir({ prefix: "tiermem-readme-" });
    try {
      for (const file of blocks.filter((b: ReadmeBlock) => b.kind === "file")) {
        await Deno.writeTextFile(`${work}/${file.file}`, file.text);
      }
      const r = await bash(block.text, work, blockEnv(inst.env, [`${inst.prefix}/bin`]));
      assert.equal(r.code, 0, `${where(block)} exited ${r.code}:\n${r.output}`);
    } finally {
      await Deno.remove(work, { recursive: true });
    }
  });
}

Deno.test({
  name: "README blocks ```sh install: the installed prefix is removed again",
  ignore: !blocks.some((b: ReadmeBlock) => b.kind === "sh install"),
  fn: async () => {
    if (installed !== undefined) await (await installed).uninstall();
  },
});

/** Directories a `sh root` block may change, each behind an overlay that is thrown away. */
const ROOT_OVERLAYS = ["/usr/local", "/opt", "/etc"];

/** Why `sh root` blocks cannot run here, or null when they can. */
function rootSandboxProblem(): string | null {
  if (Deno.uid() !== 0) return "not root";
  const probe = new Deno.Command("unshare", {
    args: ["-m", "true"],
    stdout: "null",
    stderr: "null",
  });
  try {
    if (!probe.outputSync().success) return "unshare -m is not permitted";
  } catch {
    return "no unshare(1)";
  }
  return null;
}

for (const block of blocks.filter((b: ReadmeBlock) => b.kind === "sh root")) {
  const problem = rootSandboxProblem();
  if (problem !== null) console.log(`${where(block)} skipped: ${problem}`);
  Deno.test({
    name: `README block ${where(block)} runs as root, its system changes thrown away`,
    ignore: problem !== null,
    fn: async () => {
      const scratch = await Deno.makeTempDir({ prefix: "tiermem-root-overlay-" });
      await Deno.mkdir("/opt", { recursive: true });
      const mounts = ROOT_OVERLAYS.map((dir: string, i: number) =>
        `mkdir -p ${scratch}/u${i} ${scratch}/w${i} && mount -t overlay overlay ` +
        `-o lowerdir=${dir},upperdir=${scratch}/u${i},workdir=${scratch}/w${i} ${dir}`
      ).join(" && ");
      await Deno.writeTextFile(`${scratch}/block.sh`, block.text);
      const script = `mount --make-rprivate / && ${mounts} && ` +
        `exec bash -e -o pipefail ${scratch}/block.sh`;
      try {
        const out = await new Deno.Command("unshare", {
          args: ["-m", "bash", "-c", script],
          cwd: repoRoot,
          env: blockEnv(),
          clearEnv: true,
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
        }).output();
        const output = decoder.decode(out.stdout) + decoder.decode(out.stderr);
        assert.equal(out.code, 0, `${where(block)} exited ${out.code}:\n${output}`);
      } finally {
        await Deno.remove(scratch, { recursive: true });
      }
    },
  });
}

const vmBlocks = blocks.filter((b: ReadmeBlock) => b.kind === "sh vm");
Deno.test({
  name: `README blocks \`\`\`sh vm (${
    vmBlocks.map((b) => b.line).join(", ")
  }) run in the 4-node VM`,
  ignore: vmBlocks.length === 0 || vmTestIgnore(),
  fn: async () => {
    const prologue = `set -e -o pipefail; export HOME=\${HOME:-/root} PATH=${denoDir}:$PATH\n` +
      `cd ${repoRoot}\n`;
    const run = await runInVm(vmBlocks.map((b: ReadmeBlock) => prologue + b.text), {
      cwd: repoRoot,
      stepTimeoutSec: 900,
    });
    const failed = run.steps.map((s, i) => ({ s, block: vmBlocks[i] }))
      .filter(({ s }) => s.rc !== 0)
      .map(({ s, block }) => `${where(block)} exited ${s.rc}:\n${s.output}`);
    assert.deepEqual(failed, [], run.harness);
  },
});
