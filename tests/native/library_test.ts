import assert from "node:assert/strict";
import {
  buildLibrary,
  cacheDir,
  findZig,
  HmallocLibrary,
  libraryEnvVar,
  libraryVersion,
  localBuildPath,
  locateLibrary,
  locateLibrarySync,
  type LocateOptions,
  readZigSources,
  symbols,
} from "../../ffi/library.ts";
import { platformKey, sha256Hex } from "../../ffi/prebuilt.ts";

/** A fake package: `<root>/ffi/library.ts` (the module URL) and whatever files a test writes. */
function fakePackage():
  & { root: string; moduleUrl: string; write(p: string, t: string): void }
  & Disposable {
  const root = Deno.makeTempDirSync({ prefix: "tiermem-pkg-" });
  return {
    root,
    moduleUrl: `file://${root}/ffi/library.ts`,
    write(path: string, text: string): void {
      Deno.mkdirSync(`${root}/${path}`.replace(/\/[^/]+$/, ""), { recursive: true });
      Deno.writeTextFileSync(`${root}/${path}`, text);
    },
    [Symbol.dispose](): void {
      Deno.removeSync(root, { recursive: true });
    },
  };
}

function env(vars: Record<string, string>): (name: string) => string | undefined {
  return (name: string) => vars[name];
}

const localSo = "zig-src/zig-out/lib/libhmalloc.so";

/** Writes `dist/<platform>/<name>` with `text` and a manifest listing it (sha256 of `listed`). */
async function writeDist(
  pkg: ReturnType<typeof fakePackage>,
  platform: string,
  name: string,
  text: string,
  listed: string = text,
): Promise<string> {
  pkg.write(`dist/${platform}/${name}`, text);
  const sha256 = await sha256Hex(new TextEncoder().encode(listed));
  const manifest = {
    version: libraryVersion,
    zig: "0.17.0",
    glibc: "2.31",
    cpu: "baseline",
    files: { [`${platform}/${name}`]: { sha256, bytes: text.length } },
  };
  pkg.write("dist/manifest.json", JSON.stringify(manifest));
  return sha256;
}

Deno.test("the shipped prebuilt library is verified, copied into the cache, and used before the build cache", async () => {
  using pkg = fakePackage();
  const sha = await writeDist(pkg, platformKey(), "libhmalloc.so", "prebuilt bytes");
  pkg.write("cache/libhmalloc.so", "an older build");
  const options = { env: env({}), moduleUrl: pkg.moduleUrl, cacheDir: `${pkg.root}/cache` };
  const cached = `${pkg.root}/cache/prebuilt/${sha.slice(0, 16)}/libhmalloc.so`;
  assert.deepEqual(await locateLibrary(options), { path: cached, source: "prebuilt" });
  assert.equal(Deno.readTextFileSync(cached), "prebuilt bytes");
  // A damaged cached copy is noticed and replaced from the package.
  Deno.writeTextFileSync(cached, "damaged");
  assert.deepEqual(await locateLibrary(options), { path: cached, source: "prebuilt" });
  assert.equal(Deno.readTextFileSync(cached), "prebuilt bytes");
});

Deno.test("a shipped library that does not match its checksum is refused, naming the file", async () => {
  using pkg = fakePackage();
  await writeDist(pkg, platformKey(), "libmemtier.so", "tampered", "original");
  const options: LocateOptions = {
    library: "memtier",
    env: env({}),
    moduleUrl: pkg.moduleUrl,
    cacheDir: `${pkg.root}/cache`,
  };
  await assert.rejects(locateLibrary(options), (error: Error) => {
    assert.match(
      error.message,
      new RegExp(`^file://${pkg.root}/dist/${platformKey()}/libmemtier\\.so: checksum mismatch `),
    );
    return true;
  });
});

Deno.test("no prebuilt for this platform and no Zig: the error lists every place tried", async () => {
  using pkg = fakePackage();
  await writeDist(pkg, "linux-riscv64", "libhmalloc.so", "other platform");
  const options = {
    env: env({}),
    moduleUrl: pkg.moduleUrl,
    cacheDir: `${pkg.root}/cache`,
    build: false,
  };
  await assert.rejects(locateLibrary(options), (error: Error) => {
    assert.equal(
      error.message.split("\n").slice(0, 6).join("\n"),
      [
        "libhmalloc.so not found. Looked at:",
        `  ${libraryEnvVar}: unset`,
        `  ${pkg.root}/${localSo}: missing`,
        `  prebuilt ${platformKey()}: file://${pkg.root}/dist/manifest.json: no ${platformKey()}/libhmalloc.so (none for this platform)`,
        `  ${pkg.root}/cache/libhmalloc.so: missing`,
        "  build: not tried",
      ].join("\n"),
    );
    return true;
  });
});

