//! Reporting from inside the allocator: errno for failures, one line and
//! abort() for misuse.
//!
//! What: allocation failures set errno (ENOMEM, EINVAL) and return null, as
//! malloc(3) does. A pointer that is not a live block of ours — foreign,
//! interior, freed already — ends the program with one line on stderr naming
//! the call, the pointer and the reason, e.g.
//!     hmalloc: hfree(0x7f3a5c001010): invalid pointer: double free
//! then abort(), so a debugger or core dump shows the culprit's stack.
//!
//! Why not stdio: this runs inside malloc (stdio allocates) and possibly
//! with the allocator's locks held; a fixed buffer and write(2) cannot
//! recurse or deadlock.
const std = @import("std");
const linux = std.os.linux;

/// The API's name for a pointer operation, e.g. "hfree" or "free".
pub const Caller = []const u8;

/// Names the library in messages ("hmalloc"; libmemtier sets "memtier").
pub var prefix: []const u8 = "hmalloc";

pub fn setErrno(e: linux.E) void {
    std.c._errno().* = @intCast(@backingInt(e));
}

/// Sets errno and returns null: `return report.fail(.NOMEM);`
pub fn fail(e: linux.E) ?[*]u8 {
    setErrno(if (e == .SUCCESS) .NOMEM else e);
    return null;
}

pub fn invalidPointer(caller: Caller, address: usize, reason: []const u8) noreturn {
    var buf: [256]u8 = undefined;
    const line = std.fmt.bufPrint(&buf, "{s}: {s}(0x{x}): invalid pointer: {s}\n", .{ prefix, caller, address, reason }) catch buf[0..0];
    writeAll(line);
    std.c.abort();
}

/// A pointer no pool owns: "not allocated by hmalloc" (or memtier).
pub fn notOurs(caller: Caller, address: usize) noreturn {
    var buf: [96]u8 = undefined;
    const reason = std.fmt.bufPrint(&buf, "not allocated by {s} (or freed already)", .{prefix}) catch "not allocated here";
    invalidPointer(caller, address, reason);
}

/// A thread found a lock of the allocator held by itself (lock.zig): it was
/// interrupted inside the allocator, and a signal handler called it again.
pub fn reentered() noreturn {
    var buf: [160]u8 = undefined;
    const line = std.fmt.bufPrint(&buf, "{s}: allocator re-entered while this thread holds its lock (malloc or free called from a signal handler?)\n", .{prefix}) catch buf[0..0];
    writeAll(line);
    std.c.abort();
}

/// Writes `bytes` to stderr with write(2), retrying short writes.
pub fn writeAll(bytes: []const u8) void {
    var rest = bytes;
    while (rest.len > 0) {
        const rc = linux.write(2, rest.ptr, rest.len);
        if (linux.errno(rc) == .INTR) continue;
        if (linux.errno(rc) != .SUCCESS or rc == 0) return;
        rest = rest[rc..];
    }
}

test "fail sets errno and returns null" {
    try std.testing.expect(fail(.NOMEM) == null);
    try std.testing.expectEqual(@as(c_int, @backingInt(linux.E.NOMEM)), std.c._errno().*);
}
