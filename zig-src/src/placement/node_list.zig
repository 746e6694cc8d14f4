//! numactl's node-list syntax, parsed into a NodeMask without allocation.
//!
//! What: the lists users write after `--membind=`, in `HMALLOC_POLICY` and
//! for `hm_migrate`, resolved against the nodes the process may use
//! (`allowed`, normally online ∩ Mems_allowed from sysfs.zig):
//!
//!     2        node 2
//!     0,2      nodes 0 and 2
//!     1-2,5    nodes 1, 2 and 5
//!     all      every allowed node
//!     !0       every allowed node but 0 (`!` inverts the whole rest)
//!     +0       the first allowed node (`+` makes numbers indexes into the
//!     +0-1     allowed set, in ascending order: the 1st and 2nd)
//!     !+0      every allowed node but the first
//!
//! Explicitly named nodes (single numbers and the two ends of a range) are
//! kept even when they are not in `allowed`; nodes strictly inside a range
//! are kept only when allowed (a sparse topology such as 0,2,4 with `0-4`
//! gives 0,2,4, as numactl does). Why keep a bad explicit node instead of
//! dropping it: the caller's check (Policy.validate, hm_migrate) then names
//! it — `node 9 is not online` — instead of the program silently running
//! with fewer nodes than the user asked for, which is what the reference
//! did. This parser only judges syntax; it never reads the machine.
//!
//! Errors carry the offending token as offsets into the text and a reason,
//! so every caller prints the same one-liner, e.g.
//!     invalid node list "0-x": bad token "x"
//! Quoted input is escaped (`"`, `\`, control bytes as `\n`, `\x1b`: see
//! `Quoted`), so a message is always one printable line.
//! Reasons and their texts (`Error.describe`):
//!     empty node list
//!     nothing after "!+"                      (prefix without nodes)
//!     empty element at offset N               ("0,", ",0", "0,,1")
//!     bad token "x"                           (not a number / not a range)
//!     node "1024" is out of range (max 1023)
//!     reversed range "3-1"
//!     relative node "+4" is beyond the 4 allowed nodes
//!     "!all" selects no node
//!
//! Trade-off: `all`, `!` and `+` only at the start (as numactl's
//! numa_parse_nodestring), no strides or CPU-relative forms; that covers
//! numactl's documented syntax and keeps errors unambiguous.
const std = @import("std");
const assert = std.debug.assert;
const node_mask = @import("node_mask.zig");
const NodeMask = node_mask.NodeMask;
const max_nodes = node_mask.max_nodes;

pub const Reason = enum {
    empty,
    nothing_after_prefix,
    empty_element,
    bad_token,
    out_of_range,
    reversed_range,
    relative_beyond,
    selects_nothing,
};

pub const Error = struct {
    /// The offending token is text[start..end] (offsets into the parsed text).
    start: usize,
    end: usize,
    reason: Reason,
    /// For `relative_beyond`: how many nodes are allowed.
    limit: usize = 0,

    pub fn token(e: Error, text: []const u8) []const u8 {
        return text[e.start..e.end];
    }

    /// The reason as text naming the token, e.g. `bad token "x"`.
    pub fn describe(e: Error, text: []const u8, buf: []u8) []const u8 {
        const t = e.token(text);
        return switch (e.reason) {
            .empty => bufPrint(buf, "empty node list", .{}),
            .nothing_after_prefix => bufPrint(buf, "nothing after {f}", .{quoted(t)}),
            .empty_element => bufPrint(buf, "empty element at offset {d}", .{e.start}),
            .bad_token => bufPrint(buf, "bad token {f}", .{quoted(t)}),
            .out_of_range => bufPrint(buf, "node {f} is out of range (max {d})", .{ quoted(t), max_nodes - 1 }),
            .reversed_range => bufPrint(buf, "reversed range {f}", .{quoted(t)}),
            .relative_beyond => bufPrint(buf, "relative node {f} is beyond the {d} allowed nodes", .{ quoted(t), e.limit }),
            .selects_nothing => bufPrint(buf, "{f} selects no node", .{quoted(t)}),
        };
    }

    /// The whole line: `invalid node list "0-x": bad token "x"`.
    pub fn message(e: Error, text: []const u8, buf: []u8) []const u8 {
        var reason_buf: [160]u8 = undefined;
        return bufPrint(buf, "invalid node list {f}: {s}", .{ quoted(text), e.describe(text, &reason_buf) });
    }

    /// The same error with offsets moved by `offset` (the list was a part of a longer text).
    pub fn shifted(e: Error, offset: usize) Error {
        var moved = e;
        moved.start += offset;
        moved.end += offset;
        return moved;
    }
};

