//! Fuzz target: numactl node lists (node_list.zig).
//!
//! Input: one byte choosing the allowed nodes (check.allowedFromByte), then
//! the list. Rejected: start <= end <= len, and the one-line message
//! `invalid node list "...": ...` names the token (verbatim unless escaped). Accepted: a non-empty
//! mask, and `format` → `parse` gives the same mask back whenever the mask
//! lies within the allowed nodes (a node outside them is kept only when
//! named explicitly, and `format` may write it as the end of a range whose
//! interior `parse` filters by the allowed set: `0,1,2` with allowed {0,2}
//! gives {0,1,2}, formatted `0-2`, parsed back as {0,2}).
const std = @import("std");
const node_list = @import("placement").node_list;
const check = @import("fuzz_check");

pub const panic = std.debug.FullPanic(check.panic);
const NodeMask = @FieldType(node_list.Result, "ok");

/// Longest formatted mask: 1024 nodes written one by one ("1023," is 5 bytes).
const format_bytes_max = 8192;

export fn fuzz_node_list(data: [*]const u8, len: usize) void {
    if (len == 0) return;
    const allowed = check.allowedFromByte(NodeMask, data[0]);
    const text = data[1..len];
    switch (node_list.parse(text, allowed)) {
        .ok => |mask| expectRoundTrip(mask, allowed, text),
        .err => |e| expectError(e, text),
    }
}

fn expectError(e: node_list.Error, text: []const u8) void {
    if (!(e.start <= e.end and e.end <= text.len)) check.fail("fuzz: error offsets outside the text: ", text);
    var buf: [2 * format_bytes_max]u8 = undefined;
    const message = e.message(text, &buf);
    check.expectOneLine(message);
    // Quoted with escapes: a token shows verbatim when it has nothing to escape.
    if (check.printable(e.token(text))) check.expectContains(message, e.token(text));
}

fn expectRoundTrip(mask: NodeMask, allowed: NodeMask, text: []const u8) void {
    if (mask.isEmpty()) check.fail("fuzz: accepted an empty selection: ", text);
    var buf: [format_bytes_max]u8 = undefined;
    const formatted = node_list.format(mask, &buf);
    if (formatted.len == 0 or formatted.len == buf.len) check.fail("fuzz: format cut or empty for: ", text);
    // Against every node allowed, any mask round-trips; against the fuzzer's
    // set, a mask within it does.
    expectParsesTo(formatted, NodeMask.full, mask);
    if (mask.isSubsetOf(allowed)) expectParsesTo(formatted, allowed, mask);
}

fn expectParsesTo(formatted: []const u8, allowed: NodeMask, mask: NodeMask) void {
    switch (node_list.parse(formatted, allowed)) {
        .ok => |again| if (!again.eql(mask)) check.fail("fuzz: format -> parse changed the mask: ", formatted),
        .err => check.fail("fuzz: format wrote a list parse rejects: ", formatted),
    }
}
