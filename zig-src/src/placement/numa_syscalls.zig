//! The kernel side of placement: mbind(2), get_mempolicy(2), the probe
//! for newer modes, and the arithmetic of emulated weighted interleave.
//!
//! What: `mbind` hands a range and a NodeMask to the kernel through the
//! mask's kernel view (words sized from the possible nodes, maxnode =
//! bits + 1; see node_mask.zig), counting each call so callers can prove
//! the mbind budget. `kernelSupports` answers once per mode whether this
//! kernel takes MPOL_PREFERRED_MANY (≥ 5.15) / MPOL_WEIGHTED_INTERLEAVE
//! (≥ 6.9): it mbinds a scratch page with the mode and, on EINVAL, with
//! MPOL_BIND to the same node, which tells "unknown mode" (cached: no)
//! from "unusable node" (not cached: the caller's own mbind reports it).
//! Why probe instead of comparing uname's release: distribution kernels
//! backport modes, and a probe is what the kernel really accepts.
//! `policyAt` reads back the policy of an address (tests and tools).
//!
//! The pure part: `stripePages` splits a range's pages over nodes in the
//! weights' proportion (floor shares; the < n leftover pages one each,
//! starting at a rotating index so rounding is fair over calls), and
//! `roundRobinIndex` maps successive turns to nodes so each node gets
//! `weight` turns per round of Σweights. policy.zig decides which to use.
//!
//! Trade-off: the probe costs an mmap, one or two mbinds and a munmap,
//! once per mode per process; the answers live in atomics (no lock), and a
//! race merely probes twice.
const std = @import("std");
const linux = std.os.linux;
const assert = std.debug.assert;
const node_mask = @import("node_mask.zig");
const NodeMask = node_mask.NodeMask;
const max_nodes = node_mask.max_nodes;

/// MPOL_* numbers (linux/mempolicy.h).
pub const mpol = struct {
    pub const default: usize = 0;
    pub const preferred: usize = 1;
    pub const bind: usize = 2;
    pub const interleave: usize = 3;
    pub const local: usize = 4;
    pub const preferred_many: usize = 5;
    pub const weighted_interleave: usize = 6;
};

/// Pages per node for one call's stripes: floor(pages × w / Σw) each, the
/// leftover pages (fewer than the node count) one each to the nodes
/// starting at index `turn`. Sums to `pages`.
pub fn stripePages(weights: []const u8, pages: usize, turn: usize, out: []usize) void {
    assert(weights.len > 0 and out.len == weights.len);
    var total_weight: usize = 0;
    for (weights) |w| total_weight += w;
    assert(total_weight > 0);
    var given: usize = 0;
    for (weights, out) |w, *o| {
        o.* = @intCast(@as(u128, pages) * w / total_weight);
        given += o.*;
    }
    var left = pages - given;
    assert(left < weights.len);
    var i = turn % weights.len;
    while (left > 0) : (left -= 1) {
        out[i] += 1;
        i = (i + 1) % weights.len;
    }
}

/// The node index owning slot `turn mod Σw` when node i owns w[i]
/// consecutive slots: over Σw successive turns each node gets its weight.
pub fn roundRobinIndex(weights: []const u8, turn: usize) usize {
    var total_weight: usize = 0;
    for (weights) |w| total_weight += w;
    var slot = turn % total_weight;
    for (weights, 0..) |w, i| {
        if (slot < w) return i;
        slot -= w;
    }
    unreachable;
}

pub fn mbind(addr: usize, len: usize, mode: usize, nodes: *const NodeMask, calls: *usize) linux.E {
    const view = nodes.kernel();
    calls.* += 1;
    const rc = linux.syscall6(.mbind, addr, len, mode, view.ptr(), view.maxnode, 0);
    return linux.errno(rc);
}

/// Support for the modes newer than the baseline, probed once each.
const Support = enum(u8) { unknown, yes, no };
var support_preferred_many: std.atomic.Value(Support) = .init(.unknown);
var support_weighted: std.atomic.Value(Support) = .init(.unknown);

fn supportCell(mode: usize) *std.atomic.Value(Support) {
    return switch (mode) {
        mpol.preferred_many => &support_preferred_many,
        mpol.weighted_interleave => &support_weighted,
        else => unreachable,
    };
}