pub const Result = union(enum) {
    ok: NodeMask,
    err: Error,
};

/// Parses `text` in numactl's syntax against the `allowed` nodes.
/// A result is never empty.
pub fn parse(text: []const u8, allowed: NodeMask) Result {
    if (text.len == 0) return fail(0, 0, .empty);
    var at: usize = 0;
    const invert = text[at] == '!';
    if (invert) at += 1;
    const relative = at < text.len and text[at] == '+';
    if (relative) at += 1;
    if (at == text.len) return fail(0, at, .nothing_after_prefix);

    var picked: NodeMask = .empty;
    if (std.mem.eql(u8, text[at..], "all")) {
        picked = allowed;
    } else {
        var start = at;
        while (start <= text.len) {
            const stop = std.mem.indexOfScalarPos(u8, text, start, ',') orelse text.len;
            if (stop == start) return fail(start, start, .empty_element);
            switch (element(text, start, stop, relative, allowed)) {
                .ok => |m| picked = picked.unionWith(m),
                .err => |e| return .{ .err = e },
            }
            start = stop + 1;
        }
    }
    const selected = if (invert) picked.invertWithin(allowed) else picked;
    if (selected.isEmpty()) return fail(0, text.len, .selects_nothing);
    return .{ .ok = selected };
}

/// One element text[start..stop]: `N` or `A-B`.
fn element(text: []const u8, start: usize, stop: usize, relative: bool, allowed: NodeMask) Result {
    assert(start < stop and stop <= text.len);
    const dash = std.mem.indexOfScalarPos(u8, text[0..stop], start, '-') orelse {
        const n = switch (number(text, start, stop, relative, allowed)) {
            .ok => |n| n,
            .err => |e| return .{ .err = e },
        };
        return .{ .ok = NodeMask.single(n) };
    };
    if (dash == start or dash + 1 == stop) return fail(start, stop, .bad_token);
    const lo = switch (number(text, start, dash, relative, allowed)) {
        .ok => |n| n,
        .err => |e| return .{ .err = e },
    };
    const hi = switch (number(text, dash + 1, stop, relative, allowed)) {
        .ok => |n| n,
        .err => |e| return .{ .err = e },
    };
    if (lo > hi) return fail(start, stop, .reversed_range);
    // Ends as named; the inside only where allowed.
    var m = NodeMask.range(lo, hi).intersect(allowed);
    m.set(lo);
    m.set(hi);
    return .{ .ok = m };
}

const NumberResult = union(enum) { ok: usize, err: Error };

fn number(text: []const u8, start: usize, stop: usize, relative: bool, allowed: NodeMask) NumberResult {
    const digits = text[start..stop];
    for (digits) |c| if (!std.ascii.isDigit(c)) return .{ .err = .{ .start = start, .end = stop, .reason = .bad_token } };
    const n = std.fmt.parseInt(usize, digits, 10) catch max_nodes; // overflow: out of range
    if (relative) {
        const count = allowed.count();
        // Name the node with its "+" (the prefix sits before the first element only).
        const plus = std.mem.lastIndexOfScalar(u8, text[0..start], '+');
        const tok_start = if (plus != null and plus.? + 1 == start) plus.? else start;
        if (n >= count) return .{ .err = .{ .start = tok_start, .end = stop, .reason = .relative_beyond, .limit = count } };
        return .{ .ok = allowed.nth(n).? };
    }
    if (n >= max_nodes) return .{ .err = .{ .start = start, .end = stop, .reason = .out_of_range } };
    return .{ .ok = n };
}

fn fail(start: usize, end: usize, reason: Reason) Result {
    return .{ .err = .{ .start = start, .end = end, .reason = reason } };
}

