//! Tests of policy.zig: parsing and formatting policy strings, the
//! reference's variables, applying every mode (mbind) and the emulation.
const std = @import("std");
const Policy = policy_mod.Policy;
const linux = std.os.linux;
const numa = @import("placement").numa_syscalls;
const sysfs = @import("placement").sysfs;
const Mode = policy_mod.Mode;
const NodeMask = @import("placement").node_mask.NodeMask;
const mode_names = policy_mod.mode_names;
const mpol = numa.mpol;
const ValidateError = policy_mod.ValidateError;
const max_nodes = @import("placement").node_mask.max_nodes;
const policy_mod = @import("placement").policy;

const testing = std.testing;
const residency = @import("placement").residency;
const four = NodeMask.range(0, 3);

fn expectParsed(spec: []const u8, mode: Mode, nodes: NodeMask) !Policy {
    switch (Policy.parse(spec, four)) {
        .ok => |p| {
            try testing.expectEqual(mode, p.mode);
            try testing.expect(p.nodes.eql(nodes));
            return p;
        },
        .err => |e| {
            var buf: [256]u8 = undefined;
            std.debug.print("{s}: {s}\n", .{ spec, e.describe(spec, &buf) });
            return error.TestUnexpectedResult;
        },
    }
}

fn expectParseError(spec: []const u8, token: []const u8, text: []const u8) !void {
    const e = Policy.parse(spec, four).err;
    try testing.expectEqualStrings(token, e.token(spec));
    var buf: [256]u8 = undefined;
    try testing.expectEqualStrings(text, e.describe(spec, &buf));
}

test "parse: every mode of the policy string" {
    _ = try expectParsed("default", .default, .empty);
    _ = try expectParsed("bind:2", .bind, NodeMask.single(2));
    _ = try expectParsed("bind:!0", .bind, NodeMask.range(1, 3));
    _ = try expectParsed("bind:+1", .bind, NodeMask.single(1));
    _ = try expectParsed("preferred:3", .preferred, NodeMask.single(3));
    _ = try expectParsed("preferred-many:2,3", .preferred_many, NodeMask.range(2, 3));
    _ = try expectParsed("interleave:0-3", .interleave, four);
    _ = try expectParsed("interleave:all", .interleave, four);
    const w = try expectParsed("weighted-interleave:0-3", .weighted_interleave, four);
    try testing.expect(!w.hasExplicitWeights());
    const e = try expectParsed("weighted-interleave:0=3,2=1", .weighted_interleave, NodeMask.single(0).unionWith(NodeMask.single(2)));
    try testing.expect(e.hasExplicitWeights());
    try testing.expectEqual(@as(u8, 3), e.weights[0]);
    try testing.expectEqual(@as(u8, 1), e.weights[2]);
    try testing.expectEqual(@as(u8, 0), e.weights[1]);
    const r = try expectParsed("weighted-interleave:0-1=2,3=255", .weighted_interleave, NodeMask.range(0, 1).unionWith(NodeMask.single(3)));
    try testing.expectEqual(@as(u8, 2), r.weights[1]);
    try testing.expectEqual(@as(u8, 255), r.weights[3]);
    // A node outside the allowed set parses; validate() names it.
    _ = try expectParsed("bind:9", .bind, NodeMask.single(9));
}

test "parse errors name the token" {
    try expectParseError("", "", "empty policy");
    try expectParseError("foo:1", "foo", "unknown mode \"foo\" (" ++ mode_names ++ ")");
    try expectParseError("Bind:1", "Bind", "unknown mode \"Bind\" (" ++ mode_names ++ ")");
    try expectParseError("preferred_many:1", "preferred_many", "unknown mode \"preferred_many\" (" ++ mode_names ++ ")");
    try expectParseError("default:0", ":0", "default takes no nodes: \":0\"");
    try expectParseError("bind", "bind", "bind needs nodes, e.g. \"bind:0\"");
    try expectParseError("interleave:", "interleave:", "interleave needs nodes, e.g. \"interleave:0\"");
    try expectParseError("preferred:0-1", "0-1", "preferred takes exactly one node, \"0-1\" names 2");
    try expectParseError("preferred:all", "all", "preferred takes exactly one node, \"all\" names 4");
    try expectParseError("bind:0-x", "x", "bad token \"x\"");
    try expectParseError("bind:0=1", "0=1", "bad token \"0=1\"");
    try expectParseError("bind:1024", "1024", "node \"1024\" is out of range (max 1023)");
    try expectParseError("interleave:3-1", "3-1", "reversed range \"3-1\"");
    try expectParseError("bind:0,", "", "empty element at offset 7");
    try expectParseError("bind:!all", "!all", "\"!all\" selects no node");
    try expectParseError("weighted-interleave:0=0", "0", "bad weight \"0\" (1-255)");
    try expectParseError("weighted-interleave:0=256", "256", "bad weight \"256\" (1-255)");
    try expectParseError("weighted-interleave:0=+3", "+3", "bad weight \"+3\" (1-255)");
    try expectParseError("weighted-interleave:0=", "", "bad weight \"\" (1-255)");
    try expectParseError("weighted-interleave:0=3,2", "2", "missing \"=WEIGHT\" in \"2\"");
    try expectParseError("weighted-interleave:0=1,0-1=2", "0-1", "node \"0-1\" is given twice");
    try expectParseError("weighted-interleave:0=1,", "", "empty element at offset 24");
    try expectParseError("weighted-interleave:x=1", "x", "bad token \"x\"");
    try expectParseError("weighted-interleave:=1", "", "empty node list");
}

