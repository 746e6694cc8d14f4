/**
 * The shipped binaries (`deno task dist`) and what a Deno user gets with no Zig: portable
 * instructions, an aarch64 build that runs, and the package imported over HTTP — the README's
 * Deno example and `cli.ts memtier` — running on the prebuilt library after its checksum was
 * verified, with a tampered binary refused.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import $ from "dax";
import { repoRoot } from "../support/vm.ts";
import { buildDist } from "../../scripts/dist.ts";
import type { DistManifest } from "../../ffi/prebuilt.ts";

const inCi = Deno.env.get("CI") === "true";

/** What a tool needs to run here, or why it cannot (a failure in CI, a skip elsewhere). */
async function missingTool(command: string): Promise<string | undefined> {
  return await $.commandExists(command) ? undefined : `${command} is not installed`;
}

/** One dist build for the whole file, into a temporary package copy served over HTTP. */
let packageDir: Promise<{ root: string; manifest: DistManifest }> | undefined;

/** The publish file set (as `deno publish --dry-run` lists it), copied to a temp dir + dist/. */
function publishedPackage(): Promise<{ root: string; manifest: DistManifest }> {
  packageDir ??= (async () => {
    const root = await Deno.makeTempDir({ prefix: "tiermem-pkg-" });
    const listing = await $`${Deno.execPath()} publish --dry-run --allow-dirty`.cwd(repoRoot)
      .env({ NO_COLOR: "1" }).captureCombined().noThrow();
    const prefix = `file://${repoRoot}/`;
    const files = [...listing.combined.matchAll(/(file:\/\/\S+)/g)].map((m) => m[1])
      .filter((url) => url.startsWith(prefix) && !url.startsWith(`${prefix}dist/`));
    assert.ok(files.some((f) => f.endsWith("/mod.ts")), listing.combined);
    for (const url of files) {
      const rel = decodeURIComponent(url.slice(prefix.length));
      await Deno.mkdir(join(root, rel, ".."), { recursive: true });
      await Deno.copyFile(join(repoRoot, rel), join(root, rel));
    }
    const manifest = await buildDist(join(root, "dist"));
    return { root, manifest };
  })();
  return packageDir;
}

/** A static file server on 127.0.0.1 for `root`; closes with the scope. */
function serve(root: string): Deno.HttpServer<Deno.NetAddr> & AsyncDisposable {
  return Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (request: Request): Promise<Response> => {
      try {
        const path = decodeURIComponent(new URL(request.url).pathname);
        if (path.includes("..")) return new Response("bad path", { status: 400 });
        return new Response(await Deno.readFile(join(root, path)));
      } catch {
        return new Response("not found", { status: 404 });
      }
    },
  );
}

/** An environment with no tiermem variables, no Zig anywhere on PATH, and an empty cache. */
function bareEnv(home: string): Record<string, string> {
  return {
    PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    HOME: home,
    DENO_DIR: join(home, "deno"),
    NO_COLOR: "1",
  };
}

/** The README's Deno example, importing the package from `base` instead of `./mod.ts`. */
function readmeDenoExample(base: string): string {
  const readme = Deno.readTextFileSync(join(repoRoot, "README.md"));
  const block = [...readme.matchAll(/```ts\n([^]*?)```/g)].map((m) => m[1])
    .find((code) => code.includes(`from "./mod.ts"`));
  assert.ok(block !== undefined, "README.md has a ```ts block importing ./mod.ts");
  return block.replaceAll(`from "./mod.ts"`, `from "${base}/mod.ts"`);
}

