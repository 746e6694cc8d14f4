//! Fuzz target: the environment → default pool policy (policy_env.zig
//! `fromVariables`, what registry.zig's `policyFromEnvironment` runs before main).
//!
//! Input: a flags byte (bit 0 HMALLOC_POLICY, 1 HMALLOC_NODEMASK,
//! 2 HMALLOC_MPOL_MODE, 3 HMALLOC_JEMALLOC set), then the set variables'
//! values in that order, separated by NUL bytes (missing ones are empty).
//! Nodes are this machine's (sysfs) and accepted policies are validated by
//! a probe mbind, as in the library. Rejected: the NUL-terminated message
//! is one line `VARIABLE="VALUE": REASON` naming a set variable and, when it
//! fits the library's buffer, that variable's whole value (verbatim unless
//! escaped). Accepted: the
//! policy formats to a string that `Policy.parse` reads back identically.
const std = @import("std");
const policy_env = @import("placement").policy_env;
const check = @import("fuzz_check");

pub const panic = std.debug.FullPanic(check.panic);
const Policy = @typeInfo(@typeInfo(@TypeOf(policy_env.fromVariables)).@"fn".return_type.?).error_union.payload;

/// The library's own buffer size (policy_env.message_bytes).
const message_bytes = 512;
const names = [_][]const u8{ "HMALLOC_POLICY", "HMALLOC_NODEMASK", "HMALLOC_MPOL_MODE", "HMALLOC_JEMALLOC" };

export fn fuzz_policy_env(data: [*]const u8, len: usize) void {
    if (len == 0) return;
    const flags = data[0];
    var values: [4]?[]const u8 = .{ null, null, null, null };
    var rest = data[1..len];
    for (&values, 0..) |*value, i| {
        if (flags & (@as(u8, 1) << @intCast(i)) == 0) continue;
        const stop = std.mem.indexOfScalar(u8, rest, 0) orelse rest.len;
        value.* = rest[0..stop];
        rest = rest[@min(rest.len, stop + 1)..];
    }
    const vars: policy_env.Variables = .{ .policy = values[0], .nodemask = values[1], .mpol_mode = values[2], .jemalloc = values[3] };
    var message: [message_bytes]u8 = undefined;
    if (policy_env.fromVariables(vars, &message)) |p| {
        expectRoundTrip(&p);
    } else |_| {
        const line = std.mem.sliceTo(&message, 0);
        if (line.len == message.len) check.fail("fuzz: message not NUL-terminated", "");
        check.expectOneLine(line);
        expectNamesValue(line, values);
    }
}

fn expectNamesValue(line: []const u8, values: [4]?[]const u8) void {
    for (names, values) |name, value| {
        const v = value orelse continue;
        if (!std.mem.startsWith(u8, line, name) or !std.mem.startsWith(u8, line[name.len..], "=\"")) continue;
        // Quoted with escapes: compare verbatim only what has nothing to escape.
        if (!check.printable(v)) return;
        const shown = line[name.len + 2 ..];
        // Cut to fit: then the value shows as far as the buffer goes.
        if (line.len + 1 == message_bytes) {
            if (!std.mem.startsWith(u8, v, shown[0..@min(shown.len, v.len)])) check.fail("fuzz: cut message does not show the value: ", line);
        } else if (!std.mem.startsWith(u8, shown, v) or !std.mem.startsWith(u8, shown[v.len..], "\": ")) {
            check.fail("fuzz: message does not quote the whole value: ", line);
        }
        return;
    }
    check.fail("fuzz: message names no variable that is set: ", line);
}

fn expectRoundTrip(p: *const Policy) void {
    var buf: [16384]u8 = undefined;
    const formatted = p.format(&buf);
    if (formatted.len == 0) check.fail("fuzz: format wrote nothing", "");
    switch (Policy.parse(formatted, p.nodes.unionWith(@TypeOf(p.nodes).single(0)))) {
        .ok => |again| if (again.mode != p.mode or !again.nodes.eql(p.nodes) or !std.mem.eql(u8, &again.weights, &p.weights))
            check.fail("fuzz: format -> parse changed the policy: ", formatted),
        .err => check.fail("fuzz: format wrote a policy parse rejects: ", formatted),
    }
}
