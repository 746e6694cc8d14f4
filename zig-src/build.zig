//! Build for tiermem's native libraries.
//!
//!   zig build                      libhmalloc.so (+ libmemtier.so) and hmalloc.h into zig-out/
//!   zig build -Doptimize=fast      the release build the project ships and benchmarks
//!   zig build test                 every `test "..."` block of every file under src/
//!
//! Unit tests live beside the code they test, so the test step compiles each
//! file of src/ as its own test root: a new file is tested without editing this
//! script, one file's compile error names that file, and each test runs once.
const std = @import("std");

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

    const hmalloc = b.addLibrary(.{
        .name = "hmalloc",
        .linkage = .dynamic,
        .version = .{ .major = 1, .minor = 0, .patch = 0 }, // soname libhmalloc.so.1
        .root_module = b.createModule(.{
            .root_source_file = b.path("src/hmalloc_api.zig"),
            .target = target,
            .optimize = optimize,
            .link_libc = true,
            .omit_frame_pointer = optimize != .debug,
            .strip = strip,
        }),
    });
    hmalloc.root_module.addCSourceFile(.{ .file = b.path("src/thread_pointer.c") });
    hmalloc.installHeader(b.path("include/hmalloc.h"), "hmalloc.h");
    b.installArtifact(hmalloc);

    if (fileExists(b, "src/memtier_api.zig")) {
        const memtier = b.addLibrary(.{
            .name = "memtier",
            .linkage = .dynamic,
            .root_module = b.createModule(.{
                .root_source_file = b.path("src/memtier_api.zig"),
                .target = target,
                .optimize = optimize,
                .link_libc = true,
                .omit_frame_pointer = optimize != .debug,
                .strip = strip,
            }),
        });
        memtier.root_module.addCSourceFile(.{ .file = b.path("src/thread_pointer.c") });
        b.installArtifact(memtier);
    }

    // The file list below is read at configure time: re-configure when files
    // are added to or removed from src/ (the configure result is cached).
    b.dependOnDirectoryContents(b.path("src"));

    const test_step = b.step("test", "Run the unit tests of every file in src/");
    const filter = b.option([]const u8, "test-file", "Only test this file of src/ (e.g. size_class.zig)");
    const src_path = b.root.join(b.allocator, "src") catch @panic("OOM");
    var src_dir = src_path.root_dir.handle.openDir(b.graph.io, src_path.sub_path, .{ .iterate = true }) catch |err|
        std.debug.panic("cannot open src/: {t}", .{err});
    defer src_dir.close(b.graph.io);
    var it = src_dir.iterate();
    while (it.next(b.graph.io) catch |err| std.debug.panic("cannot list src/: {t}", .{err})) |entry| {
        if (entry.kind != .file or !std.mem.endsWith(u8, entry.name, ".zig")) continue;
        if (filter) |only| if (!std.mem.eql(u8, only, entry.name)) continue;
        const stem = b.dupe(entry.name[0 .. entry.name.len - 4]);
        const unit = b.addTest(.{
            .name = stem,
            // Only this file's own tests: files it imports are test roots of
            // their own, and counting their tests again would inflate the total.
            .filters = &.{b.fmt("{s}.test.", .{stem})},
            .root_module = b.createModule(.{
                .root_source_file = b.path(b.fmt("src/{s}", .{entry.name})),
                .target = target,
                .optimize = optimize,
                .link_libc = true,
            }),
        });
        unit.root_module.addCSourceFile(.{ .file = b.path("src/thread_pointer.c") });
        const run = b.addRunArtifact(unit);
        run.has_side_effects = true; // always run, so every run reports every test
        test_step.dependOn(&run.step);
    }
}

fn fileExists(b: *std.Build, sub_path: []const u8) bool {
    const full = b.root.join(b.allocator, sub_path) catch @panic("OOM");
    full.root_dir.handle.access(b.graph.io, full.sub_path, .{}) catch return false;
    return true;
}
