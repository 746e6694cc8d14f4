//! Chunk sources: where a pool's address space comes from.
//!
//! What: every piece of memory a pool owns — a 4 MiB chunk or a huge block's
//! mapping — is obtained here as a granule-aligned mapping (page_map needs
//! granules that belong to one owner), then placed by the pool's policy with
//! one `Policy.apply` before anything touches it. If the policy cannot be
//! applied the mapping is unmapped and the allocation fails with that errno:
//! a policy is never dropped silently.
//!
//! Two sources:
//! - `anonymous`: private anonymous memory (DRAM, CXL exposed as NUMA nodes).
//! - `file`: a shared mapping of a file (memkind's FS_DAX tiers: a file in a
//!   DAX or tmpfs mount), grown with fallocate, capped at `limit_bytes`
//!   (0 = no cap). Freed ranges are hole-punched so the file's blocks go back
//!   to the filesystem; file offsets are handed out by a bump pointer, which
//!   is fine for a sparse file (offsets are address space, not storage).
//!
//! fork(): a shared mapping stays shared in the child, so parent and child
//! would allocate from one heap. The child therefore copies its file-backed
//! memory into private memory at the same addresses (`privatize`) and its
//! pool continues with anonymous memory; a child that execs (the usual case)
//! starts a fresh tier from the environment.
//!
//! Alignment: the next mapping is first asked for right below the previous
//! one (mmap grows down on x86_64), which keeps a heap contiguous and needs
//! one syscall; when the kernel places it elsewhere, we over-map by the
//! alignment and trim both ends (two munmaps instead of a retry loop).
const std = @import("std");
const assert = std.debug.assert;
const linux = std.os.linux;
const page_map = @import("page_map.zig");
const Policy = @import("policy.zig").Policy;

pub const granule_bytes = page_map.granule_bytes;

pub const ChunkSource = union(enum) {
    anonymous,
    file: FileSource,
};

pub const FileSource = struct {
    fd: i32,
    /// 0 = unlimited.
    limit_bytes: u64,
    /// Next unused file offset (bump).
    next_offset: u64 = 0,
    /// Bytes currently mapped from the file (checked against the limit).
    used_bytes: u64 = 0,
};

pub const MapError = error{ OutOfMemory, PolicyFailed };

/// A granule-aligned mapping of `length` bytes (a multiple of the page size),
/// placed by `policy`. On error, `errno_out` holds the errno to report.
/// Caller serialises calls for one source (the pool's page lock).
pub fn map(source: *ChunkSource, policy: *const Policy, length: usize, errno_out: *linux.E, mbind_calls: *std.atomic.Value(u64)) MapError!usize {
    return mapAligned(source, policy, length, granule_bytes, errno_out, mbind_calls);
}

/// `map` with the mapping aligned to `alignment` (a power of two ≥ a granule).
/// `mbind_calls` is increased by the mbind calls the policy made (statistics).
pub fn mapAligned(source: *ChunkSource, policy: *const Policy, length: usize, alignment: usize, errno_out: *linux.E, mbind_calls: *std.atomic.Value(u64)) MapError!usize {
    assert(length > 0 and length % std.heap.page_size_min == 0);
    assert(alignment >= granule_bytes and std.math.isPowerOfTwo(alignment));
    const base = try reserveAligned(length, alignment, source.* == .anonymous, errno_out);
    errdefer _ = linux.munmap(@ptrFromInt(base), length);
    switch (source.*) {
        .anonymous => {},
        .file => |*f| {
            if (f.limit_bytes != 0 and f.used_bytes + length > f.limit_bytes) {
                errno_out.* = .NOMEM;
                return error.OutOfMemory;
            }
            const offset = f.next_offset;
            const grow = linux.fallocate(f.fd, 0, @intCast(offset), @intCast(length));
            if (linux.errno(grow) != .SUCCESS) {
                errno_out.* = .NOMEM;
                return error.OutOfMemory;
            }
            const rc = linux.mmap(@ptrFromInt(base), length, .{ .READ = true, .WRITE = true }, .{ .TYPE = .SHARED, .FIXED = true }, f.fd, @intCast(offset));
            if (linux.errno(rc) != .SUCCESS) {
                errno_out.* = linux.errno(rc);
                return error.OutOfMemory;
            }
            f.next_offset += length;
            f.used_bytes += length;
        },
    }
    var calls: usize = 0;
    const e = policy.applyCounted(base, length, &calls);
    _ = mbind_calls.fetchAdd(calls, .monotonic);
    if (e != .SUCCESS) {
        if (source.* == .file) unmapFile(&source.file, base, length);
        errno_out.* = e;
        return error.PolicyFailed;
    }
    keepSmallPagesIfInterleaved(policy, base, length);
    return base;
}

