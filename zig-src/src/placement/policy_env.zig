//! The default pool's policy, from the environment, once, before main.
//!
//! What: `fromEnvironmentChecked()` reads
//!   HMALLOC_POLICY      tiermem's `MODE[:NODES]` (policy.zig); wins when set,
//!                       and then the reference's variables are not read at all;
//!   HMALLOC_NODEMASK    else the reference's (SK hynix HMSDK hmalloc) pair: a
//!   HMALLOC_MPOL_MODE   decimal u64 mask of nodes 0-63 and an MPOL_* number
//!                       (0-3, 5, 6); MPOL_DEFAULT (0) alone needs no mask;
//!   HMALLOC_JEMALLOC    accepted and ignored: the reference chose its jemalloc
//!                       arena back end with it; tiermem has one allocator.
//! No variable set → `Policy{ .mode = .default }`: pages follow the
//! process's own policy, exactly like malloc's.
//!
//! A bad value stops the program (registry.zig's `policyFromEnvironment`:
//! placement reports nothing itself): one line on fd 2 naming the variable, its
//! value and the bad token, then exit status 2. Quoted values are escaped
//! (`"`, `\`, control bytes as `\n`, `\x1b`; node_list.Quoted), so the line
//! stays one line. The lines (after `hmalloc: `):
//!   HMALLOC_POLICY="SPEC": REASON                 (policy.zig's texts, e.g.)
//!   HMALLOC_POLICY="bind:0-x": bad token "x"
//!   HMALLOC_POLICY="bind:9": node 9 is not online
//!   HMALLOC_POLICY="": empty policy
//!   HMALLOC_NODEMASK="5": HMALLOC_MPOL_MODE is not set
//!   HMALLOC_MPOL_MODE="2": HMALLOC_NODEMASK is not set
//!   HMALLOC_MPOL_MODE="2x": bad token "2x" (an MPOL_* number: 0-3, 5 or 6)
//!   HMALLOC_MPOL_MODE="4": unknown mode 4 (an MPOL_* number: 0-3, 5 or 6)
//!   HMALLOC_NODEMASK="0x3": bad token "0x3" (a decimal mask of nodes 0-63)
//!   HMALLOC_NODEMASK="0": selects no node
//!   HMALLOC_NODEMASK="5": default takes no nodes
//!   HMALLOC_NODEMASK="3": preferred takes exactly one node, "3" names 2
//!   HMALLOC_NODEMASK="2": node 1 is not online     (validate()'s texts)
//! Why stop rather than fall back to default: the reference ran the
//! program unplaced after a bad node, and the user measured the wrong thing.
//!
//! Why `_exit(2)` and not `exit(2)`: this runs inside the library
//! constructor or the first malloc, with the allocator's registry lock
//! held. exit() would run atexit handlers and flush stdio, which may call
//! malloc — under libmemtier that is our malloc, waiting for the lock we
//! hold: a deadlock instead of an error. _exit ends the process at once;
//! nothing of ours is buffered (the line went out with write(2)).
//!
//! Why std.c.getenv: it returns a pointer into environ without copying or
//! allocating, so it is safe inside malloc. Everything else here is fixed
//! buffers on the stack.
const std = @import("std");
const linux = std.os.linux;
const assert = std.debug.assert;
const policy_mod = @import("policy.zig");
const node_mask = @import("node_mask.zig");
const sysfs = @import("sysfs.zig");
const quoted = @import("node_list.zig").quoted;
const Policy = policy_mod.Policy;
const Mode = policy_mod.Mode;
const NodeMask = node_mask.NodeMask;

/// The variables' values (null = not set).
pub const Variables = struct {
    policy: ?[]const u8 = null,
    nodemask: ?[]const u8 = null,
    mpol_mode: ?[]const u8 = null,
    jemalloc: ?[]const u8 = null,
};

pub const Error = error{InvalidPolicy};

/// Exit status for a bad policy in the environment.
pub const exit_status_invalid = 2;
pub const message_bytes = 512;

/// Reads the variables with getenv (no allocation).
pub fn read() Variables {
    return .{
        .policy = get("HMALLOC_POLICY"),
        .nodemask = get("HMALLOC_NODEMASK"),
        .mpol_mode = get("HMALLOC_MPOL_MODE"),
        .jemalloc = get("HMALLOC_JEMALLOC"),
    };
}

fn get(name: [*:0]const u8) ?[]const u8 {
    const value = std.c.getenv(name) orelse return null;
    return std.mem.span(value);
}

/// The policy the environment asks for. On error, `message` holds the line
/// (without the `hmalloc: ` prefix and newline), NUL-terminated; the
/// caller (registry.zig's `policyFromEnvironment`) writes it and exits.
pub fn fromEnvironmentChecked(message: []u8) Error!Policy {
    return fromVariables(read(), message);
}