test "format round-trips through parse" {
    const specs = [_][]const u8{
        "default",                 "bind:2",                      "bind:0,2-3",
        "preferred:3",             "preferred-many:2-3",          "interleave:0-3",
        "weighted-interleave:0-3", "weighted-interleave:0=3,2=1", "weighted-interleave:0=2,1=2,3=255",
    };
    var buf: [256]u8 = undefined;
    for (specs) |spec| {
        const p = Policy.parse(spec, four).ok;
        const text = p.format(&buf);
        try testing.expectEqualStrings(spec, text);
        const again = Policy.parse(text, four).ok;
        try testing.expect(again.mode == p.mode and again.nodes.eql(p.nodes) and std.mem.eql(u8, &again.weights, &p.weights));
    }
    var small: [4]u8 = undefined;
    try testing.expectEqualStrings("", Policy.parse("bind:2", four).ok.format(&small));
}

test "MPOL number and the reference's 64-bit nodemask" {
    const p = Policy.parse("interleave:0,2", four).ok;
    try testing.expectEqual(@as(u32, 3), p.mpolNumber());
    try testing.expectEqual(@as(?u64, 5), p.referenceNodemask());
    try testing.expectEqual(@as(u32, 6), Policy.parse("weighted-interleave:0-3", four).ok.mpolNumber());
    try testing.expectEqual(@as(?u64, null), Policy.parse("weighted-interleave:0=2", four).ok.referenceNodemask());
    try testing.expectEqual(@as(?u64, null), (Policy{ .mode = .bind, .nodes = NodeMask.single(64) }).referenceNodemask());
    try testing.expectEqual(@as(?Mode, null), Mode.fromMpol(4));
    try testing.expectEqual(@as(?Mode, .preferred_many), Mode.fromMpol(5));
}

const Mapping = struct {
    base: usize,
    len: usize,
    fn init(len: usize) !Mapping {
        const rc = linux.mmap(null, len, .{ .READ = true, .WRITE = true }, .{ .TYPE = .PRIVATE, .ANONYMOUS = true }, -1, 0);
        if (linux.errno(rc) != .SUCCESS) return error.MapFailed;
        return .{ .base = rc, .len = len };
    }
    fn deinit(m: Mapping) void {
        _ = linux.munmap(@ptrFromInt(m.base), m.len);
    }
    fn touch(m: Mapping) void {
        const page = std.heap.pageSize();
        const bytes: [*]volatile u8 = @ptrFromInt(m.base);
        var at: usize = 0;
        while (at < m.len) : (at += page) bytes[at] = 1;
    }
};

test "apply default makes no syscall and leaves the process policy" {
    const m = try Mapping.init(1 << 20);
    defer m.deinit();
    var calls: usize = 0;
    try testing.expectEqual(linux.E.SUCCESS, (Policy{}).applyCounted(m.base, m.len, &calls));
    try testing.expectEqual(@as(usize, 0), calls);
    try testing.expectEqual(@as(usize, 0), (try numa.policyAt(m.base)).mode);
}

test "apply bind:0 before first touch puts every page on node 0" {
    const m = try Mapping.init(4 << 20);
    defer m.deinit();
    const p = Policy.parse("bind:0", sysfs.usableNodes()).ok;
    var calls: usize = 0;
    try testing.expectEqual(linux.E.SUCCESS, p.applyCounted(m.base, m.len, &calls));
    try testing.expectEqual(@as(usize, 1), calls);
    const at = try numa.policyAt(m.base + (1 << 20));
    try testing.expectEqual(@as(usize, 2), at.mode);
    try testing.expect(at.nodes.eql(NodeMask.single(0)));
    m.touch();
    var counts: [max_nodes]usize = undefined;
    try testing.expectEqual(@as(isize, 0), residency.countPages(m.base, m.len, &counts));
    try testing.expectEqual(m.len / std.heap.pageSize(), counts[0]);
}

test "apply to an offline node is EINVAL, never a silent success" {
    const m = try Mapping.init(1 << 20);
    defer m.deinit();
    const offline = (sysfs.onlineNodes() orelse NodeMask.single(0)).invertWithin(NodeMask.full).first().?;
    const p: Policy = .{ .mode = .bind, .nodes = NodeMask.single(offline) };
    try testing.expectEqual(linux.E.INVAL, p.apply(m.base, m.len));
    const w: Policy = .{ .mode = .interleave, .nodes = NodeMask.single(offline) };
    try testing.expectEqual(linux.E.INVAL, w.apply(m.base, m.len));
}

