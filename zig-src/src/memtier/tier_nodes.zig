//! Which NUMA nodes a KMEM_DAX tier binds to.
//!
//! What: memkind finds "KMEM DAX" nodes — CXL or PMEM exposed to the kernel
//! as memory-only NUMA nodes — through daxctl, or from
//! `MEMKIND_DAX_KMEM_NODES`. Here: that variable when set (numactl syntax,
//! checked against the usable nodes), else the kernel's own view: nodes that
//! have memory and no CPU. Of those, the ones nearest (SLIT distance) to the
//! node of the CPU running the first allocation, as memkind's
//! MEMKIND_DAX_KMEM kind does; ties are all kept, so two equidistant
//! expanders are both used.
//!
//! Trade-off: the choice is made once, at start-up, for the CPU the program
//! starts on; a program that migrates between sockets keeps its first
//! choice (what memkind does as well). No daxctl dependency: a machine whose
//! CXL memory is online as a NUMA node is found without extra packages.
const std = @import("std");
const linux = std.os.linux;
const sysfs = @import("placement").sysfs;
const node_list = @import("placement").node_list;
const node_mask = @import("placement").node_mask;
const NodeMask = node_mask.NodeMask;

/// The nodes of a KMEM_DAX tier, or null with a reason written to `why`
/// (NUL-terminated).
pub fn kmemDaxNodes(override: ?[]const u8, why: []u8) ?NodeMask {
    const usable = sysfs.usableNodes();
    if (override) |text| {
        switch (node_list.parse(text, usable)) {
            .ok => |mask| return mask,
            .err => |e| {
                var buf: [256]u8 = undefined;
                const line = e.message(text, &buf);
                return explain(why, "MEMKIND_DAX_KMEM_NODES: {s}", .{line});
            },
        }
    }
    const memory = sysfs.nodesWithMemory() orelse return explain(why, "cannot read {s}", .{sysfs.has_memory_path});
    const cpus = sysfs.nodesWithCpus() orelse NodeMask.empty;
    const candidates = memoryOnly(memory, cpus).intersect(usable);
    if (candidates.isEmpty())
        return explain(why, "no memory-only NUMA node found (nodes with memory: {d}, none without CPUs); set MEMKIND_DAX_KMEM_NODES", .{memory.count()});
    return nearest(candidates, currentNode() orelse (usable.first() orelse 0));
}

/// Nodes with memory and no CPU (`invertWithin(within)` is `within` minus `self`).
pub fn memoryOnly(memory: NodeMask, cpus: NodeMask) NodeMask {
    return cpus.invertWithin(memory);
}

/// The members of `candidates` at the smallest SLIT distance from `from`.
pub fn nearest(candidates: NodeMask, from: usize) NodeMask {
    var best: NodeMask = .empty;
    var best_distance: u32 = std.math.maxInt(u32);
    var it = candidates.iterator();
    while (it.next()) |node| {
        const d = distance(from, node) orelse 255;
        if (d < best_distance) {
            best = .empty;
            best_distance = d;
        }
        if (d == best_distance) best.set(node);
    }
    return best;
}

/// SLIT distance from node `a` to node `b` (/sys/devices/system/node/nodeA/distance).
fn distance(a: usize, b: usize) ?u32 {
    var path_buf: [64]u8 = undefined;
    const text_path = std.fmt.bufPrint(path_buf[0 .. path_buf.len - 1], "/sys/devices/system/node/node{d}/distance", .{a}) catch return null;
    path_buf[text_path.len] = 0;
    const path: [*:0]const u8 = @ptrCast(&path_buf);
    var buf: [4096]u8 = undefined;
    const text = sysfs.readFile(path, &buf) orelse return null;
    return distanceAt(text, b);
}

fn distanceAt(text: []const u8, index: usize) ?u32 {
    // One distance per *online* node, in node order; nodes are usually dense.
    var it = std.mem.tokenizeAny(u8, text, " \n");
    var i: usize = 0;
    while (it.next()) |field| : (i += 1) {
        if (i == index) return std.fmt.parseInt(u32, field, 10) catch null;
    }
    return null;
}

fn currentNode() ?usize {
    var cpu: u32 = 0;
    var node: u32 = 0;
    const rc = linux.syscall3(.getcpu, @intFromPtr(&cpu), @intFromPtr(&node), 0);
    if (linux.errno(rc) != .SUCCESS) return null;
    return node;
}

fn explain(why: []u8, comptime fmt: []const u8, args: anytype) ?NodeMask {
    const text = std.fmt.bufPrint(why[0 .. why.len - 1], fmt, args) catch why[0 .. why.len - 1];
    why[text.len] = 0;
    return null;
}

test "nearest keeps every candidate at the smallest distance" {
    // On this machine (one node) distance(0, 0) is 10; a lone candidate is its own nearest.
    const one = nearest(NodeMask.single(0), 0);
    try std.testing.expect(one.eql(NodeMask.single(0)));
}

test "memory-only nodes are those with memory and no CPU" {
    var memory: NodeMask = .empty;
    for (0..4) |n| memory.set(n);
    var cpus: NodeMask = .empty;
    cpus.set(0);
    cpus.set(1);
    cpus.set(5); // a CPU node without memory is no candidate
    var want: NodeMask = .empty;
    want.set(2);
    want.set(3);
    try std.testing.expect(memoryOnly(memory, cpus).eql(want));
    try std.testing.expect(memoryOnly(memory, memory).isEmpty());
}

test "distanceAt reads the n-th field of a distance line" {
    try std.testing.expectEqual(@as(?u32, 30), distanceAt("10 21 30 40\n", 2));
    try std.testing.expectEqual(@as(?u32, null), distanceAt("10 21\n", 5));
}

test "without memory-only nodes, KMEM_DAX says why and how to override" {
    var why: [256]u8 = undefined;
    const cpus = sysfs.nodesWithCpus() orelse return error.SkipZigTest;
    const memory = sysfs.nodesWithMemory() orelse return error.SkipZigTest;
    if (!memory.isSubsetOf(cpus)) return error.SkipZigTest; // a machine with CXL nodes
    try std.testing.expect(kmemDaxNodes(null, &why) == null);
    try std.testing.expect(std.mem.indexOf(u8, std.mem.sliceTo(&why, 0), "MEMKIND_DAX_KMEM_NODES") != null);
}

test "MEMKIND_DAX_KMEM_NODES overrides detection and is checked" {
    var why: [256]u8 = undefined;
    try std.testing.expect(kmemDaxNodes("0", &why).?.eql(NodeMask.single(0)));
    try std.testing.expect(kmemDaxNodes("0-x", &why) == null);
    try std.testing.expect(std.mem.indexOf(u8, std.mem.sliceTo(&why, 0), "bad token \"x\"") != null);
}