Deno.test("the env var wins over the local build and the cache", () => {
  using pkg = fakePackage();
  pkg.write(localSo, "local");
  pkg.write("cache/libhmalloc.so", "cache");
  pkg.write("elsewhere/libhmalloc.so", "env");
  const options: LocateOptions = {
    env: env({ [libraryEnvVar]: `${pkg.root}/elsewhere/libhmalloc.so` }),
    moduleUrl: pkg.moduleUrl,
    cacheDir: `${pkg.root}/cache`,
  };
  assert.deepEqual(locateLibrarySync(options), {
    path: `${pkg.root}/elsewhere/libhmalloc.so`,
    source: "env",
  });
});

Deno.test("an env var naming a missing file is an error naming the path, no fallback", async () => {
  using pkg = fakePackage();
  pkg.write(localSo, "local");
  const options: LocateOptions = {
    env: env({ [libraryEnvVar]: "/nonexistent/libhmalloc.so" }),
    moduleUrl: pkg.moduleUrl,
  };
  const message = `${libraryEnvVar}=/nonexistent/libhmalloc.so: no such file ` +
    "(it must name libhmalloc.so)";
  assert.throws(() => locateLibrarySync(options), { name: "Error", message });
  await assert.rejects(locateLibrary(options), { name: "Error", message });
});

Deno.test("the local build is found next to the package", () => {
  using pkg = fakePackage();
  pkg.write(localSo, "local");
  pkg.write("cache/libhmalloc.so", "cache");
  const options = { env: env({}), moduleUrl: pkg.moduleUrl, cacheDir: `${pkg.root}/cache` };
  assert.deepEqual(locateLibrarySync(options), { path: `${pkg.root}/${localSo}`, source: "local" });
  assert.equal(localBuildPath(), new URL(`../../${localSo}`, import.meta.url).pathname);
  assert.equal(localBuildPath("https://jsr.io/@tiermem/tiermem/0.1.0/ffi/library.ts"), undefined);
});

Deno.test("the cache is used when there is no local build (e.g. an https import)", () => {
  using pkg = fakePackage();
  pkg.write(`xdg/tiermem/${libraryVersion}/libhmalloc.so`, "cache");
  const options = {
    env: env({ XDG_CACHE_HOME: `${pkg.root}/xdg`, HOME: "/nonexistent" }),
    moduleUrl: "https://jsr.io/@tiermem/tiermem/0.1.0/ffi/library.ts",
  };
  assert.deepEqual(locateLibrarySync(options), {
    path: `${pkg.root}/xdg/tiermem/${libraryVersion}/libhmalloc.so`,
    source: "cache",
  });
});

Deno.test("cache dir: XDG_CACHE_HOME, else ~/.cache, else none", () => {
  assert.equal(
    cacheDir({ env: env({ XDG_CACHE_HOME: "/x", HOME: "/h" }) }),
    `/x/tiermem/${libraryVersion}`,
  );
  assert.equal(cacheDir({ env: env({ HOME: "/h" }) }), `/h/.cache/tiermem/${libraryVersion}`);
  assert.equal(cacheDir({ env: env({}) }), undefined);
});

Deno.test("nothing found: the error lists every place and says how to build or point to it", async () => {
  using pkg = fakePackage();
  const options = { env: env({}), moduleUrl: pkg.moduleUrl, cacheDir: `${pkg.root}/cache` };
  const expected = [
    "libhmalloc.so not found. Looked at:",
    `  ${libraryEnvVar}: unset`,
    `  ${pkg.root}/${localSo}: missing`,
    `  ${pkg.root}/cache/libhmalloc.so: missing`,
  ].join("\n");
  assert.throws(() => locateLibrarySync(options), (error: Error) => {
    assert.ok(error.message.startsWith(expected), error.message);
    assert.match(error.message, /deno task build/);
    assert.match(error.message, /TIERMEM_HMALLOC_LIB=\/path\/to\/libhmalloc\.so/);
    return true;
  });
  await assert.rejects(locateLibrary({ ...options, build: false }), /deno task build/);
});