async function run(command: string[], env: Record<string, string>, cwd: string) {
  const out = await new Deno.Command(command[0], {
    args: command.slice(1),
    env,
    clearEnv: true,
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}

/** Non-baseline x86-64 instructions: SSE3 and later, BMI, AVX (VEX/EVEX: `v…`), AVX-512. */
const beyondBaseline = new RegExp(
  String.raw`\s(lddqu|movddup|movs[hl]dup|addsubp[sd]|hsubp[sd]|haddp[sd]|fisttp|` + // SSE3
    String.raw`pshufb|palignr|pabs[bwd]|phadd|phsub|psign|pmulhrsw|pmaddubsw|` + // SSSE3
    String
      .raw`ptest|pblend|blendv?p|pmin(sb|sd|uw|ud)|pmax(sb|sd|uw|ud)|pmovzx|pmovsx|round[sp][sd]|` +
    String.raw`pextr[bdq]|pinsr[bdq]|extractps|insertps|dpp[sd]|mpsadbw|pcmpeqq|packusdw|` + // SSE4.1
    String.raw`pcmp[ei]str[im]|crc32|pcmpgtq|popcnt|lzcnt|andn|bextr|blsi|blsmsk|blsr|bzhi|` +
    String.raw`mulx|pdep|pext|rorx|sarx|shlx|shrx|movbe|adcx|adox|rdrand|rdseed|` +
    String.raw`v[a-z0-9]+)\s`, // every VEX/EVEX instruction (AVX, AVX2, FMA, F16C, AVX-512)
);

Deno.test({
  name: "the shipped x86_64 libraries use no instruction beyond the x86-64 baseline",
  ignore: !inCi && await missingTool("objdump") !== undefined,
  async fn() {
    const { root, manifest } = await publishedPackage();
    assert.equal(manifest.cpu, "baseline");
    for (const name of ["libhmalloc.so", "libmemtier.so"]) {
      const path = join(root, "dist", "linux-x86_64", name);
      const header = await $`readelf -h ${path}`.text();
      assert.match(header, /Machine:\s+Advanced Micro Devices X86-64/);
      const text = await $`objdump -d --no-show-raw-insn ${path}`.text();
      const offending = text.split("\n").filter((line) => beyondBaseline.test(` ${line} `));
      assert.deepEqual(offending.slice(0, 5), [], `${name} uses non-baseline instructions`);
      // The build really is stripped and needs nothing newer than glibc 2.31.
      const symbols = await $`readelf -s --wide ${path}`.text();
      assert.doesNotMatch(symbols, /\.symtab/);
      const versions = [...(await $`objdump -T ${path}`.text()).matchAll(/GLIBC_(\d+)\.(\d+)/g)]
        .map((m) => Number(m[1]) * 100 + Number(m[2]));
      assert.ok(Math.max(...versions) <= 231, `needs glibc ${Math.max(...versions)}`);
    }
  },
});

Deno.test({
  name:
    "the shipped aarch64 build is an aarch64 ELF, and runs under qemu-user: hmalloc and memtier",
  ignore: !inCi && await missingTool("qemu-aarch64") !== undefined,
  async fn() {
    const { root } = await publishedPackage();
    const lib = join(root, "dist", "linux-aarch64");
    for (const name of ["libhmalloc.so", "libmemtier.so"]) {
      assert.match(await $`readelf -h ${join(lib, name)}`.text(), /Machine:\s+AArch64/);
    }
    const sysroot = "/usr/aarch64-linux-gnu";
    assert.ok(
      await $.path(sysroot).exists(),
      `${sysroot} missing (apt-get install libc6-arm64-cross)`,
    );
    const work = await Deno.makeTempDir({ prefix: "tiermem-a64-" });
    await Deno.symlink(join(lib, "libhmalloc.so"), join(work, "libhmalloc.so.1"));
    const zig = [join(repoRoot, ".tools/venv/bin/python3"), "-m", "ziglang"];
    const target = ["-target", "aarch64-linux-gnu.2.31"];
    await $`${zig} cc ${target} -I zig-src/include tests/c/aarch64_smoke.c -L ${lib} -lhmalloc -o ${
      join(work, "smoke")
    }`.cwd(repoRoot);
    const smoke = await $`qemu-aarch64 -L ${sysroot} -E LD_LIBRARY_PATH=${work} ${
      join(work, "smoke")
    }`.text();
    assert.equal(smoke, "hmalloc on aarch64: ok");
    // An unmodified aarch64 program under the interposer: sort(1)'s job, written in C.
    await Deno.writeTextFile(
      join(work, "sorter.c"),
      `#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n` +
        `static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }\n` +
        `int main(void) { char *v[20000]; for (int i = 0; i < 20000; i++) { v[i] = malloc(16); ` +
        `snprintf(v[i], 16, "%05d", (i * 7919) % 20000); } qsort(v, 20000, sizeof *v, cmp); ` +
        `printf("%s %s\\n", v[0], v[19999]); for (int i = 0; i < 20000; i++) free(v[i]); return 0; }\n`,
    );
    await $`${zig} cc ${target} -O2 ${join(work, "sorter.c")} -o ${join(work, "sorter")}`;
    const sorted = await $`qemu-aarch64 -L ${sysroot} -E ${`LD_PRELOAD=${
      join(lib, "libmemtier.so")
    }`} ${join(work, "sorter")}`.env({ MEMKIND_MEM_TIERS: "KIND:DRAM,RATIO:1;POLICY:STATIC_RATIO" })
      .text();
    assert.equal(sorted, "00000 19999");
    await Deno.remove(work, { recursive: true });
  },
});

Deno.test({
  name: "imported over HTTP with no Zig and no environment variables, the README's Deno example " +
    "runs on the prebuilt library, verified and cached",
  async fn() {
    const { root, manifest } = await publishedPackage();
    await using server = serve(root);
    const base = `http://127.0.0.1:${server.addr.port}`;
    const home = await Deno.makeTempDir({ prefix: "tiermem-home-" });
    const script = join(home, "example.ts");
    await Deno.writeTextFile(script, readmeDenoExample(base));
    const env = bareEnv(home);
    const zig = await run(["sh", "-c", "command -v zig || python3 -m ziglang version"], env, home);
    assert.notEqual(zig.code, 0, `Zig is reachable in the bare environment: ${zig.stdout}`);
    const r = await run([Deno.execPath(), "run", "-A", script], env, home);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /\{ "0": 16384 \}|\[ 16384 \]|16384/);
    const sha = manifest.files["linux-x86_64/libhmalloc.so"].sha256;
    const cached = join(home, ".cache/tiermem", manifest.version, "prebuilt", sha.slice(0, 16));
    assert.ok(await $.path(join(cached, "libhmalloc.so")).exists(), `nothing cached in ${cached}`);

    // The CLI from the same URL: memtier needs libmemtier.so, also prebuilt.
    const memtier = await run(
      [
        Deno.execPath(),
        "run",
        "-A",
        `${base}/cli.ts`,
        "memtier",
        "--tiers",
        "DRAM:1",
        "python3",
        "-c",
        "print(1)",
      ],
      env,
      home,
    );
    assert.equal(memtier.code, 0, memtier.stderr);
    assert.equal(memtier.stdout, "1\n");
    assert.ok(await $.path(join(home, ".cache/tiermem", manifest.version, "prebuilt")).exists());
    await Deno.remove(home, { recursive: true });
  },
});

Deno.test({
  name: "a shipped binary whose checksum differs from the manifest is refused, naming the file",
  async fn() {
    const { root } = await publishedPackage();
    const tampered = await Deno.makeTempDir({ prefix: "tiermem-tampered-" });
    await $`/bin/cp -a ${root}/. ${tampered}`;
    const so = join(tampered, "dist", "linux-x86_64", "libhmalloc.so");
    const bytes = await Deno.readFile(so);
    bytes[bytes.length - 1] ^= 0xff;
    await Deno.writeFile(so, bytes);
    await using server = serve(tampered);
    const base = `http://127.0.0.1:${server.addr.port}`;
    const home = await Deno.makeTempDir({ prefix: "tiermem-home-" });
    const script = join(home, "example.ts");
    await Deno.writeTextFile(script, readmeDenoExample(base));
    const r = await run([Deno.execPath(), "run", "-A", script], bareEnv(home), home);
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      new RegExp(
        `${base}/dist/linux-x86_64/libhmalloc\\.so: checksum mismatch \\(manifest sha256 [0-9a-f]{64}, file [0-9a-f]{64}\\): refusing to load it`,
      ),
    );
    assert.equal(r.stdout, "");
    await Deno.remove(home, { recursive: true });
    await Deno.remove(tampered, { recursive: true });
  },
});
