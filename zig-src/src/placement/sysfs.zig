//! Allocation-free readers of the kernel's NUMA topology files.
//!
//! What: the node sets under `/sys/devices/system/node/` (`possible`,
//! `online`, `has_memory`, `has_cpu`), the process's `Mems_allowed_list`
//! from `/proc/self/status` (its cpuset), the weighted-interleave weights
//! `/sys/kernel/mm/mempolicy/weighted_interleave/nodeN` and the kernel
//! release from uname(2).
//!
//! Why so plain: this code runs inside malloc and before main (the library
//! constructor reads the policy), so it may not allocate, may not use stdio
//! and may not use std.fs paths that allocate. Each reader is one raw
//! open/read/close into a fixed stack buffer and a parse of the bytes; the
//! largest buffer (8 KiB, for /proc/self/status) lives on the caller's stack
//! for the call only. Files hold the kernel's list format (`0-3,8-11\n`),
//! parsed here by `parseKernelList` — deliberately not by node_list.zig,
//! whose numactl syntax (`!`, `+`, `all`) the kernel never writes.
//!
//! Trade-off: nothing is cached except `possibleBits()` (the size of every
//! kernel node mask, fixed at boot), because online nodes, cpusets and
//! weights can change while the program runs; readers cost a few syscalls
//! and are meant for start-up, validation and tools, not for hot paths.
//! A file that cannot be read gives null (callers choose the fallback), a
//! missing weight file gives the kernel's default weight 1.
const std = @import("std");
const linux = std.os.linux;
const assert = std.debug.assert;
const node_mask = @import("node_mask.zig");
const NodeMask = node_mask.NodeMask;
const max_nodes = node_mask.max_nodes;

pub const possible_path = "/sys/devices/system/node/possible";
pub const online_path = "/sys/devices/system/node/online";
pub const has_memory_path = "/sys/devices/system/node/has_memory";
pub const has_cpu_path = "/sys/devices/system/node/has_cpu";
pub const status_path = "/proc/self/status";
pub const weights_dir = "/sys/kernel/mm/mempolicy/weighted_interleave";

/// Buffer for a one-line sysfs list (1024 nodes written as "0,2,4,..." fit).
const list_buffer_bytes = 4096;
/// Buffer for /proc/self/status (about 1.5 KiB on 6.x kernels).
const status_buffer_bytes = 8192;

pub fn possibleNodes() ?NodeMask {
    return readListFile(possible_path);
}

pub fn onlineNodes() ?NodeMask {
    return readListFile(online_path);
}

pub fn nodesWithMemory() ?NodeMask {
    return readListFile(has_memory_path);
}

pub fn nodesWithCpus() ?NodeMask {
    return readListFile(has_cpu_path);
}

/// The process's `Mems_allowed_list` (its cpuset's memory nodes).
pub fn memsAllowed() ?NodeMask {
    var buf: [status_buffer_bytes]u8 = undefined;
    const text = readFile(status_path, &buf) orelse return null;
    const value = statusField(text, "Mems_allowed_list") orelse return null;
    return parseKernelList(value);
}

/// Nodes a policy may name: online and in Mems_allowed. Falls back to
/// whichever of the two is readable, then to node 0 (a machine without
/// /sys mounted is treated as one node, which is what the kernel does too).
pub fn usableNodes() NodeMask {
    const online = onlineNodes();
    const allowed = memsAllowed();
    if (online != null and allowed != null) return online.?.intersect(allowed.?);
    return online orelse allowed orelse NodeMask.single(0);
}

var possible_bits_cache: std.atomic.Value(usize) = .init(0);

/// Bits of a kernel node mask on this machine: the highest possible node
/// + 1, read once (the possible set is fixed at boot). Falls back to
/// `max_nodes` when sysfs is unreadable: always a safe size, since
/// NodeMask's words hold that many bits.
pub fn possibleBits() usize {
    const cached = possible_bits_cache.load(.monotonic);
    if (cached != 0) {
        @branchHint(.likely);
        return cached;
    }
    const bits: usize = if (possibleNodes()) |m| (if (m.last()) |n| @as(usize, n) + 1 else max_nodes) else max_nodes;
    assert(bits >= 1 and bits <= max_nodes);
    possible_bits_cache.store(bits, .monotonic);
    return bits;
}

