//! C exports of hmalloc.h's residency functions: hm_residency, hm_migrate,
//! hm_move_pages (move_pages(2) on another process, for the tiering engine).
//!
//! Thin by design: check the C arguments, translate (a node-list string
//! into a NodeMask against this process's usable nodes), delegate to
//! residency.zig. Results follow hmalloc.h: a count, or -errno; -EINVAL
//! for a NULL where an array or string is required, for a range at NULL or
//! one that wraps around (checked by residency.zig), and for a node list
//! that does not parse or names a node that is not online and allowed
//! (checked here, because move_pages would otherwise fail with ENODEV or
//! EACCES for some pages only, or the kernel's cpuset would be bypassed in
//! the error text). hmalloc_api.zig imports this file so the exports land
//! in libhmalloc.so.
const std = @import("std");
const linux = std.os.linux;
const residency = @import("placement").residency;
const node_list = @import("placement").node_list;
const sysfs = @import("placement").sysfs;

fn negErrno(e: linux.E) c_long {
    return -@as(c_long, @backingInt(e));
}

/// Pages of [addr, addr+length) per node into pages_per_node[0..max_nodes];
/// returns pages not present, or -errno.
export fn hm_residency(addr: ?*const anyopaque, length: usize, pages_per_node: ?[*]usize, max_nodes: usize) c_long {
    const counts: []usize = if (pages_per_node) |p| p[0..max_nodes] else if (max_nodes == 0) &.{} else return negErrno(.INVAL);
    return residency.countPages(@intFromPtr(addr), length, counts);
}

/// Moves the present pages of [addr, addr+length) to `nodes` (numactl
/// syntax, interleaved when several); returns pages not moved, or -errno.
export fn hm_migrate(addr: ?*anyopaque, length: usize, nodes: ?[*:0]const u8) c_long {
    const text = std.mem.span(nodes orelse return negErrno(.INVAL));
    const usable = sysfs.usableNodes();
    const mask = switch (node_list.parse(text, usable)) {
        .ok => |m| m,
        .err => return negErrno(.INVAL),
    };
    if (!mask.isSubsetOf(usable)) return negErrno(.INVAL);
    return residency.migrate(@intFromPtr(addr), length, mask);
}

/// move_pages(2) on process `pid` (0 = this one): query (`nodes` NULL) or
/// move `count` pages; per-page results in `status`. Returns the kernel's
/// result (0, or pages not migrated) or -errno. A raw pass-through because
/// glibc has no wrapper (libnuma has) and Deno's FFI cannot call the
/// variadic syscall(2): the tiering engine batches its own page arrays.
export fn hm_move_pages(pid: c_int, count: usize, pages: ?[*]const usize, nodes: ?[*]const c_int, status: ?[*]c_int, flags: c_int) c_long {
    if (count == 0) return 0;
    if (pages == null or status == null or pid < 0) return negErrno(.INVAL);
    const rc = linux.syscall6(.move_pages, @as(usize, @intCast(pid)), count, @intFromPtr(pages), @intFromPtr(nodes), @intFromPtr(status), @as(usize, @intCast(@as(c_uint, @bitCast(flags)))));
    return switch (linux.errno(rc)) {
        .SUCCESS => @intCast(rc),
        else => |e| negErrno(e),
    };
}

const testing = std.testing;

test "hm_residency counts touched pages on node 0 and reports the untouched" {
    const page = std.heap.pageSize();
    const len = 8 * page;
    const base = linux.mmap(null, len, .{ .READ = true, .WRITE = true }, .{ .TYPE = .PRIVATE, .ANONYMOUS = true }, -1, 0);
    try testing.expectEqual(linux.E.SUCCESS, linux.errno(base));
    defer _ = linux.munmap(@ptrFromInt(base), len);
    const bytes: [*]volatile u8 = @ptrFromInt(base);
    for (0..5) |i| bytes[i * page] = 1;
    var counts: [4]usize = undefined;
    try testing.expectEqual(@as(c_long, 3), hm_residency(@ptrFromInt(base), len, &counts, counts.len));
    try testing.expectEqual(@as(usize, 5), counts[0]);
    try testing.expectEqual(@as(c_long, 3), hm_residency(@ptrFromInt(base), len, null, 0));
    try testing.expectEqual(negErrno(.INVAL), hm_residency(@ptrFromInt(base), len, null, 4));
}

