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

/// C++17 aligned new: `alignment` is a power of two (std::align_val_t's contract).
inline fn allocAligned(size: usize, alignment: usize) ?*anyopaque {
    if (alignment == 0 or !std.math.isPowerOfTwo(alignment)) return null;
    return api.aligned_alloc(alignment, size);
}

export fn _ZnwmSt11align_val_t(size: usize, alignment: usize) ?*anyopaque {
    return allocAligned(size, alignment) orelse nextOperator(NewAlignedFn, "_ZnwmSt11align_val_t")(size, alignment);
}

export fn _ZnamSt11align_val_t(size: usize, alignment: usize) ?*anyopaque {
    return allocAligned(size, alignment) orelse nextOperator(NewAlignedFn, "_ZnamSt11align_val_t")(size, alignment);
}

export fn _ZnwmSt11align_val_tRKSt9nothrow_t(size: usize, alignment: usize, tag: *const anyopaque) ?*anyopaque {
    return allocAligned(size, alignment) orelse
        nextOperator(NewAlignedNothrowFn, "_ZnwmSt11align_val_tRKSt9nothrow_t")(size, alignment, tag);
}

export fn _ZnamSt11align_val_tRKSt9nothrow_t(size: usize, alignment: usize, tag: *const anyopaque) ?*anyopaque {
    return allocAligned(size, alignment) orelse
        nextOperator(NewAlignedNothrowFn, "_ZnamSt11align_val_tRKSt9nothrow_t")(size, alignment, tag);
}

// ---- delete -----------------------------------------------------------------------

export fn _ZdlPv(ptr: ?*anyopaque) void {
    api.free(ptr);
}

export fn _ZdaPv(ptr: ?*anyopaque) void {
    api.free(ptr);
}

export fn _ZdlPvm(ptr: ?*anyopaque, size: usize) void {
    _ = size;
    api.free(ptr);
}

export fn _ZdaPvm(ptr: ?*anyopaque, size: usize) void {
    _ = size;
    api.free(ptr);
}

export fn _ZdlPvRKSt9nothrow_t(ptr: ?*anyopaque, tag: *const anyopaque) void {
    _ = tag;
    api.free(ptr);
}

export fn _ZdaPvRKSt9nothrow_t(ptr: ?*anyopaque, tag: *const anyopaque) void {
    _ = tag;
    api.free(ptr);
}

export fn _ZdlPvSt11align_val_t(ptr: ?*anyopaque, alignment: usize) void {
    _ = alignment;
    api.free(ptr);
}

export fn _ZdaPvSt11align_val_t(ptr: ?*anyopaque, alignment: usize) void {
    _ = alignment;
    api.free(ptr);
}

export fn _ZdlPvmSt11align_val_t(ptr: ?*anyopaque, size: usize, alignment: usize) void {
    _ = .{ size, alignment };
    api.free(ptr);
}

export fn _ZdaPvmSt11align_val_t(ptr: ?*anyopaque, size: usize, alignment: usize) void {
    _ = .{ size, alignment };
    api.free(ptr);
}

export fn _ZdlPvSt11align_val_tRKSt9nothrow_t(ptr: ?*anyopaque, alignment: usize, tag: *const anyopaque) void {
    _ = .{ alignment, tag };
    api.free(ptr);
}

export fn _ZdaPvSt11align_val_tRKSt9nothrow_t(ptr: ?*anyopaque, alignment: usize, tag: *const anyopaque) void {
    _ = .{ alignment, tag };
    api.free(ptr);
}