test "apply every mode to node 0 and read it back" {
    const cases = [_]struct { spec: []const u8, mpol: usize }{
        .{ .spec = "preferred:0", .mpol = 1 },
        .{ .spec = "interleave:0", .mpol = 3 },
        .{ .spec = "preferred-many:0", .mpol = 5 },
        .{ .spec = "weighted-interleave:0", .mpol = 6 },
        // Explicit weights are emulated; one node (equal weights) is plain interleave.
        .{ .spec = "weighted-interleave:0=7", .mpol = 3 },
    };
    for (cases) |c| {
        const m = try Mapping.init(1 << 20);
        defer m.deinit();
        const p = Policy.parse(c.spec, sysfs.usableNodes()).ok;
        try testing.expectEqual(linux.E.SUCCESS, p.apply(m.base, m.len));
        try testing.expectEqual(c.mpol, (try numa.policyAt(m.base)).mode);
    }
}

test "emulation on kernels without the new modes" {
    numa.setKernelSupportForTesting(mpol.preferred_many, false);
    numa.setKernelSupportForTesting(mpol.weighted_interleave, false);
    defer numa.setKernelSupportForTesting(mpol.preferred_many, null);
    defer numa.setKernelSupportForTesting(mpol.weighted_interleave, null);
    const m = try Mapping.init(8 << 20);
    defer m.deinit();
    // preferred-many → preferred of one of its nodes.
    try testing.expectEqual(linux.E.SUCCESS, Policy.parse("preferred-many:0", sysfs.usableNodes()).ok.apply(m.base, m.len));
    try testing.expectEqual(@as(usize, 1), (try numa.policyAt(m.base)).mode);
    // weighted-interleave with equal (sysfs or absent) weights → interleave.
    try testing.expectEqual(linux.E.SUCCESS, Policy.parse("weighted-interleave:0", sysfs.usableNodes()).ok.apply(m.base, m.len));
    try testing.expectEqual(@as(usize, 3), (try numa.policyAt(m.base)).mode);
    // Unequal weights → stripes bound per node; a stripe on an offline node
    // reports its EINVAL (nothing dropped silently), whichever comes first.
    const offline = (sysfs.onlineNodes() orelse NodeMask.single(0)).invertWithin(NodeMask.full).first().?;
    var p: Policy = .{ .mode = .weighted_interleave, .nodes = NodeMask.single(0).unionWith(NodeMask.single(offline)) };
    p.weights[0] = 3;
    p.weights[offline] = 1;
    for (0..2) |_| {
        var calls: usize = 0;
        try testing.expectEqual(linux.E.INVAL, p.applyCounted(m.base, m.len, &calls));
        try testing.expect(calls >= 1 and calls <= 2);
    }
}

test "validate: node 0 passes, a node that is not online is named" {
    try testing.expect(Policy.parse("bind:0", sysfs.usableNodes()).ok.validate() == null);
    try testing.expect((Policy{}).validate() == null);
    const offline = (sysfs.onlineNodes() orelse NodeMask.single(0)).invertWithin(NodeMask.full).first().?;
    const e = (Policy{ .mode = .bind, .nodes = NodeMask.single(offline) }).validate().?;
    try testing.expectEqual(offline, e.node);
    var buf: [128]u8 = undefined;
    var want: [64]u8 = undefined;
    try testing.expectEqualStrings(try std.fmt.bufPrint(&want, "node {d} is not online", .{offline}), e.describe(&buf));
    const not_allowed: ValidateError = .{ .reason = .not_allowed, .node = 2, .allowed = NodeMask.range(0, 1) };
    try testing.expectEqualStrings("node 2 is not allowed (Mems_allowed_list: 0-1)", not_allowed.describe(&buf));
    const rejected: ValidateError = .{ .reason = .kernel_rejected, .errno = .INVAL };
    try testing.expectEqualStrings("the kernel rejects it: mbind: EINVAL", rejected.describe(&buf));
}

test "parseChecked writes one NUL-terminated line" {
    var message: [256]u8 = undefined;
    const p = try Policy.parseChecked("bind:0", &message);
    try testing.expectEqual(Mode.bind, p.mode);
    try testing.expectError(error.InvalidPolicy, Policy.parseChecked("bind:0-x", &message));
    try testing.expectEqualStrings("invalid policy \"bind:0-x\": bad token \"x\"", std.mem.sliceTo(&message, 0));
    if (!(sysfs.onlineNodes() orelse NodeMask.single(0)).isSet(9)) {
        try testing.expectError(error.InvalidPolicy, Policy.parseChecked("bind:9", &message));
        try testing.expectEqualStrings("invalid policy \"bind:9\": node 9 is not online", std.mem.sliceTo(&message, 0));
    }
    var tiny: [8]u8 = undefined;
    try testing.expectError(error.InvalidPolicy, Policy.parseChecked("nope", &tiny));
    try testing.expectEqualStrings("invalid", std.mem.sliceTo(&tiny, 0));
}