/// The policy `vars` describe, validated against this machine.
pub fn fromVariables(vars: Variables, message: []u8) Error!Policy {
    assert(message.len > 0);
    message[0] = 0;
    var reason: [320]u8 = undefined;
    if (vars.policy) |spec| {
        const p = switch (Policy.parse(spec, sysfs.usableNodes())) {
            .ok => |p| p,
            .err => |e| return fail(message, "HMALLOC_POLICY", spec, e.describe(spec, &reason)),
        };
        if (p.validate()) |e| return fail(message, "HMALLOC_POLICY", spec, e.describe(&reason));
        return p;
    }
    const p = switch (fromReference(vars, &reason)) {
        .ok => |p| p,
        .err => |e| return fail(message, e.variable, e.value, e.reason),
    };
    if (p.validate()) |e| return fail(message, "HMALLOC_NODEMASK", vars.nodemask.?, e.describe(&reason));
    return p;
}

const ReferenceResult = union(enum) {
    ok: Policy,
    err: struct { variable: []const u8, value: []const u8, reason: []const u8 },
};

const mode_hint = " (an MPOL_* number: 0-3, 5 or 6)";

/// HMALLOC_NODEMASK + HMALLOC_MPOL_MODE → Policy (syntax only).
fn fromReference(vars: Variables, buf: []u8) ReferenceResult {
    const mode_text = vars.mpol_mode orelse {
        const mask_text = vars.nodemask orelse return .{ .ok = .{} };
        return refError("HMALLOC_NODEMASK", mask_text, "HMALLOC_MPOL_MODE is not set");
    };
    const number = parseDecimal(mode_text) orelse
        return refError("HMALLOC_MPOL_MODE", mode_text, print(buf, "bad token {f}" ++ mode_hint, .{quoted(mode_text)}));
    const mode = Mode.fromMpol(number) orelse
        return refError("HMALLOC_MPOL_MODE", mode_text, print(buf, "unknown mode {d}" ++ mode_hint, .{number}));
    const mask_text = vars.nodemask orelse {
        if (mode == .default) return .{ .ok = .{} };
        return refError("HMALLOC_MPOL_MODE", mode_text, "HMALLOC_NODEMASK is not set");
    };
    const mask = parseDecimal(mask_text) orelse
        return refError("HMALLOC_NODEMASK", mask_text, print(buf, "bad token {f} (a decimal mask of nodes 0-63)", .{quoted(mask_text)}));
    if (mode == .default) return refError("HMALLOC_NODEMASK", mask_text, "default takes no nodes");
    if (mask == 0) return refError("HMALLOC_NODEMASK", mask_text, "selects no node");
    const nodes = NodeMask.fromU64(mask);
    if (mode == .preferred and nodes.count() != 1)
        return refError("HMALLOC_NODEMASK", mask_text, print(buf, "preferred takes exactly one node, {f} names {d}", .{ quoted(mask_text), nodes.count() }));
    return .{ .ok = .{ .mode = mode, .nodes = nodes } };
}

fn refError(variable: []const u8, value: []const u8, reason: []const u8) ReferenceResult {
    return .{ .err = .{ .variable = variable, .value = value, .reason = reason } };
}

/// Digits only (no sign, blanks or 0x), fitting a u64.
fn parseDecimal(text: []const u8) ?u64 {
    if (text.len == 0) return null;
    for (text) |c| if (!std.ascii.isDigit(c)) return null;
    return std.fmt.parseInt(u64, text, 10) catch null;
}

/// `VARIABLE="VALUE": REASON`, cut to fit, NUL-terminated.
fn fail(message: []u8, variable: []const u8, value: []const u8, reason: []const u8) Error {
    const line = print(message[0 .. message.len - 1], "{s}={f}: {s}", .{ variable, quoted(value), reason });
    message[line.len] = 0;
    return error.InvalidPolicy;
}

fn print(buf: []u8, comptime fmt: []const u8, args: anytype) []const u8 {
    return std.fmt.bufPrint(buf, fmt, args) catch buf[0..buf.len];
}

const testing = std.testing;

fn expectPolicy(vars: Variables, spec: []const u8) !void {
    var message: [message_bytes]u8 = undefined;
    const p = fromVariables(vars, &message) catch {
        std.debug.print("unexpected: {s}\n", .{std.mem.sliceTo(&message, 0)});
        return error.TestUnexpectedResult;
    };
    var buf: [128]u8 = undefined;
    try testing.expectEqualStrings(spec, p.format(&buf));
}

fn expectMessage(vars: Variables, line: []const u8) !void {
    var message: [message_bytes]u8 = undefined;
    try testing.expectError(error.InvalidPolicy, fromVariables(vars, &message));
    try testing.expectEqualStrings(line, std.mem.sliceTo(&message, 0));
}

