//! Residency: where the pages of a range are, and moving them elsewhere.
//!
//! What: `countPages` asks the kernel, page by page, which node holds each
//! page of a range — move_pages(0, n, pages, NULL, status, 0), whose
//! `nodes = NULL` form only queries — and sums the answers per node.
//! `migrate` moves the present pages of a range to a set of nodes
//! (move_pages with a target per page, MPOL_MF_MOVE: only pages mapped by
//! this process alone), round-robin across the targets by page index, so
//! `0-3` interleaves the range over four nodes.
//!
//! Why move_pages and not /proc/self/numa_maps: it is exact for any range
//! (numa_maps sums whole VMAs), needs no parsing or allocation, and is the
//! same call the kernel uses to migrate, so the query and the move share
//! one loop shape. Status values: a node number, -ENOENT for a page never
//! touched, -EFAULT for a page backed by no memory of its own (the shared
//! zero page after a read-only touch, or an address with no mapping): both
//! count as "not present" — no node holds a page of ours there.
//!
//! Trade-off: work goes in batches of `batch_pages` (512) pages with the
//! page and status arrays on the stack (6 KiB), one syscall per batch —
//! about 1 µs per page queried on 6.x kernels, so 1 GiB (262144 pages) is
//! a quarter of a second: a diagnostic, not a hot path. Pages on nodes at
//! or above `counts.len` are not counted (the caller's array is too short);
//! totals then fall short of the page count, which callers can check.
const std = @import("std");
const linux = std.os.linux;
const assert = std.debug.assert;
const node_mask = @import("node_mask.zig");
const NodeMask = node_mask.NodeMask;
const max_nodes = node_mask.max_nodes;

/// Pages per move_pages call.
pub const batch_pages = 512;
/// MPOL_MF_MOVE: move pages mapped by this process only.
const mpol_mf_move: usize = 1 << 1;

const Range = struct { first: usize, pages: usize, page_bytes: usize };

/// The whole pages covering [addr, addr + len); null for a range no caller
/// can own: one starting at NULL, or one whose end (rounded up to a page)
/// wraps around the address space. Both entries check here, once.
fn pagesOf(addr: usize, len: usize) ?Range {
    const page_bytes = std.heap.pageSize();
    if (addr == 0) return null;
    const last = std.math.add(usize, addr, len) catch return null;
    if (last > std.math.maxInt(usize) - (page_bytes - 1)) return null;
    const first = std.mem.alignBackward(usize, addr, page_bytes);
    const end = std.mem.alignForward(usize, last, page_bytes);
    assert(end >= first);
    return .{ .first = first, .pages = if (len == 0) 0 else (end - first) / page_bytes, .page_bytes = page_bytes };
}

const einval = -@as(isize, @backingInt(linux.E.INVAL));

fn notPresent(status: i32) bool {
    return status == -@as(i32, @backingInt(linux.E.NOENT)) or status == -@as(i32, @backingInt(linux.E.FAULT));
}

fn movePages(count: usize, pages: *const [batch_pages]usize, nodes: ?*const [batch_pages]i32, status: *[batch_pages]i32, flags: usize) linux.E {
    assert(count > 0 and count <= batch_pages);
    const rc = linux.syscall6(.move_pages, 0, count, @intFromPtr(pages), if (nodes) |n| @intFromPtr(n) else 0, @intFromPtr(status), flags);
    return linux.errno(rc);
}

/// Counts the pages of [addr, addr + len) per node into `counts` (zeroed
/// first). Returns the number of pages not present, or -errno.
pub fn countPages(addr: usize, len: usize, counts: []usize) isize {
    @memset(counts, 0);
    const range = pagesOf(addr, len) orelse return einval;
    var pages: [batch_pages]usize = undefined;
    var status: [batch_pages]i32 = undefined;
    var absent: usize = 0;
    var done: usize = 0;
    while (done < range.pages) {
        const n = @min(batch_pages, range.pages - done);
        for (pages[0..n], 0..) |*p, i| p.* = range.first + (done + i) * range.page_bytes;
        const e = movePages(n, &pages, null, &status, 0);
        if (e != .SUCCESS) return -@as(isize, @backingInt(e));
        for (status[0..n]) |s| {
            if (s >= 0) {
                if (@as(usize, @intCast(s)) < counts.len) counts[@intCast(s)] += 1;
            } else {
                // Any other negative status is a page we could not ask about: not present either.
                absent += 1;
            }
        }
        done += n;
    }
    assert(absent <= range.pages);
    return @intCast(absent);
}