/// `"text"` for messages: `"`, `\` and control bytes escaped (`\n`, `\x1b`)
/// so a message stays one printable line whatever the input held (a
/// newline in HMALLOC_POLICY, a terminal escape). The same escapes as
/// tier_spec.zig, but never shortened: a long value is cut only where the
/// caller's message buffer ends. Print with `{f}`.
pub const Quoted = struct {
    text: []const u8,

    pub fn format(q: Quoted, w: *std.Io.Writer) std.Io.Writer.Error!void {
        try w.writeByte('"');
        for (q.text) |c| switch (c) {
            '"' => try w.writeAll("\\\""),
            '\\' => try w.writeAll("\\\\"),
            '\n' => try w.writeAll("\\n"),
            '\r' => try w.writeAll("\\r"),
            '\t' => try w.writeAll("\\t"),
            0...8, 11...12, 14...31, 127 => try w.print("\\x{x:0>2}", .{c}),
            else => try w.writeByte(c),
        };
        try w.writeByte('"');
    }
};

pub fn quoted(text: []const u8) Quoted {
    return .{ .text = text };
}

fn bufPrint(buf: []u8, comptime fmt: []const u8, args: anytype) []const u8 {
    // Cut, never fail: a message is better short than missing (bufPrint
    // fills the buffer before it reports NoSpaceLeft).
    return std.fmt.bufPrint(buf, fmt, args) catch buf[0..buf.len];
}

/// Writes a mask in the shortest list form: "0-3,5,7-8".
pub fn format(mask: NodeMask, buf: []u8) []const u8 {
    var used: usize = 0;
    var it = mask.iterator();
    var pending = it.next();
    while (pending) |lo| {
        var hi = lo;
        while (true) {
            const n = it.next();
            if (n != null and n.? == hi + 1) {
                hi = n.?;
                continue;
            }
            pending = n;
            break;
        }
        const sep: []const u8 = if (used == 0) "" else ",";
        const part = if (hi == lo)
            std.fmt.bufPrint(buf[used..], "{s}{d}", .{ sep, lo })
        else
            std.fmt.bufPrint(buf[used..], "{s}{d}-{d}", .{ sep, lo, hi });
        used += (part catch return buf[0..used]).len;
    }
    return buf[0..used];
}

const testing = std.testing;
const four = NodeMask.range(0, 3);

fn expectNodes(text: []const u8, allowed: NodeMask, want: []const u16) !void {
    const r = parse(text, allowed);
    if (r == .err) {
        var buf: [200]u8 = undefined;
        std.debug.print("unexpected error: {s}\n", .{r.err.message(text, &buf)});
        return error.TestUnexpectedResult;
    }
    var expected: NodeMask = .empty;
    for (want) |n| expected.set(n);
    try testing.expect(r.ok.eql(expected));
}

fn expectError(text: []const u8, allowed: NodeMask, token: []const u8, line: []const u8) !void {
    const r = parse(text, allowed);
    try testing.expect(r == .err);
    try testing.expectEqualStrings(token, r.err.token(text));
    var buf: [200]u8 = undefined;
    try testing.expectEqualStrings(line, r.err.message(text, &buf));
}

test "single nodes, lists and ranges" {
    try expectNodes("2", four, &.{2});
    try expectNodes("0,2", four, &.{ 0, 2 });
    try expectNodes("1-2,5", NodeMask.range(0, 7), &.{ 1, 2, 5 });
    try expectNodes("0-3", four, &.{ 0, 1, 2, 3 });
    try expectNodes("3,1,3", four, &.{ 1, 3 });
    try expectNodes("1023", NodeMask.single(1023), &.{1023});
}

test "range inside a sparse allowed set keeps its ends and the allowed nodes between" {
    const sparse = NodeMask.single(0).unionWith(NodeMask.single(2)).unionWith(NodeMask.single(4));
    try expectNodes("0-4", sparse, &.{ 0, 2, 4 });
    // Ends are kept even when not allowed, so validation names them.
    try expectNodes("0-9", four, &.{ 0, 1, 2, 3, 9 });
    try expectNodes("9", four, &.{9});
}