/// The weighted-interleave weight of `node` (1..255): the kernel's default
/// 1 when the file is absent (kernels before 6.9) or unreadable.
pub fn interleaveWeight(node: usize) u8 {
    assert(node < max_nodes);
    var path: [weights_dir.len + 16]u8 = undefined;
    const text_path = std.fmt.bufPrint(path[0 .. path.len - 1], weights_dir ++ "/node{d}", .{node}) catch unreachable;
    path[text_path.len] = 0;
    const p: [*:0]const u8 = path[0..text_path.len :0];
    var buf: [32]u8 = undefined;
    const text = readFile(p, &buf) orelse return 1;
    const value = std.fmt.parseInt(u8, std.mem.trim(u8, text, " \t\n"), 10) catch return 1;
    return if (value == 0) 1 else value;
}

pub const Version = struct {
    major: u32,
    minor: u32,

    pub fn atLeast(v: Version, major: u32, minor: u32) bool {
        return v.major > major or (v.major == major and v.minor >= minor);
    }
};

/// The running kernel's major.minor from uname(2), e.g. 6.18.
pub fn kernelVersion() ?Version {
    var uts: linux.utsname = undefined;
    if (linux.errno(linux.uname(&uts)) != .SUCCESS) return null;
    return parseRelease(std.mem.sliceTo(&uts.release, 0));
}

/// "6.18.44-fc-v782" → 6.18.
pub fn parseRelease(release: []const u8) ?Version {
    var it = std.mem.splitScalar(u8, release, '.');
    const major = leadingNumber(it.next() orelse return null) orelse return null;
    const minor = leadingNumber(it.next() orelse return null) orelse return null;
    return .{ .major = major, .minor = minor };
}

fn leadingNumber(text: []const u8) ?u32 {
    var end: usize = 0;
    while (end < text.len and std.ascii.isDigit(text[end])) end += 1;
    if (end == 0) return null;
    return std.fmt.parseInt(u32, text[0..end], 10) catch null;
}

/// Parses the kernel's node list format ("0-3,8,10-11", optional newline;
/// empty = no nodes). Null for anything else or a node ≥ max_nodes.
pub fn parseKernelList(text: []const u8) ?NodeMask {
    var m: NodeMask = .empty;
    const body = std.mem.trim(u8, text, " \t\n");
    if (body.len == 0) return m;
    var it = std.mem.splitScalar(u8, body, ',');
    while (it.next()) |element| {
        const dash = std.mem.indexOfScalar(u8, element, '-');
        const lo_text = if (dash) |d| element[0..d] else element;
        const hi_text = if (dash) |d| element[d + 1 ..] else element;
        const lo = parseNode(lo_text) orelse return null;
        const hi = parseNode(hi_text) orelse return null;
        if (lo > hi) return null;
        m = m.unionWith(NodeMask.range(lo, hi));
    }
    return m;
}

fn parseNode(text: []const u8) ?usize {
    if (text.len == 0) return null;
    for (text) |c| if (!std.ascii.isDigit(c)) return null;
    const n = std.fmt.parseInt(usize, text, 10) catch return null;
    return if (n < max_nodes) n else null;
}

/// The value of `name:` in a /proc/PID/status text, without surrounding blanks.
pub fn statusField(text: []const u8, name: []const u8) ?[]const u8 {
    var lines = std.mem.splitScalar(u8, text, '\n');
    while (lines.next()) |line| {
        if (line.len > name.len and std.mem.startsWith(u8, line, name) and line[name.len] == ':')
            return std.mem.trim(u8, line[name.len + 1 ..], " \t");
    }
    return null;
}

