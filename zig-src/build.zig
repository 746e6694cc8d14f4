//! Build for tiermem's native libraries.
//!
//!   zig build                      libhmalloc.so (+ libmemtier.so) and hmalloc.h into zig-out/
//!   zig build -Doptimize=fast      the release build the project ships and benchmarks
//!   zig build test                 every `test "..."` block under src/
//!   zig build test -Dtest-file=policy.zig    only that file's tests (or placement/policy.zig)
//!   zig build fuzz                 the libFuzzer binaries of src/*/*_fuzz.zig into zig-out/fuzz/
//!
//! Each folder of src/ with a root file of its own name (`placement/placement.zig`) is a
//! named module (`@import("placement")`); files import within their folder by path and across
//! folders by module name only. Every module may import every other (the build does not
//! enforce the direction; ARCHITECTURE.md says which folders each may import, and
//! tests/unit/tidy_test.ts holds them to it). `abi/` is not a module: its files are the libraries'
//! roots.
//!
//! Unit tests live beside the code they test. The test step builds one test binary per folder
//! module (its root references every file of the folder, so their tests run), one per
//! `*_test.zig` (a root of its own that imports the modules it tests by name: a published
//! package leaves these out, and a module root must not import a file that may be missing),
//! and one per library root. A test binary runs only the tests of its root module, so each
//! test runs once. Files in src/testdata/ are importable by their name in `*_test.zig`
//! (`@embedFile("policy_names.json")`). A new folder or file needs no edit here.
const std = @import("std");

/// The C sources of a folder module, named here (not found by walking src/) so that
/// ffi/zig_build.ts, which reads the sources named in this file, fetches them too.
const c_sources = [_]struct { module: []const u8, path: []const u8 }{
    .{ .module = "alloc", .path = "src/alloc/thread_pointer.c" },
};