test "all, ! and +" {
    const allowed = NodeMask.single(0).unionWith(NodeMask.single(2)).unionWith(NodeMask.single(3));
    try expectNodes("all", allowed, &.{ 0, 2, 3 });
    try expectNodes("!0", allowed, &.{ 2, 3 });
    try expectNodes("!0-2", allowed, &.{3});
    try expectNodes("+0", allowed, &.{0});
    try expectNodes("+1", allowed, &.{2});
    try expectNodes("+1-2", allowed, &.{ 2, 3 });
    try expectNodes("+0,2", allowed, &.{ 0, 3 });
    try expectNodes("!+0", allowed, &.{ 2, 3 });
    try expectNodes("+all", allowed, &.{ 0, 2, 3 });
}

test "errors name the token" {
    try expectError("", four, "", "invalid node list \"\": empty node list");
    try expectError("0-x", four, "x", "invalid node list \"0-x\": bad token \"x\"");
    try expectError("x", four, "x", "invalid node list \"x\": bad token \"x\"");
    try expectError("0,all", four, "all", "invalid node list \"0,all\": bad token \"all\"");
    try expectError("1-", four, "1-", "invalid node list \"1-\": bad token \"1-\"");
    try expectError("-1", four, "-1", "invalid node list \"-1\": bad token \"-1\"");
    try expectError("1-2-3", four, "2-3", "invalid node list \"1-2-3\": bad token \"2-3\"");
    try expectError(" 1", four, " 1", "invalid node list \" 1\": bad token \" 1\"");
    try expectError("0,", four, "", "invalid node list \"0,\": empty element at offset 2");
    try expectError(",0", four, "", "invalid node list \",0\": empty element at offset 0");
    try expectError("0,,1", four, "", "invalid node list \"0,,1\": empty element at offset 2");
    try expectError("1024", four, "1024", "invalid node list \"1024\": node \"1024\" is out of range (max 1023)");
    try expectError("0-99999999999999999999999", four, "99999999999999999999999", "invalid node list \"0-99999999999999999999999\": node \"99999999999999999999999\" is out of range (max 1023)");
    try expectError("3-1", four, "3-1", "invalid node list \"3-1\": reversed range \"3-1\"");
    try expectError("+4", four, "+4", "invalid node list \"+4\": relative node \"+4\" is beyond the 4 allowed nodes");
    try expectError("+0,7", four, "7", "invalid node list \"+0,7\": relative node \"7\" is beyond the 4 allowed nodes");
    try expectError("!all", four, "!all", "invalid node list \"!all\": \"!all\" selects no node");
    try expectError("!0", NodeMask.single(0), "!0", "invalid node list \"!0\": \"!0\" selects no node");
    try expectError("!", four, "!", "invalid node list \"!\": nothing after \"!\"");
    try expectError("!+", four, "!+", "invalid node list \"!+\": nothing after \"!+\"");
}

test "a message longer than its buffer is cut, not lost" {
    var small: [12]u8 = undefined;
    const e = parse("0-x", four).err;
    try testing.expectEqualStrings("invalid node", e.message("0-x", &small));
}

test "control bytes and quotes in the input are escaped: one printable line" {
    var buf: [200]u8 = undefined;
    const text = "0,\n\x1b[31m";
    const e = parse(text, four).err;
    try testing.expectEqualStrings("invalid node list \"0,\\n\\x1b[31m\": bad token \"\\n\\x1b[31m\"", e.message(text, &buf));
    const q = parse("\"\\", four).err;
    try testing.expectEqualStrings("bad token \"\\\"\\\\\"", q.describe("\"\\", &buf));
}

test "shifted errors point into the longer text" {
    const spec = "bind:0-x";
    const e = parse(spec[5..], four).err.shifted(5);
    try testing.expectEqualStrings("x", e.token(spec));
}

test "format writes the shortest list and round-trips" {
    var buf: [64]u8 = undefined;
    const cases = [_][]const u8{ "0", "0-3", "0,2", "1-2,5", "0,2-3,1023" };
    for (cases) |text| {
        const m = parse(text, NodeMask.range(0, 1023)).ok;
        try testing.expectEqualStrings(text, format(m, &buf));
    }
    try testing.expectEqualStrings("", format(NodeMask.empty, &buf));
    var tiny: [2]u8 = undefined;
    try testing.expectEqualStrings("0", format(NodeMask.single(0).unionWith(NodeMask.single(5)), &tiny));
}