/// Reads a node list file (one of the paths above, or any file in that format).
pub fn readListFile(path: [*:0]const u8) ?NodeMask {
    var buf: [list_buffer_bytes]u8 = undefined;
    const text = readFile(path, &buf) orelse return null;
    return parseKernelList(text);
}

/// Reads up to buf.len bytes of a file with raw syscalls. Null when it
/// cannot be opened or read, or when it does not fit (a truncated list
/// would silently lose nodes).
pub fn readFile(path: [*:0]const u8, buf: []u8) ?[]u8 {
    const open_rc = linux.open(path, .{ .ACCMODE = .RDONLY, .CLOEXEC = true }, 0);
    if (linux.errno(open_rc) != .SUCCESS) return null;
    const fd: linux.fd_t = @intCast(open_rc);
    defer _ = linux.close(fd);
    var used: usize = 0;
    while (true) {
        if (used == buf.len) return null;
        const rc = linux.read(fd, buf[used..].ptr, buf.len - used);
        switch (linux.errno(rc)) {
            .SUCCESS => {},
            .INTR => continue,
            else => return null,
        }
        if (rc == 0) return buf[0..used];
        used += rc;
    }
}

const testing = std.testing;

test "parseKernelList: the kernel's list format" {
    try testing.expect(parseKernelList("0\n").?.eql(NodeMask.single(0)));
    try testing.expect(parseKernelList("0-3\n").?.eql(NodeMask.range(0, 3)));
    const sparse = parseKernelList("0,2-3,1023").?;
    try testing.expectEqual(@as(usize, 4), sparse.count());
    try testing.expect(sparse.isSet(1023) and !sparse.isSet(1));
    try testing.expect(parseKernelList("\n").?.isEmpty()); // e.g. has_memory with no memory nodes
    try testing.expect(parseKernelList("1024") == null);
    try testing.expect(parseKernelList("3-1") == null);
    try testing.expect(parseKernelList("0,") == null);
    try testing.expect(parseKernelList("x") == null);
}

test "statusField finds Mems_allowed_list, not Mems_allowed" {
    const status = "Name:\tzig\nMems_allowed:\t00000000,00000003\nMems_allowed_list:\t0-1\nvoluntary_ctxt_switches:\t1\n";
    try testing.expectEqualStrings("0-1", statusField(status, "Mems_allowed_list").?);
    try testing.expectEqualStrings("00000000,00000003", statusField(status, "Mems_allowed").?);
    try testing.expect(statusField(status, "Cpus_allowed") == null);
}

test "parseRelease" {
    const v = parseRelease("6.18.44-fc-v782").?;
    try testing.expectEqual(@as(u32, 6), v.major);
    try testing.expectEqual(@as(u32, 18), v.minor);
    try testing.expect(v.atLeast(5, 15) and v.atLeast(6, 9) and !v.atLeast(6, 19) and !v.atLeast(7, 0));
    try testing.expect(parseRelease("5.4").?.atLeast(5, 4));
    try testing.expect(parseRelease("garbage") == null);
}

test "this machine: node 0 is possible, online, has memory, and is allowed" {
    try testing.expect(possibleNodes().?.isSet(0));
    try testing.expect(onlineNodes().?.isSet(0));
    try testing.expect(nodesWithMemory().?.isSet(0));
    try testing.expect(memsAllowed().?.isSet(0));
    try testing.expect(usableNodes().isSet(0));
    const bits = possibleBits();
    try testing.expectEqual(@as(usize, possibleNodes().?.last().? + 1), bits);
    try testing.expect(kernelVersion() != null);
}

test "weights: a missing file means weight 1" {
    try testing.expectEqual(@as(u8, 1), interleaveWeight(1023));
    const w0 = interleaveWeight(0);
    try testing.expect(w0 >= 1);
}

test "readFile refuses a file larger than its buffer" {
    var small: [4]u8 = undefined;
    try testing.expect(readFile(status_path, &small) == null);
    try testing.expect(readFile("/nonexistent/tiermem", &small) == null);
}