/// Interleaving policies spread pages in units of the page *as faulted*: with
/// transparent huge pages, a 2 MiB unit. Our chunks are 4 MiB, so THP would
/// place each chunk on one or two nodes, skewing `-i 0-3` to whichever nodes
/// the chunks' addresses happen to select (measured in the 4-node VM: 12/12/
/// 38/38% instead of 25% each). Interleaved memory therefore stays in 4 KiB
/// pages: the split the user asked for, at some TLB cost (the trade-off the
/// kernel's own page-granular interleave makes without THP).
pub fn keepSmallPagesIfInterleaved(policy: *const Policy, base: usize, length: usize) void {
    switch (policy.mode) {
        .interleave, .weighted_interleave => _ = linux.madvise(@ptrFromInt(base), length, linux.MADV.NOHUGEPAGE),
        else => {},
    }
}

/// Unmaps what `map` returned (and gives a file's blocks back).
pub fn unmap(source: *ChunkSource, base: usize, length: usize) void {
    switch (source.*) {
        .anonymous => _ = linux.munmap(@ptrFromInt(base), length),
        .file => |*f| {
            unmapFile(f, base, length);
            _ = linux.munmap(@ptrFromInt(base), length);
        },
    }
}

/// fork() child: replaces a shared file mapping by a private anonymous copy
/// at the same address, so that parent and child stop writing into each
/// other's heap (a MAP_SHARED heap is shared across fork). The copy's pages
/// are the child's own; the file is left to the parent.
pub fn privatize(base: usize, length: usize) bool {
    const rc = linux.mmap(null, length, .{ .READ = true, .WRITE = true }, .{ .TYPE = .PRIVATE, .ANONYMOUS = true }, -1, 0);
    if (linux.errno(rc) != .SUCCESS) return false;
    @memcpy(@as([*]u8, @ptrFromInt(rc))[0..length], @as([*]const u8, @ptrFromInt(base))[0..length]);
    const moved = linux.mremap(@ptrFromInt(rc), length, length, .{ .MAYMOVE = true, .FIXED = true }, @ptrFromInt(base));
    if (linux.errno(moved) != .SUCCESS) {
        _ = linux.munmap(@ptrFromInt(rc), length);
        return false;
    }
    return true;
}

fn unmapFile(f: *FileSource, base: usize, length: usize) void {
    // Find the file offset behind `base` before the mapping goes away.
    var offset: u64 = 0;
    if (fileOffsetOf(base)) |o| offset = o else return;
    const punch = linux.FALLOC.FL_PUNCH_HOLE | linux.FALLOC.FL_KEEP_SIZE;
    _ = linux.fallocate(f.fd, punch, @intCast(offset), @intCast(length));
    assert(f.used_bytes >= length);
    f.used_bytes -= length;
}

/// The file offset mapped at `address`, read from /proc/self/maps — only on
/// the rare path of unmapping a file-backed range. Allocation-free.
fn fileOffsetOf(address: usize) ?u64 {
    const fd = linux.open("/proc/self/maps", .{ .ACCMODE = .RDONLY, .CLOEXEC = true }, 0);
    if (linux.errno(fd) != .SUCCESS) return null;
    defer _ = linux.close(@intCast(fd));
    var buf: [4096]u8 = undefined;
    var line: [512]u8 = undefined;
    var line_len: usize = 0;
    while (true) {
        const n = linux.read(@intCast(fd), &buf, buf.len);
        if (linux.errno(n) != .SUCCESS or n == 0) return null;
        for (buf[0..n]) |ch| {
            if (ch != '\n') {
                if (line_len < line.len) line[line_len] = ch;
                line_len += 1;
                continue;
            }
            if (parseMapsLine(line[0..@min(line_len, line.len)], address)) |off| return off;
            line_len = 0;
        }
    }
}