Deno.test("the real package's Zig sources: build script, header, API root and its imports", async () => {
  const files = await readZigSources();
  assert.ok(files.has("build.zig"));
  assert.ok(files.has("include/hmalloc.h"));
  assert.ok(files.has("src/abi/hmalloc_api.zig"));
  // Named modules (`@import("placement")`) are followed to their folder's root and on.
  assert.ok(files.has("src/placement/placement.zig") && files.has("src/alloc/pool.zig"));
  for (const path of files.keys()) {
    assert.ok(path === "build.zig" || path === "include/hmalloc.h" || path.startsWith("src/"));
  }
  // Every file present here was reached from a root: at least the API root imports others.
  assert.ok(files.size > 3, [...files.keys()].join(" "));
  // Every file the build script names that exists (C sources too) is there.
  const buildZig = new TextDecoder().decode(files.get("build.zig"));
  for (const [, named] of buildZig.matchAll(/"(src\/[\w./-]+\.\w+)"/g)) {
    let exists = true;
    try {
      Deno.statSync(new URL(`../../zig-src/${named}`, import.meta.url));
    } catch {
      exists = false; // optional (fileExists-guarded) and not written yet
    }
    if (exists) assert.ok(files.has(named), `${named} is named by build.zig but not read`);
  }
});

// A tiny package that zig builds in seconds: a root, a nested import, a named module (whose path
// the build script does not spell out) and an embedded file.
const fakeBuildZig = `const std = @import("std");
pub fn build(b: *std.Build) void {
    const util = b.createModule(.{ .root_source_file = b.path(b.fmt("src/{s}/{s}.zig", .{ "util", "util" })) });
    const lib = b.addLibrary(.{
        .name = "hmalloc",
        .linkage = .dynamic,
        .root_module = b.createModule(.{
            .root_source_file = b.path("src/hmalloc_api.zig"),
            .target = b.standardTargetOptions(.{}),
            .optimize = b.standardOptimizeOption(.{}),
        }),
    });
    lib.root_module.addImport("util", util);
    lib.root_module.addCSourceFile(.{ .file = b.path("src/c/extra.c") });
    lib.installHeader(b.path("include/hmalloc.h"), "hmalloc.h");
    b.installArtifact(lib);
}
`;

function writeFakeZigPackage(pkg: ReturnType<typeof fakePackage>): void {
  pkg.write("zig-src/build.zig", fakeBuildZig);
  pkg.write("zig-src/include/hmalloc.h", "int hm_probe(void);\n");
  pkg.write(
    "zig-src/src/hmalloc_api.zig",
    'const util = @import("util");\nconst inner = @import("nested/inner.zig");\n' +
      'const note = @embedFile("note.txt");\nextern fn extra_value() c_int;\n' +
      "export fn hm_probe() c_int {\n" +
      "    return inner.base + util.answer.value + @as(c_int, note.len) + extra_value();\n}\n",
  );
  pkg.write(
    "zig-src/src/nested/inner.zig",
    'pub const base: c_int = @import("../base.zig").base;\n',
  );
  pkg.write("zig-src/src/base.zig", "pub const base: c_int = 38;\n");
  pkg.write("zig-src/src/util/util.zig", 'pub const answer = @import("answer.zig");\n');
  pkg.write("zig-src/src/util/answer.zig", "pub const value: c_int = 1;\n");
  pkg.write(
    "zig-src/src/c/extra.c",
    '#include "extra.h"\nint extra_value(void) { return EXTRA; }\n',
  );
  pkg.write("zig-src/src/c/extra.h", "#define EXTRA 1\n");
  pkg.write("zig-src/src/note.txt", "hi");
  pkg.write("zig-src/src/unused.zig", "this is not zig and is never read\n");
}

const zig = await findZig();

