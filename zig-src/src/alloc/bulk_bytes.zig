//! Bulk byte work of the allocator: calloc's zeroing and realloc's copy.
//!
//! What: `zero(bytes)` clears a block, `copy(dest, source)` moves a block's
//! bytes to its new home. From `rep_string_min_bytes` (4 KiB) on they use
//! `rep stosb` / `rep movsb` on x86_64; smaller blocks, and other
//! architectures, @memset / @memcpy (compiler_rt's, since the library is
//! built freestanding of libc's string functions).
//!
//! Why: the library is built for the architecture's baseline CPU, so
//! compiler_rt's memset stores 16 bytes at a time; `rep stosb` is microcoded
//! to use the core's full store width on CPUs with ERMS (`erms` in
//! /proc/cpuinfo; Intel's since Ivy Bridge), whatever the build targeted. calloc of
//! 8-16 KiB blocks (mimalloc-bench's rptest) took 143-280 ns per calloc+free
//! under memtier against 96-205 ns with mimalloc and glibc; with it, 93-203 ns
//! (mimalloc 93-213 ns in the same run).
//!
//! realloc's copy has the same cause and the same cure (`rep movsb`).
//!
//! Trade-off: for small blocks the instruction's start-up cost (tens of
//! cycles) is more than a vector loop needs: at 2 KiB both took 38-44 ns, so
//! blocks below 4 KiB keep @memset / @memcpy. On a CPU without ERMS the
//! string instructions are slower than SSE only for small sizes.
const std = @import("std");
const builtin = @import("builtin");

/// From this size on, `rep stosb` / `rep movsb`.
const rep_string_min_bytes: usize = 4096;

/// Sets every byte of `bytes` to 0.
pub inline fn zero(bytes: []u8) void {
    if (builtin.cpu.arch == .x86_64 and bytes.len >= rep_string_min_bytes) {
        asm volatile ("rep stosb"
            :
            : [dest] "{rdi}" (bytes.ptr),
              [count] "{rcx}" (bytes.len),
              [value] "{al}" (@as(u8, 0)),
            : .{ .rdi = true, .rcx = true, .memory = true });
    } else {
        @memset(bytes, 0);
    }
}

/// Copies `source` to `dest` (same length; the two do not overlap).
pub inline fn copy(dest: []u8, source: []const u8) void {
    std.debug.assert(dest.len == source.len);
    if (builtin.cpu.arch == .x86_64 and dest.len >= rep_string_min_bytes) {
        asm volatile ("rep movsb"
            :
            : [dest] "{rdi}" (dest.ptr),
              [source] "{rsi}" (source.ptr),
              [count] "{rcx}" (dest.len),
            : .{ .rdi = true, .rsi = true, .rcx = true, .memory = true });
    } else {
        @memcpy(dest, source);
    }
}

test "copy moves small and large blocks exactly, and no byte around them" {
    var source: [10000]u8 = undefined;
    for (&source, 0..) |*b, i| b.* = @truncate(i *% 7 + 1);
    var dest: [10000]u8 = undefined;
    for ([_]usize{ 0, 1, 15, 4095, 4096, 4099, 9000 }) |n| {
        @memset(&dest, 0xa5);
        copy(dest[5 .. 5 + n], source[3 .. 3 + n]);
        for (dest[0..5]) |b| try std.testing.expectEqual(@as(u8, 0xa5), b);
        try std.testing.expectEqualSlices(u8, source[3 .. 3 + n], dest[5 .. 5 + n]);
        for (dest[5 + n ..]) |b| try std.testing.expectEqual(@as(u8, 0xa5), b);
    }
}

test "zero clears small and large blocks exactly, and no byte around them" {
    var buffer: [10000]u8 = undefined;
    for ([_]usize{ 0, 1, 15, 4095, 4096, 4099, 9000 }) |n| {
        @memset(&buffer, 0xa5);
        zero(buffer[7 .. 7 + n]);
        for (buffer[0..7]) |b| try std.testing.expectEqual(@as(u8, 0xa5), b);
        for (buffer[7 .. 7 + n]) |b| try std.testing.expectEqual(@as(u8, 0), b);
        for (buffer[7 + n ..]) |b| try std.testing.expectEqual(@as(u8, 0xa5), b);
    }
}