pub fn build(b: *std.Build) void {
    // Portable by default: the baseline CPU of the architecture and a glibc floor, so a library
    // built on any host runs on every CPU of its architecture and on glibc >= 2.31 (Debian 11,
    // Ubuntu 20.04 and later). `-Dcpu=native` builds for this host only; `-Dtarget=` cross-builds
    // (e.g. `aarch64-linux-gnu.2.31`).
    const target = b.standardTargetOptions(.{ .default_target = .{
        .os_tag = .linux,
        .abi = .gnu,
        .cpu_model = .baseline,
        .glibc_version = .{ .major = 2, .minor = 31, .patch = 0 },
    } });
    const optimize = b.standardOptimizeOption(.{});
    const strip = b.option(bool, "strip", "Strip debug information from the libraries (dist builds)");

    // The folder list is read at configure time: re-configure when folders or files are added
    // to or removed from src/ (the configure result is cached; dependOnDirectoryContents is
    // not recursive, hence one call per folder).
    const src = listSrc(b);
    b.dependOnDirectoryContents(b.path("src"));
    for (src.folders) |folder| b.dependOnDirectoryContents(b.path(b.fmt("src/{s}", .{folder.name})));

    const modules = addModules(b, src, .{
        .target = target,
        .optimize = optimize,
        .link_libc = true,
        .omit_frame_pointer = optimize != .debug,
        .strip = strip,
    }, true);

    const hmalloc = b.addLibrary(.{
        .name = "hmalloc",
        .linkage = .dynamic,
        .version = .{ .major = 1, .minor = 0, .patch = 0 }, // soname libhmalloc.so.1
        .root_module = rootModule(b, modules, "src/abi/hmalloc_api.zig", .{
            .target = target,
            .optimize = optimize,
            .link_libc = true,
            .omit_frame_pointer = optimize != .debug,
            .strip = strip,
        }),
    });
    hmalloc.installHeader(b.path("include/hmalloc.h"), "hmalloc.h");
    b.installArtifact(hmalloc);
    const library_roots = [_][]const u8{ "src/abi/hmalloc_api.zig", "src/abi/memtier_api.zig" };

    if (fileExists(b, "src/abi/memtier_api.zig")) {
        const memtier = b.addLibrary(.{
            .name = "memtier",
            .linkage = .dynamic,
            .root_module = rootModule(b, modules, "src/abi/memtier_api.zig", .{
                .target = target,
                .optimize = optimize,
                .link_libc = true,
                .omit_frame_pointer = optimize != .debug,
                .strip = strip,
            }),
        });
        b.installArtifact(memtier);
    }

    // Tests.
    const test_step = b.step("test", "Run the unit tests of every folder, *_test.zig and library root of src/");
    const only = b.option([]const u8, "test-file", "Only test this file of src/ (e.g. policy.zig or placement/policy.zig)");
    var tested: usize = 0;
    for (src.folders) |folder| {
        if (folder.is_module) {
            // With -Dtest-file naming one of its files: only that file's tests (their names
            // are `<stem>.test.<name>`).
            const filters: []const []const u8 = if (only) |o| &.{b.fmt("{s}.test.", .{std.fs.path.stem(o)})} else &.{};
            if (only == null or moduleFileSelected(b, folder, only.?)) {
                addTestRun(b, test_step, folder.name, modules.get(folder.name).?, filters);
                tested += 1;
            }
        }
        for (folder.files) |file| {
            const path = b.fmt("src/{s}/{s}", .{ folder.name, file });
            const is_test_root = std.mem.endsWith(u8, file, "_test.zig");
            const is_library_root = for (library_roots) |r| {
                if (std.mem.eql(u8, r, path)) break true;
            } else false;
            if (!is_test_root and !is_library_root) continue;
            if (only) |o| if (!std.mem.eql(u8, o, file) and !std.mem.eql(u8, o, path[4..])) continue;
            const unit_root = rootModule(b, modules, path, .{ .target = target, .optimize = optimize, .link_libc = true });
            if (is_test_root) for (src.testdata) |data| unit_root.addAnonymousImport(data, .{
                .root_source_file = b.path(b.fmt("src/testdata/{s}", .{data})),
            });
            addTestRun(b, test_step, std.fs.path.stem(file), unit_root, &.{});
            tested += 1;
        }
    }
    if (only) |o| if (tested == 0) std.process.fatal("-Dtest-file={s}: no such file under src/", .{o});

    // Fuzz targets: `<parser>_fuzz.zig` beside its parser exports `fuzz_<parser>`; an object
    // built with -ffuzz (edge counters) in ReleaseSafe (bounds and overflow checks stay on) is
    // linked with tests/fuzz/harness.c by `clang -fsanitize=fuzzer` (Debian: clang and
    // libclang-rt-14-dev). tests/fuzz/build.sh runs this step with `--prefix tests/out`.
    const fuzz_step = b.step("fuzz", "Build the libFuzzer binaries of src/*/*_fuzz.zig (needs clang)");
    const fuzz_only = b.option([]const []const u8, "fuzz-target", "Only build this fuzz target (e.g. policy; repeatable)");
    const fuzz_options: std.Build.Module.CreateOptions = .{
        .target = b.graph.host,
        .optimize = .ReleaseSafe,
        .link_libc = true,
        .fuzz = true,
        // Stack probes would need compiler-rt's __zig_probe_stack, not linked by clang.
        .stack_check = false,
        .pic = true,
    };
    var fuzz_modules: ?std.StringArrayHashMapUnmanaged(*std.Build.Module) = null;
    var fuzz_built: usize = 0;
    for (src.folders) |folder| for (folder.files) |file| {
        if (!std.mem.endsWith(u8, file, "_fuzz.zig")) continue;
        const parser = file[0 .. file.len - "_fuzz.zig".len];
        if (fuzz_only) |names| for (names) |name| {
            if (std.mem.eql(u8, name, parser)) break;
        } else continue;
        const modules_fuzz = fuzz_modules orelse addModules(b, src, fuzz_options, false);
        fuzz_modules = modules_fuzz;
        const name = b.fmt("fuzz_{s}", .{parser});
        const root = rootModule(b, modules_fuzz, b.fmt("src/{s}/{s}", .{ folder.name, file }), fuzz_options);
        root.addImport("fuzz_check", b.createModule(.{
            .root_source_file = b.path("../tests/fuzz/check.zig"),
            .target = fuzz_options.target,
            .optimize = fuzz_options.optimize,
            .link_libc = true,
            .fuzz = true,
            .stack_check = false,
            .pic = true,
        }));
        const object = b.addObject(.{ .name = name, .root_module = root });
        const harness = b.addSystemCommand(&.{ "clang", "-O1", "-c", b.fmt("-DFUZZ_TARGET={s}", .{name}) });
        harness.addFileArg(b.path("../tests/fuzz/harness.c"));
        harness.addArg("-o");
        const harness_object = harness.addOutputFileArg("harness.o");
        const link = b.addSystemCommand(&.{ "clang", "-fsanitize=fuzzer" });
        link.addFileArg(harness_object);
        link.addFileArg(object.getEmittedBin());
        link.addArg("-o");
        const binary = link.addOutputFileArg(name);
        // Installed by rename (a run may be executing the old binary).
        fuzz_step.dependOn(&b.addInstallFileWithDir(binary, .{ .custom = "fuzz" }, name).step);
        fuzz_built += 1;
    };
    if (fuzz_only) |names| if (fuzz_built != names.len)
        std.process.fatal("-Dfuzz-target: {d} of the {d} names have no src/*/<name>_fuzz.zig", .{ names.len - fuzz_built, names.len });
}

const Folder = struct {
    name: []const u8,
    /// Has `<name>/<name>.zig`: a named module.
    is_module: bool,
    /// Its .zig files, sorted.
    files: []const []const u8,
};

const Src = struct {
    folders: []const Folder,
    /// The files of src/testdata/ (none in a published package).
    testdata: []const []const u8,
};