/// Moves the present pages of [addr, addr + len) to `nodes`, page i of the
/// range to the (i mod k)-th node of the k in `nodes`. Returns the number
/// of present pages that could not be moved, or -errno.
pub fn migrate(addr: usize, len: usize, nodes: NodeMask) isize {
    const k = nodes.count();
    if (k == 0) return einval;
    var targets: [max_nodes]u16 = undefined;
    {
        var it = nodes.iterator();
        var i: usize = 0;
        while (it.next()) |n| : (i += 1) targets[i] = n;
        assert(i == k);
    }
    const range = pagesOf(addr, len) orelse return einval;
    var pages: [batch_pages]usize = undefined;
    var want: [batch_pages]i32 = undefined;
    var status: [batch_pages]i32 = undefined;
    var failed: usize = 0;
    var done: usize = 0;
    while (done < range.pages) {
        const n = @min(batch_pages, range.pages - done);
        for (0..n) |i| {
            pages[i] = range.first + (done + i) * range.page_bytes;
            want[i] = targets[(done + i) % k];
        }
        const e = movePages(n, &pages, &want, &status, mpol_mf_move);
        if (e != .SUCCESS) return -@as(isize, @backingInt(e));
        for (status[0..n], want[0..n], pages[0..n]) |s, target, page| {
            if (s == target) continue;
            if (s < 0 and notPresent(s)) continue;
            // With transparent huge pages, move_pages moves the whole huge page
            // but may report EBUSY for a subpage it moved along: ask again.
            if (s == -@as(i32, @backingInt(linux.E.BUSY)) and nodeOf(page) == target) continue;
            failed += 1;
        }
        done += n;
    }
    return @intCast(failed);
}

/// The node a present page is on (move_pages query), or -1.
fn nodeOf(page: usize) i32 {
    var one = [1]usize{page};
    var st = [1]i32{-1};
    const rc = linux.syscall6(.move_pages, 0, 1, @intFromPtr(&one), 0, @intFromPtr(&st), 0);
    if (linux.errno(rc) != .SUCCESS) return -1;
    return st[0];
}

const testing = std.testing;

fn mapAnonymous(len: usize) !usize {
    const rc = linux.mmap(null, len, .{ .READ = true, .WRITE = true }, .{ .TYPE = .PRIVATE, .ANONYMOUS = true }, -1, 0);
    if (linux.errno(rc) != .SUCCESS) return error.MapFailed;
    return rc;
}

test "an untouched mapping has every page not present" {
    const len = 3 * batch_pages * std.heap.pageSize() + 5 * std.heap.pageSize(); // several batches and a partial one
    const base = try mapAnonymous(len);
    defer _ = linux.munmap(@ptrFromInt(base), len);
    var counts: [4]usize = @splat(99);
    try testing.expectEqual(@as(isize, @intCast(len / std.heap.pageSize())), countPages(base, len, &counts));
    for (counts) |c| try testing.expectEqual(@as(usize, 0), c);
}

test "touched pages are counted on node 0 here, untouched ones are not present" {
    const page = std.heap.pageSize();
    const len = 64 * page;
    const base = try mapAnonymous(len);
    defer _ = linux.munmap(@ptrFromInt(base), len);
    const bytes: [*]volatile u8 = @ptrFromInt(base);
    for (0..40) |i| bytes[i * page] = 1;
    var counts: [max_nodes]usize = undefined;
    try testing.expectEqual(@as(isize, 24), countPages(base, len, &counts));
    try testing.expectEqual(@as(usize, 40), counts[0]);
    // An unaligned sub-range covers the pages it touches.
    try testing.expectEqual(@as(isize, 0), countPages(base + 10, page, &counts));
    try testing.expectEqual(@as(usize, 2), counts[0]);
    try testing.expectEqual(@as(isize, 0), countPages(base, 0, &counts));
}

test "a zero-length counts array still reports not-present pages" {
    const page = std.heap.pageSize();
    const base = try mapAnonymous(4 * page);
    defer _ = linux.munmap(@ptrFromInt(base), 4 * page);
    @as(*volatile u8, @ptrFromInt(base)).* = 1;
    try testing.expectEqual(@as(isize, 3), countPages(base, 4 * page, &.{}));
}

test "migrate to node 0 keeps contents and leaves nothing unmoved" {
    const page = std.heap.pageSize();
    const len = 600 * page;
    const base = try mapAnonymous(len);
    defer _ = linux.munmap(@ptrFromInt(base), len);
    const bytes: [*]u8 = @ptrFromInt(base);
    for (0..500) |i| bytes[i * page] = @truncate(i);
    try testing.expectEqual(@as(isize, 0), migrate(base, len, NodeMask.single(0)));
    for (0..500) |i| try testing.expectEqual(@as(u8, @truncate(i)), bytes[i * page]);
    var counts: [1]usize = undefined;
    try testing.expectEqual(@as(isize, 100), countPages(base, len, &counts));
    try testing.expectEqual(@as(usize, 500), counts[0]);
}

test "migrate to an empty set or a node that does not exist fails with -errno" {
    const page = std.heap.pageSize();
    const base = try mapAnonymous(page);
    defer _ = linux.munmap(@ptrFromInt(base), page);
    @as(*volatile u8, @ptrFromInt(base)).* = 1;
    try testing.expectEqual(-@as(isize, @backingInt(linux.E.INVAL)), migrate(base, page, NodeMask.empty));
    // Node 1 is not online here: ENODEV from the kernel, never a silent success.
    try testing.expectEqual(-@as(isize, @backingInt(linux.E.NODEV)), migrate(base, page, NodeMask.single(1)));
    try testing.expectEqual(-@as(isize, @backingInt(linux.E.NODEV)), migrate(base, page, NodeMask.single(1000)));
}