Deno.test({
  name: "no library anywhere + Zig: built from the package's sources into the cache (file: URL)",
  ignore: zig === undefined,
  async fn() {
    using pkg = fakePackage();
    writeFakeZigPackage(pkg);
    const lines: string[] = [];
    const options = {
      env: env({}),
      moduleUrl: pkg.moduleUrl,
      cacheDir: `${pkg.root}/cache/tiermem/${libraryVersion}`,
      log: (line: string) => lines.push(line),
    };
    const sources = await readZigSources(pkg.moduleUrl);
    assert.deepEqual([...sources.keys()].sort(), [
      "build.zig",
      "include/hmalloc.h",
      "src/base.zig",
      "src/c/extra.c",
      "src/c/extra.h",
      "src/hmalloc_api.zig",
      "src/nested/inner.zig",
      "src/note.txt",
      "src/util/answer.zig",
      "src/util/util.zig",
    ]);
    const location = await locateLibrary(options);
    assert.deepEqual(location, { path: `${options.cacheDir}/libhmalloc.so`, source: "built" });
    assert.match(lines[0], /building libhmalloc\.so with .* into /);
    const lib = Deno.dlopen(location.path, { hm_probe: { parameters: [], result: "i32" } });
    assert.equal(lib.symbols.hm_probe(), 42);
    lib.close();
    // The second lookup finds the cache without building.
    assert.equal(locateLibrarySync(options).source, "cache");
  },
});

Deno.test({
  name: "an https-style import: the sources are fetched relative to the module URL and built",
  ignore: zig === undefined,
  async fn() {
    using pkg = fakePackage();
    writeFakeZigPackage(pkg);
    await using server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      async (request: Request): Promise<Response> => {
        try {
          const path = new URL(request.url).pathname;
          return new Response(await Deno.readFile(`${pkg.root}${path}`));
        } catch {
          return new Response("not found", { status: 404 });
        }
      },
    );
    const moduleUrl = `http://127.0.0.1:${server.addr.port}/ffi/library.ts`;
    const cache = `${pkg.root}/cache2`;
    const path = await buildLibrary({ moduleUrl, cacheDir: cache, zig: zig ?? [], log() {} });
    assert.equal(path, `${cache}/libhmalloc.so`);
    const lib = Deno.dlopen(path, { hm_probe: { parameters: [], result: "i32" } });
    assert.equal(lib.symbols.hm_probe(), 42);
    lib.close();
  },
});

Deno.test({
  name: "a zig build failure reports zig's own error",
  ignore: zig === undefined,
  async fn() {
    using pkg = fakePackage();
    writeFakeZigPackage(pkg);
    pkg.write("zig-src/src/base.zig", "pub const base: c_int = not_declared;\n");
    await assert.rejects(
      buildLibrary({
        moduleUrl: pkg.moduleUrl,
        cacheDir: `${pkg.root}/c`,
        zig: zig ?? [],
        log() {},
      }),
      /zig build of libhmalloc\.so failed[^]*not_declared/,
    );
  },
});

Deno.test({
  name: "a library lacking hmalloc.h symbols: the error names the path and says to rebuild",
  ignore: zig === undefined,
  async fn() {
    using pkg = fakePackage();
    writeFakeZigPackage(pkg);
    const path = await buildLibrary({
      moduleUrl: pkg.moduleUrl,
      cacheDir: `${pkg.root}/c`,
      zig: zig ?? [],
      log() {},
    });
    assert.throws(() => new HmallocLibrary({ path, source: "cache" }), (error: Error) => {
      assert.match(error.message, new RegExp(`^cannot open ${path} \\(found via cache\\): `));
      assert.match(error.message, /hmalloc/);
      assert.match(error.message, /deno task build/);
      return true;
    });
  },
});

// While the allocator is being written, the local build exports only part of hmalloc.h: open the
// symbols it has (the library itself always opens all of them).
Deno.test({
  name: "the local build opens with the hmalloc.h symbols it exports so far",
  ignore: localBuildPath() === undefined || !Deno.statSync(localBuildPath() ?? "/").isFile,
  fn() {
    const path = locateLibrarySync({ env: env({}) }).path;
    const probe = Deno.dlopen(path, {});
    probe.close();
    const present = Object.fromEntries(
      Object.entries(symbols).filter(([name]) => {
        try {
          Deno.dlopen(path, { [name]: symbols[name as keyof typeof symbols] }).close();
          return true;
        } catch {
          return false;
        }
      }),
    );
    const lib = Deno.dlopen(path, present);
    lib.close();
    console.log(
      `local build exports ${Object.keys(present).length}/${
        Object.keys(symbols).length
      } hmalloc.h symbols`,
    );
  },
});
