//! Fuzz target: policy strings `MODE[:NODES]` (policy.zig `Policy.parse`).
//!
//! Input: one byte choosing the allowed nodes (check.allowedFromByte), then
//! the spec. Rejected: the token's offsets lie in the spec, and the reason
//! is one line that names the token (verbatim unless escaped). Accepted: `format` → `parse` gives the
//! same mode, nodes and weights (within the allowed nodes, as for node lists).
const std = @import("std");
const policy = @import("placement").policy;
const check = @import("fuzz_check");

pub const panic = std.debug.FullPanic(check.panic);
const Policy = policy.Policy;
const NodeMask = @FieldType(Policy, "nodes");

/// Longest formatted policy: a mode and 1024 explicit `NODE=WEIGHT` pairs.
const format_bytes_max = 16384;

export fn fuzz_policy(data: [*]const u8, len: usize) void {
    if (len == 0) return;
    const allowed = check.allowedFromByte(NodeMask, data[0]);
    const spec = data[1..len];
    switch (Policy.parse(spec, allowed)) {
        .ok => |p| expectRoundTrip(&p, allowed, spec),
        .err => |e| expectError(e, spec),
    }
}

fn expectError(e: policy.ParseError, spec: []const u8) void {
    if (!(e.start <= e.end and e.end <= spec.len)) check.fail("fuzz: error offsets outside the spec: ", spec);
    var buf: [2 * format_bytes_max]u8 = undefined;
    const reason = e.describe(spec, &buf);
    check.expectOneLine(reason);
    if (check.printable(e.token(spec))) check.expectContains(reason, e.token(spec));
}

fn expectRoundTrip(p: *const Policy, allowed: NodeMask, spec: []const u8) void {
    if (p.mode != .default and p.nodes.isEmpty()) check.fail("fuzz: accepted a policy without nodes: ", spec);
    var buf: [format_bytes_max]u8 = undefined;
    const formatted = p.format(&buf);
    if (formatted.len == 0 or formatted.len == buf.len) check.fail("fuzz: format cut or empty for: ", spec);
    expectParsesTo(formatted, NodeMask.full, p);
    if (p.nodes.isSubsetOf(allowed)) expectParsesTo(formatted, allowed, p);
}

fn expectParsesTo(formatted: []const u8, allowed: NodeMask, p: *const Policy) void {
    switch (Policy.parse(formatted, allowed)) {
        .ok => |again| if (again.mode != p.mode or !again.nodes.eql(p.nodes) or
            !std.mem.eql(u8, &again.weights, &p.weights))
            check.fail("fuzz: format -> parse changed the policy: ", formatted),
        .err => check.fail("fuzz: format wrote a policy parse rejects: ", formatted),
    }
}