fn listSrc(b: *std.Build) Src {
    const io = b.graph.io;
    const src_path = b.root.join(b.allocator, "src") catch @panic("OOM");
    var src_dir = src_path.root_dir.handle.openDir(io, src_path.sub_path, .{ .iterate = true }) catch |err|
        std.debug.panic("cannot open src/: {t}", .{err});
    defer src_dir.close(io);
    var folders: std.ArrayList(Folder) = .empty;
    var testdata: []const []const u8 = &.{};
    var it = src_dir.iterate();
    while (it.next(io) catch |err| std.debug.panic("cannot list src/: {t}", .{err})) |entry| {
        if (entry.kind != .directory) continue;
        const name = b.dupe(entry.name);
        var dir = src_dir.openDir(io, name, .{ .iterate = true }) catch |err|
            std.debug.panic("cannot open src/{s}: {t}", .{ name, err });
        defer dir.close(io);
        var files: std.ArrayList([]const u8) = .empty;
        var is_module = false;
        var dir_it = dir.iterate();
        while (dir_it.next(io) catch |err| std.debug.panic("cannot list src/{s}: {t}", .{ name, err })) |file| {
            if (file.kind != .file) continue;
            const is_testdata = std.mem.eql(u8, name, "testdata");
            if (!is_testdata and !std.mem.endsWith(u8, file.name, ".zig")) continue;
            files.append(b.allocator, b.dupe(file.name)) catch @panic("OOM");
            if (file.name.len == name.len + 4 and std.mem.startsWith(u8, file.name, name)) is_module = true;
        }
        std.mem.sort([]const u8, files.items, {}, lessThan);
        if (std.mem.eql(u8, name, "testdata")) {
            testdata = files.items;
            continue;
        }
        folders.append(b.allocator, .{ .name = name, .is_module = is_module, .files = files.items }) catch @panic("OOM");
    }
    std.mem.sort(Folder, folders.items, {}, struct {
        fn lt(_: void, x: Folder, y: Folder) bool {
            return lessThan({}, x.name, y.name);
        }
    }.lt);
    return .{ .folders = folders.items, .testdata = testdata };
}

fn lessThan(_: void, x: []const u8, y: []const u8) bool {
    return std.mem.order(u8, x, y) == .lt;
}

/// One module per folder that has a root of its own name, each importing all the others.
fn addModules(
    b: *std.Build,
    src: Src,
    options: std.Build.Module.CreateOptions,
    with_c_sources: bool,
) std.StringArrayHashMapUnmanaged(*std.Build.Module) {
    var modules: std.StringArrayHashMapUnmanaged(*std.Build.Module) = .empty;
    for (src.folders) |folder| {
        if (!folder.is_module) continue;
        var module_options = options;
        module_options.root_source_file = b.path(b.fmt("src/{s}/{s}.zig", .{ folder.name, folder.name }));
        const module = b.createModule(module_options);
        if (with_c_sources) for (c_sources) |c| {
            if (std.mem.eql(u8, c.module, folder.name)) module.addCSourceFile(.{ .file = b.path(c.path) });
        };
        modules.put(b.allocator, folder.name, module) catch @panic("OOM");
    }
    for (modules.keys(), modules.values()) |name, module| {
        for (modules.keys(), modules.values()) |other_name, other| {
            if (!std.mem.eql(u8, name, other_name)) module.addImport(other_name, other);
        }
    }
    return modules;
}

/// A root of its own (a library, a `*_test.zig`, a fuzz target) that imports every module.
fn rootModule(
    b: *std.Build,
    modules: std.StringArrayHashMapUnmanaged(*std.Build.Module),
    path: []const u8,
    options: std.Build.Module.CreateOptions,
) *std.Build.Module {
    var root_options = options;
    root_options.root_source_file = b.path(path);
    const root = b.createModule(root_options);
    for (modules.keys(), modules.values()) |name, module| root.addImport(name, module);
    return root;
}

/// `-Dtest-file=` names a file of this module's folder (`policy.zig` or `placement/policy.zig`)
/// that is not a root of its own.
fn moduleFileSelected(b: *std.Build, folder: Folder, only: []const u8) bool {
    for (folder.files) |file| {
        if (std.mem.endsWith(u8, file, "_test.zig") or std.mem.endsWith(u8, file, "_fuzz.zig")) continue;
        if (std.mem.eql(u8, only, file) or std.mem.eql(u8, only, b.fmt("{s}/{s}", .{ folder.name, file }))) return true;
    }
    return false;
}

fn addTestRun(
    b: *std.Build,
    test_step: *std.Build.Step,
    name: []const u8,
    root: *std.Build.Module,
    filters: []const []const u8,
) void {
    const unit = b.addTest(.{ .name = name, .filters = filters, .root_module = root });
    const run = b.addRunArtifact(unit);
    run.has_side_effects = true; // always run, so every run reports every test
    test_step.dependOn(&run.step);
}

fn fileExists(b: *std.Build, sub_path: []const u8) bool {
    const full = b.root.join(b.allocator, sub_path) catch @panic("OOM");
    full.root_dir.handle.access(b.graph.io, full.sub_path, .{}) catch return false;
    return true;
}