test "hm_migrate parses its node list and refuses bad or unusable nodes" {
    const page = std.heap.pageSize();
    const len = 4 * page;
    const base = linux.mmap(null, len, .{ .READ = true, .WRITE = true }, .{ .TYPE = .PRIVATE, .ANONYMOUS = true }, -1, 0);
    try testing.expectEqual(linux.E.SUCCESS, linux.errno(base));
    defer _ = linux.munmap(@ptrFromInt(base), len);
    @as(*volatile u8, @ptrFromInt(base)).* = 7;
    try testing.expectEqual(@as(c_long, 0), hm_migrate(@ptrFromInt(base), len, "0"));
    try testing.expectEqual(@as(c_long, 0), hm_migrate(@ptrFromInt(base), len, "all"));
    try testing.expectEqual(@as(u8, 7), @as(*volatile u8, @ptrFromInt(base)).*);
    try testing.expectEqual(negErrno(.INVAL), hm_migrate(@ptrFromInt(base), len, "0-x"));
    try testing.expectEqual(negErrno(.INVAL), hm_migrate(@ptrFromInt(base), len, null));
    try testing.expectEqual(negErrno(.INVAL), hm_migrate(@ptrFromInt(base), len, ""));
    if (!sysfs.usableNodes().isSet(1000))
        try testing.expectEqual(negErrno(.INVAL), hm_migrate(@ptrFromInt(base), len, "1000"));
}

test "hm_residency and hm_migrate refuse a range at NULL or one that wraps around with -EINVAL" {
    const page = std.heap.pageSize();
    const base = linux.mmap(null, page, .{ .READ = true, .WRITE = true }, .{ .TYPE = .PRIVATE, .ANONYMOUS = true }, -1, 0);
    try testing.expectEqual(linux.E.SUCCESS, linux.errno(base));
    defer _ = linux.munmap(@ptrFromInt(base), page);
    @as(*volatile u8, @ptrFromInt(base)).* = 1;
    const max = std.math.maxInt(usize);
    var counts: [4]usize = undefined;
    for ([_]usize{ 0, 1, page, 1 << 40 }) |len| {
        try testing.expectEqual(negErrno(.INVAL), hm_residency(null, len, &counts, counts.len));
        try testing.expectEqual(negErrno(.INVAL), hm_migrate(null, len, "0"));
    }
    for ([_]usize{ max, max - base + 1, max - base - 1 }) |len| {
        try testing.expectEqual(negErrno(.INVAL), hm_residency(@ptrFromInt(base), len, &counts, counts.len));
        try testing.expectEqual(negErrno(.INVAL), hm_migrate(@ptrFromInt(base), len, "0"));
    }
    // The page itself is still counted.
    try testing.expectEqual(@as(c_long, 0), hm_residency(@ptrFromInt(base), page, &counts, counts.len));
    try testing.expectEqual(@as(usize, 1), counts[0]);
}

test "hm_move_pages queries this process's pages and refuses NULL arrays" {
    const page = std.heap.pageSize();
    const base = linux.mmap(null, 2 * page, .{ .READ = true, .WRITE = true }, .{ .TYPE = .PRIVATE, .ANONYMOUS = true }, -1, 0);
    try testing.expectEqual(linux.E.SUCCESS, linux.errno(base));
    defer _ = linux.munmap(@ptrFromInt(base), 2 * page);
    @as(*volatile u8, @ptrFromInt(base)).* = 1;
    const pages = [2]usize{ base, base + page };
    var status: [2]c_int = undefined;
    try testing.expectEqual(@as(c_long, 0), hm_move_pages(0, 2, &pages, null, &status, 0));
    try testing.expect(status[0] >= 0);
    try testing.expectEqual(-@as(c_int, @backingInt(linux.E.NOENT)), status[1]);
    try testing.expectEqual(negErrno(.INVAL), hm_move_pages(0, 2, null, null, &status, 0));
    try testing.expectEqual(@as(c_long, 0), hm_move_pages(0, 0, null, null, null, 0));
}