test "no variables: the default policy, like malloc" {
    try expectPolicy(.{}, "default");
    try expectPolicy(.{ .jemalloc = "1" }, "default");
    try expectPolicy(.{ .mpol_mode = "0" }, "default");
}

test "HMALLOC_POLICY, and it wins over the reference's variables" {
    try expectPolicy(.{ .policy = "bind:0" }, "bind:0");
    try expectPolicy(.{ .policy = "interleave:all" }, "interleave:0");
    try expectPolicy(.{ .policy = "default" }, "default");
    try expectPolicy(.{ .policy = "preferred:0", .nodemask = "garbage", .mpol_mode = "9" }, "preferred:0");
}

test "the reference's HMALLOC_NODEMASK and HMALLOC_MPOL_MODE" {
    try expectPolicy(.{ .nodemask = "1", .mpol_mode = "2" }, "bind:0");
    try expectPolicy(.{ .nodemask = "1", .mpol_mode = "1" }, "preferred:0");
    try expectPolicy(.{ .nodemask = "1", .mpol_mode = "3", .jemalloc = "1" }, "interleave:0");
    try expectPolicy(.{ .nodemask = "1", .mpol_mode = "5" }, "preferred-many:0");
    try expectPolicy(.{ .nodemask = "1", .mpol_mode = "6" }, "weighted-interleave:0");
}

test "bad HMALLOC_POLICY: one line naming the variable and the token" {
    try expectMessage(.{ .policy = "bind:0-x" }, "HMALLOC_POLICY=\"bind:0-x\": bad token \"x\"");
    try expectMessage(.{ .policy = "" }, "HMALLOC_POLICY=\"\": empty policy");
    // A newline in the value stays escaped: the error is still one line.
    try expectMessage(.{ .policy = "bind:0\n" }, "HMALLOC_POLICY=\"bind:0\\n\": bad token \"0\\n\"");
    try expectMessage(.{ .nodemask = "1\x1b", .mpol_mode = "2" }, "HMALLOC_NODEMASK=\"1\\x1b\": bad token \"1\\x1b\" (a decimal mask of nodes 0-63)");
    try expectMessage(.{ .policy = "bind:1024" }, "HMALLOC_POLICY=\"bind:1024\": node \"1024\" is out of range (max 1023)");
    if (!(sysfs.onlineNodes() orelse NodeMask.single(0)).isSet(9))
        try expectMessage(.{ .policy = "bind:9" }, "HMALLOC_POLICY=\"bind:9\": node 9 is not online");
}

test "bad reference variables: each case names its variable" {
    try expectMessage(.{ .nodemask = "5" }, "HMALLOC_NODEMASK=\"5\": HMALLOC_MPOL_MODE is not set");
    try expectMessage(.{ .mpol_mode = "2" }, "HMALLOC_MPOL_MODE=\"2\": HMALLOC_NODEMASK is not set");
    try expectMessage(.{ .nodemask = "1", .mpol_mode = "2x" }, "HMALLOC_MPOL_MODE=\"2x\": bad token \"2x\"" ++ mode_hint);
    try expectMessage(.{ .nodemask = "1", .mpol_mode = "4" }, "HMALLOC_MPOL_MODE=\"4\": unknown mode 4" ++ mode_hint);
    try expectMessage(.{ .nodemask = "1", .mpol_mode = "" }, "HMALLOC_MPOL_MODE=\"\": bad token \"\"" ++ mode_hint);
    try expectMessage(.{ .nodemask = "0x3", .mpol_mode = "2" }, "HMALLOC_NODEMASK=\"0x3\": bad token \"0x3\" (a decimal mask of nodes 0-63)");
    try expectMessage(.{ .nodemask = "18446744073709551616", .mpol_mode = "2" }, "HMALLOC_NODEMASK=\"18446744073709551616\": bad token \"18446744073709551616\" (a decimal mask of nodes 0-63)");
    try expectMessage(.{ .nodemask = "0", .mpol_mode = "2" }, "HMALLOC_NODEMASK=\"0\": selects no node");
    try expectMessage(.{ .nodemask = "5", .mpol_mode = "0" }, "HMALLOC_NODEMASK=\"5\": default takes no nodes");
    try expectMessage(.{ .nodemask = "3", .mpol_mode = "1" }, "HMALLOC_NODEMASK=\"3\": preferred takes exactly one node, \"3\" names 2");
    if (!(sysfs.onlineNodes() orelse NodeMask.single(0)).isSet(1))
        try expectMessage(.{ .nodemask = "2", .mpol_mode = "2" }, "HMALLOC_NODEMASK=\"2\": node 1 is not online");
}

test "fromEnvironmentChecked reads the real environment" {
    var message: [message_bytes]u8 = undefined;
    const vars = read();
    if (vars.policy == null and vars.nodemask == null and vars.mpol_mode == null) {
        const p = try fromEnvironmentChecked(&message);
        try testing.expectEqual(Mode.default, p.mode);
    }
}
