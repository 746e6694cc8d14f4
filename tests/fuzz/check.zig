//! What every fuzz target checks, and how it fails.
//!
//! A target (`zig-src/src/<folder>/<name>_fuzz.zig`, beside its parser) exports
//! `fuzz_<name>(data, len)`: it parses the input, then checks the parser's
//! promises — a rejection names a token that is a slice of the input (or
//! the whole value) in a message of exactly one line, an acceptance
//! round-trips through `format`. A broken promise is `fail`: one line on
//! fd 2 naming the property, then abort(), which libFuzzer reports as a
//! crash and saves the input. A panic inside a parser (bounds, overflow,
//! unreachable in the ReleaseSafe build) ends the same way.
//!
//! Why abort and not a Zig error: the harness is C (libFuzzer's
//! `LLVMFuzzerTestOneInput`), and a crash with the saved input is what a
//! fuzzer run reports.
const std = @import("std");

/// Panics print one line and abort, so libFuzzer sees a crash (the default
/// handler would try to print a stack trace through std.debug's machinery).
pub fn panic(msg: []const u8, first_trace_addr: ?usize) noreturn {
    _ = first_trace_addr;
    writeLine("fuzz: panic: ", msg);
    std.c.abort();
}

pub fn fail(property: []const u8, detail: []const u8) noreturn {
    writeLine(property, detail);
    std.c.abort();
}

fn writeLine(head: []const u8, detail: []const u8) void {
    _ = std.c.write(2, head.ptr, head.len);
    _ = std.c.write(2, detail.ptr, detail.len);
    _ = std.c.write(2, "\n", 1);
}

/// A message a user reads: not empty, exactly one line (no line break or
/// other control byte that a terminal would act on). Every parser escapes
/// what it quotes (`\n`, `\x1b`); the saved inputs of tests/fuzz/regressions/
/// once reached node-list and policy messages raw.
pub fn expectOneLine(message: []const u8) void {
    if (message.len == 0) fail("fuzz: empty message", "");
    for (message) |c| {
        if (c < 0x20 or c == 0x7f) fail("fuzz: message is not one printable line: ", message);
    }
}

/// `token` lies within `input` (by address: the parsers return slices or offsets).
pub fn expectSliceOf(token: []const u8, input: []const u8) void {
    const lo = @intFromPtr(input.ptr);
    const at = @intFromPtr(token.ptr);
    if (token.len == 0 and at == lo + input.len) return;
    if (at < lo or at + token.len > lo + input.len) fail("fuzz: token is not a slice of the input: ", token);
}

pub fn expectContains(message: []const u8, token: []const u8) void {
    if (std.mem.indexOf(u8, message, token) == null) fail("fuzz: message does not name the token: ", message);
}

/// A token shows verbatim in a message only when it has nothing to escape.
pub fn printable(text: []const u8) bool {
    for (text) |c| if (c < 0x20 or c == 0x7f or c == '"' or c == '\\') return false;
    return true;
}

/// The fuzzer's "allowed nodes" from one byte: bits 0-6 pick nodes 0-6,
/// bit 7 adds node 1023 (the largest), never empty (node 0 then).
pub fn allowedFromByte(comptime NodeMask: type, byte: u8) NodeMask {
    var mask: NodeMask = .empty;
    for (0..7) |bit| if (byte & (@as(u8, 1) << @intCast(bit)) != 0) mask.set(bit);
    if (byte & 0x80 != 0) mask.set(1023);
    if (mask.isEmpty()) mask.set(0);
    return mask;
}