/// Whether the kernel takes `mode`: mbind a scratch page with it (to the
/// first of `nodes`); on EINVAL, MPOL_BIND to the same node tells "mode
/// unknown" (bind works: cache no) from "node unusable" (don't cache; the
/// caller's own mbind then reports the node's error).
pub fn kernelSupports(mode: usize, nodes: NodeMask) bool {
    const cell = supportCell(mode);
    switch (cell.load(.monotonic)) {
        .yes => return true,
        .no => return false,
        .unknown => {},
    }
    const node = NodeMask.single(nodes.first() orelse return false);
    const page_bytes = std.heap.pageSize();
    var map_errno: linux.E = .SUCCESS;
    const base = mapScratch(&map_errno) orelse return false;
    defer _ = linux.munmap(@ptrFromInt(base), page_bytes);
    var calls: usize = 0;
    const answer: Support = switch (mbind(base, page_bytes, mode, &node, &calls)) {
        .SUCCESS => .yes,
        .INVAL => if (mbind(base, page_bytes, mpol.bind, &node, &calls) == .SUCCESS) .no else return false,
        else => return false,
    };
    cell.store(answer, .monotonic);
    return answer == .yes;
}

/// Tests: pretend the kernel lacks (false) or has (true) a mode; null = probe again.
pub fn setKernelSupportForTesting(mode: usize, supported: ?bool) void {
    supportCell(mode).store(if (supported) |s| (if (s) .yes else .no) else .unknown, .monotonic);
}

/// One anonymous page, or null with `errno_out` set.
pub fn mapScratch(errno_out: *linux.E) ?usize {
    const rc = linux.mmap(null, std.heap.pageSize(), .{ .READ = true, .WRITE = true }, .{ .TYPE = .PRIVATE, .ANONYMOUS = true }, -1, 0);
    errno_out.* = linux.errno(rc);
    return if (errno_out.* == .SUCCESS) rc else null;
}

const mpol_f_addr: usize = 1 << 1;

pub const PolicyAt = struct { mode: usize, nodes: NodeMask };

/// The mode and nodes of the policy at `addr` (get_mempolicy MPOL_F_ADDR).
pub fn policyAt(addr: usize) !PolicyAt {
    var mode: c_int = -1;
    var nodes: NodeMask = .empty;
    const rc = linux.syscall5(.get_mempolicy, @intFromPtr(&mode), @intFromPtr(&nodes.words), max_nodes + 1, addr, mpol_f_addr);
    if (linux.errno(rc) != .SUCCESS) return error.GetMempolicyFailed;
    return .{ .mode = @intCast(mode), .nodes = nodes };
}

const testing = std.testing;

test "stripe arithmetic: weights 1,1,2,4 over 1024 pages" {
    var out: [4]usize = undefined;
    stripePages(&.{ 1, 1, 2, 4 }, 1024, 0, &out);
    try testing.expectEqualSlices(usize, &.{ 128, 128, 256, 512 }, &out);
    // Leftover pages rotate with the turn, and the total is always exact.
    var three: [3]usize = undefined;
    stripePages(&.{ 1, 1, 1 }, 10, 0, &three);
    try testing.expectEqualSlices(usize, &.{ 4, 3, 3 }, &three);
    stripePages(&.{ 1, 1, 1 }, 10, 1, &three);
    try testing.expectEqualSlices(usize, &.{ 3, 4, 3 }, &three);
    stripePages(&.{ 3, 1 }, 1023, 5, three[0..2]);
    try testing.expectEqual(@as(usize, 1023), three[0] + three[1]);
    try testing.expectEqual(@as(usize, 767), three[0]);
}

test "round-robin by weight: each node gets its weight per round" {
    var hits: [3]usize = @splat(0);
    for (0..6 * 10) |t| hits[roundRobinIndex(&.{ 3, 1, 2 }, t)] += 1;
    try testing.expectEqualSlices(usize, &.{ 30, 10, 20 }, &hits);
    try testing.expectEqual(@as(usize, 0), roundRobinIndex(&.{ 3, 1, 2 }, 2));
    try testing.expectEqual(@as(usize, 1), roundRobinIndex(&.{ 3, 1, 2 }, 3));
}

test "the kernel here has preferred-many and weighted interleave" {
    setKernelSupportForTesting(mpol.preferred_many, null);
    setKernelSupportForTesting(mpol.weighted_interleave, null);
    try testing.expect(kernelSupports(mpol.preferred_many, NodeMask.single(0)));
    try testing.expect(kernelSupports(mpol.weighted_interleave, NodeMask.single(0)));
}

test "mbind then policyAt reads the mode and nodes back" {
    const page = std.heap.pageSize();
    var e: linux.E = .SUCCESS;
    const base = mapScratch(&e) orelse return error.MapFailed;
    defer _ = linux.munmap(@ptrFromInt(base), page);
    var calls: usize = 0;
    try testing.expectEqual(linux.E.SUCCESS, mbind(base, page, mpol.bind, &NodeMask.single(0), &calls));
    try testing.expectEqual(@as(usize, 1), calls);
    const at = try policyAt(base);
    try testing.expectEqual(mpol.bind, at.mode);
    try testing.expect(at.nodes.eql(NodeMask.single(0)));
}
