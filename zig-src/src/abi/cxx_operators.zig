//! C++'s operator new and operator delete, for libmemtier.so.
//!
//! What: the replaceable global allocation functions of C++ (plain, array,
//! nothrow, sized and C++17 aligned forms, 20 symbols, Itanium-mangled), defined
//! in the interposer so that a C++ program's `new` and `delete` come straight
//! here, as they do under tcmalloc, jemalloc and mimalloc.
//!
//! Why: libstdc++'s own operator new calls malloc through the PLT inside a
//! loop that checks the new-handler, and its sized delete calls the unsized
//! one, which calls free: two extra calls per operation. mimalloc-bench's
//! larson-sized (C++ `new[]` and sized `delete[]`, every block freed by
//! another thread than its allocator's) ran 50-70M operations/s with
//! libstdc++'s operators over our malloc, 68-78M with them defined directly.
//!
//! Failure: an allocation that fails here is handed to the next definition
//! of the same operator (libstdc++'s, found with dlsym(RTLD_NEXT)), which
//! calls malloc again — ours — and on failure runs the new-handler and throws
//! std::bad_alloc, or returns null for the nothrow forms: exactly the
//! standard's behaviour, without throwing from Zig. The lookup happens only
//! on that cold path.
//!
//! Trade-off: the sizes given to sized delete are not checked against the
//! block (free finds the block's size itself; a wrong size is the program's
//! undefined behaviour and is ignored, as glibc's free would).
const std = @import("std");
const api = @import("memtier_api.zig");

/// The new-handler and std::bad_alloc live in libstdc++: the next definition of operator
/// `name` does what the standard says once our allocation failed. Aborts with one line if
/// there is none (a program calling operator new has libstdc++ loaded, so never in practice).
fn nextOperator(comptime T: type, comptime name: [:0]const u8) T {
    @branchHint(.cold);
    const next = std.c.dlsym(rtld_next, name) orelse {
        @import("alloc").report.writeAll("libmemtier: operator new failed and no other definition of " ++ name ++ " was found\n");
        std.c.abort();
    };
    return @ptrCast(@alignCast(next));
}

/// glibc's RTLD_NEXT: ((void *) -1).
const rtld_next: ?*anyopaque = @ptrFromInt(std.math.maxInt(usize));

const NewFn = *const fn (usize) callconv(.c) ?*anyopaque;
const NewAlignedFn = *const fn (usize, usize) callconv(.c) ?*anyopaque;
const NewNothrowFn = *const fn (usize, *const anyopaque) callconv(.c) ?*anyopaque;
const NewAlignedNothrowFn = *const fn (usize, usize, *const anyopaque) callconv(.c) ?*anyopaque;

// ---- new --------------------------------------------------------------------------

export fn _Znwm(size: usize) ?*anyopaque {
    return api.malloc(size) orelse nextOperator(NewFn, "_Znwm")(size);
}

export fn _Znam(size: usize) ?*anyopaque {
    return api.malloc(size) orelse nextOperator(NewFn, "_Znam")(size);
}

export fn _ZnwmRKSt9nothrow_t(size: usize, tag: *const anyopaque) ?*anyopaque {
    return api.malloc(size) orelse nextOperator(NewNothrowFn, "_ZnwmRKSt9nothrow_t")(size, tag);
}

export fn _ZnamRKSt9nothrow_t(size: usize, tag: *const anyopaque) ?*anyopaque {
    return api.malloc(size) orelse nextOperator(NewNothrowFn, "_ZnamRKSt9nothrow_t")(size, tag);
}

// C++17 aligned new: aligned_alloc refuses an alignment that is not a power of two (which
// std::align_val_t's contract excludes) with null, and the next definition then decides.

export fn _ZnwmSt11align_val_t(size: usize, alignment: usize) ?*anyopaque {
    return api.aligned_alloc(alignment, size) orelse nextOperator(NewAlignedFn, "_ZnwmSt11align_val_t")(size, alignment);
}

export fn _ZnamSt11align_val_t(size: usize, alignment: usize) ?*anyopaque {
    return api.aligned_alloc(alignment, size) orelse nextOperator(NewAlignedFn, "_ZnamSt11align_val_t")(size, alignment);
}

export fn _ZnwmSt11align_val_tRKSt9nothrow_t(size: usize, alignment: usize, tag: *const anyopaque) ?*anyopaque {
    return api.aligned_alloc(alignment, size) orelse
        nextOperator(NewAlignedNothrowFn, "_ZnwmSt11align_val_tRKSt9nothrow_t")(size, alignment, tag);
}

export fn _ZnamSt11align_val_tRKSt9nothrow_t(size: usize, alignment: usize, tag: *const anyopaque) ?*anyopaque {
    return api.aligned_alloc(alignment, size) orelse
        nextOperator(NewAlignedNothrowFn, "_ZnamSt11align_val_tRKSt9nothrow_t")(size, alignment, tag);
}

// ---- delete -----------------------------------------------------------------------
//
// Every form frees the block; the scalar (`_Zdl…`) and array (`_Zda…`) forms of each signature
// are one function exported under both names.

fn deletePlain(ptr: ?*anyopaque) callconv(.c) void {
    api.free(ptr);
}

fn deleteSized(ptr: ?*anyopaque, size: usize) callconv(.c) void {
    _ = size;
    api.free(ptr);
}

fn deleteNothrow(ptr: ?*anyopaque, tag: *const anyopaque) callconv(.c) void {
    _ = tag;
    api.free(ptr);
}

fn deleteAligned(ptr: ?*anyopaque, alignment: usize) callconv(.c) void {
    _ = alignment;
    api.free(ptr);
}

fn deleteSizedAligned(ptr: ?*anyopaque, size: usize, alignment: usize) callconv(.c) void {
    _ = .{ size, alignment };
    api.free(ptr);
}

fn deleteAlignedNothrow(ptr: ?*anyopaque, alignment: usize, tag: *const anyopaque) callconv(.c) void {
    _ = .{ alignment, tag };
    api.free(ptr);
}

comptime {
    for ([_][]const u8{ "_ZdlPv", "_ZdaPv" }) |prefix| {
        @export(&deletePlain, .{ .name = prefix });
        @export(&deleteSized, .{ .name = prefix ++ "m" });
        @export(&deleteNothrow, .{ .name = prefix ++ "RKSt9nothrow_t" });
        @export(&deleteAligned, .{ .name = prefix ++ "St11align_val_t" });
        @export(&deleteSizedAligned, .{ .name = prefix ++ "mSt11align_val_t" });
        @export(&deleteAlignedNothrow, .{ .name = prefix ++ "St11align_val_tRKSt9nothrow_t" });
    }
}