fn parseMapsLine(line: []const u8, address: usize) ?u64 {
    // "start-end perms offset dev inode path"
    var it = std.mem.tokenizeScalar(u8, line, ' ');
    const range = it.next() orelse return null;
    const dash = std.mem.indexOfScalar(u8, range, '-') orelse return null;
    const start = std.fmt.parseInt(usize, range[0..dash], 16) catch return null;
    const end = std.fmt.parseInt(usize, range[dash + 1 ..], 16) catch return null;
    if (address < start or address >= end) return null;
    _ = it.next() orelse return null;
    const off_text = it.next() orelse return null;
    const off = std.fmt.parseInt(u64, off_text, 16) catch return null;
    return off + (address - start);
}

/// Where the last mapping ended: asking for the next one right below it
/// keeps a growing heap contiguous (fewer VMAs, one mmap and no trimming
/// when the kernel honours the hint). Only a hint: races are harmless.
var next_hint: std.atomic.Value(usize) = .init(0);

/// Address space only (no access, no commitment), aligned: the target of a
/// huge block that mremap moves while growing (huge.zig).
pub fn reserveAddressSpace(length: usize, alignment: usize, errno_out: *linux.E) MapError!usize {
    return reserveAligned(length, alignment, false, errno_out);
}

fn reserveAligned(length: usize, alignment: usize, populate_rw: bool, errno_out: *linux.E) MapError!usize {
    const prot: linux.PROT = if (populate_rw) .{ .READ = true, .WRITE = true } else .{};
    const flags: linux.MAP = .{ .TYPE = .PRIVATE, .ANONYMOUS = true, .NORESERVE = !populate_rw };
    const hint = next_hint.load(.monotonic);
    if (hint > length and (hint - length) % alignment == 0) {
        const want = hint - length;
        const rc = linux.mmap(@ptrFromInt(want), length, prot, flags, -1, 0);
        if (linux.errno(rc) == .SUCCESS) {
            if (rc == want) {
                next_hint.store(rc, .monotonic);
                return rc;
            }
            _ = linux.munmap(@ptrFromInt(rc), length);
        }
    }
    const base = try reserveByTrimming(length, alignment, prot, flags, errno_out);
    next_hint.store(base, .monotonic);
    return base;
}

fn reserveByTrimming(length: usize, alignment: usize, prot: linux.PROT, flags: linux.MAP, errno_out: *linux.E) MapError!usize {
    const span = std.math.add(usize, length, alignment) catch {
        errno_out.* = .NOMEM;
        return error.OutOfMemory;
    };
    const rc = linux.mmap(null, span, prot, flags, -1, 0);
    if (linux.errno(rc) != .SUCCESS) {
        errno_out.* = linux.errno(rc);
        return error.OutOfMemory;
    }
    const base = std.mem.alignForward(usize, rc, alignment);
    if (base > rc) _ = linux.munmap(@ptrFromInt(rc), base - rc);
    const tail = rc + span - (base + length);
    if (tail > 0) _ = linux.munmap(@ptrFromInt(base + length), tail);
    return base;
}

var test_calls: std.atomic.Value(u64) = .init(0);

test "anonymous mappings are granule-aligned and writable" {
    var source: ChunkSource = .anonymous;
    const policy: Policy = .{};
    var e: linux.E = .SUCCESS;
    const base = try map(&source, &policy, granule_bytes, &e, &test_calls);
    defer unmap(&source, base, granule_bytes);
    try std.testing.expect(base % granule_bytes == 0);
    @as(*volatile u8, @ptrFromInt(base + granule_bytes - 1)).* = 1;
}

test "a file source maps shared file pages and enforces its limit" {
    const fd = linux.memfd_create("hmalloc-test", 0);
    try std.testing.expect(linux.errno(fd) == .SUCCESS);
    defer _ = linux.close(@intCast(fd));
    var source: ChunkSource = .{ .file = .{ .fd = @intCast(fd), .limit_bytes = granule_bytes } };
    const policy: Policy = .{};
    var e: linux.E = .SUCCESS;
    const base = try map(&source, &policy, granule_bytes, &e, &test_calls);
    @as(*volatile u8, @ptrFromInt(base + 10)).* = 42;
    try std.testing.expectError(error.OutOfMemory, map(&source, &policy, granule_bytes, &e, &test_calls));
    try std.testing.expectEqual(linux.E.NOMEM, e);
    unmap(&source, base, granule_bytes);
    try std.testing.expectEqual(@as(u64, 0), source.file.used_bytes);
    const again = try map(&source, &policy, granule_bytes, &e, &test_calls);
    unmap(&source, again, granule_bytes);
}
