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
//! - `file`: ranges of one shared mapping of a file (memkind's FS_DAX tiers:
//!   a file in a DAX or tmpfs mount), reserved whole when the tier is made,
//!   capped at its limit, no descriptor kept (file_heap.zig). Freed ranges
//!   leave the file (their storage goes back to the filesystem) and are
//!   reused.
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
const file_heap = @import("file_heap.zig");
const Policy = @import("placement").policy.Policy;

pub const granule_bytes = page_map.granule_bytes;

pub const ChunkSource = union(enum) {
    anonymous,
    file: file_heap.FileHeap,
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
    const base = switch (source.*) {
        .anonymous => try reserveAligned(length, alignment, true, errno_out),
        .file => |*heap| heap.take(length, alignment) orelse {
            errno_out.* = .NOMEM;
            return error.OutOfMemory;
        },
    };
    var calls: usize = 0;
    const e = policy.applyCounted(base, length, &calls);
    _ = mbind_calls.fetchAdd(calls, .monotonic);
    if (e != .SUCCESS) {
        unmap(source, base, length);
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

/// Unmaps what `map` returned (a file's range goes back to its heap, its
/// storage to the filesystem).
pub fn unmap(source: *ChunkSource, base: usize, length: usize) void {
    switch (source.*) {
        .anonymous => _ = linux.munmap(@ptrFromInt(base), length),
        .file => |*heap| heap.give(base, length),
    }
}

/// A file source's `unmap` in two halves, for a caller that does not hold the pool's page lock
/// during the slow one: `removeFilePages` takes the range's pages out of the file (the range
/// stays taken: no `map` can return it), `finishFileUnmap` (calls serialised again) frees it.
/// Anonymous memory is unmapped with calls serialised: valgrind marks a range inaccessible
/// after munmap returns, so another thread's mmap of the same addresses in between left them
/// "invalid" for its checker (a stress test under memcheck failed 1 run in 2).
pub fn removeFilePages(source: *const ChunkSource, base: usize, length: usize) void {
    assert(source.* == .file);
    file_heap.FileHeap.removePages(base, length);
}

/// See `removeFilePages`.
pub fn finishFileUnmap(source: *ChunkSource, base: usize, length: usize) void {
    source.file.giveRemoved(base, length);
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
    var source: ChunkSource = .{ .file = try file_heap.fromFile(@intCast(fd), granule_bytes) };
    const policy: Policy = .{};
    var e: linux.E = .SUCCESS;
    const base = try map(&source, &policy, granule_bytes, &e, &test_calls);
    @as(*volatile u8, @ptrFromInt(base + 10)).* = 42;
    try std.testing.expectError(error.OutOfMemory, map(&source, &policy, granule_bytes, &e, &test_calls));
    try std.testing.expectEqual(linux.E.NOMEM, e);
    unmap(&source, base, granule_bytes);
    try std.testing.expectEqual(@as(u64, 0), source.file.used_bytes);
    const again = try map(&source, &policy, granule_bytes, &e, &test_calls);
    try std.testing.expectEqual(base, again);
    unmap(&source, again, granule_bytes);
}
