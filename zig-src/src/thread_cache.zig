//! Thread caches: the lock-free common path of small allocations.
//!
//! What: each thread has, for each pool it has used, a `PoolCache`: one stack
//! of free block addresses per size class. hmalloc pops, hfree pushes; no
//! lock, no atomic, no syscall. An empty stack is refilled with a batch from
//! the pool's bin; a full one gives its older half back (slab.zig).
//!
//! The only hot thread-local variable is one pointer (`current()`), so a library
//! that Deno dlopens keeps within the static TLS surplus (see PITFALLS.md);
//! the caches themselves are mmap'ed per thread and returned by a pthread key
//! destructor when the thread exits, after giving their blocks back.
//!
//! Pools can be destroyed while other threads still cache their blocks: each
//! cache remembers its pool's `generation`; a cache whose pool slot now holds
//! a different generation is dropped, never flushed (its memory is gone).
//!
//! Capacities: `capacity(class)` blocks, about 128 KiB worth per class,
//! between 8 and 128 blocks; a refill takes half a stack. That bounds what a
//! thread can hold idle at ~2.7 MiB per pool, and keeps the lock taken once
//! every ≥ 4 operations of one class even for 32 KiB blocks.
const std = @import("std");
const builtin = @import("builtin");
const assert = std.debug.assert;
const linux = std.os.linux;
const size_class = @import("size_class.zig");

pub const max_pools = 64;
const cache_bytes_per_class = 128 * 1024;
const capacity_min = 8;
const capacity_max = 128;

pub inline fn capacity(class: size_class.ClassIndex) u32 {
    return capacity_table[class];
}

const capacity_table: [size_class.count]u32 = blk: {
    var t: [size_class.count]u32 = undefined;
    for (&t, 0..) |*c, i| c.* = @intCast(std.math.clamp(cache_bytes_per_class / size_class.sizeOf(i), capacity_min, capacity_max));
    break :blk t;
};

const slots_total: usize = blk: {
    var n: usize = 0;
    for (capacity_table) |c| n += c;
    break :blk n;
};

pub const CacheBin = struct {
    count: u32,
    capacity: u32,
    items: [*]usize,
};

/// One thread's cache of one pool.
pub const PoolCache = struct {
    generation: u32,
    bins: [size_class.count]CacheBin,
    storage: [slots_total]usize,

    fn init(cache: *PoolCache, generation: u32) void {
        cache.generation = generation;
        var offset: usize = 0;
        for (&cache.bins, 0..) |*bin, i| {
            bin.* = .{ .count = 0, .capacity = capacity_table[i], .items = cache.storage[offset..].ptr };
            offset += capacity_table[i];
        }
        assert(offset == slots_total);
    }

    /// Forgets every cached block (their pool is gone).
    pub fn drop(cache: *PoolCache, generation: u32) void {
        for (&cache.bins) |*bin| bin.count = 0;
        cache.generation = generation;
    }
};

pub const ThreadCache = struct {
    pools: [max_pools]?*PoolCache = @splat(null),
    /// Set while this thread is inside the allocator's slow path that may
    /// re-enter it (creating the cache): nested calls bypass the cache.
    busy: bool = false,
};

/// This thread's cache; null until its first allocation (and after exit).
pub inline fn current() ?*ThreadCache {
    return @ptrCast(@alignCast(currentSlot().*));
}

pub inline fn setCurrent(tc: ?*ThreadCache) void {
    currentSlot().* = tc;
}

/// Release builds (LLVM, x86_64) read the initial-exec TLS slot defined in
/// thread_pointer.c with `%fs:` addressing; other builds use a Zig
/// threadlocal (the self-hosted backend's assembler has no @gottpoff).
const use_initial_exec = builtin.cpu.arch == .x86_64 and builtin.zig_backend == .stage2_llvm and builtin.link_libc;
threadlocal var current_fallback: ?*anyopaque = null;

inline fn currentSlot() *?*anyopaque {
    if (!use_initial_exec) return &current_fallback;
    const offset = asm ("movq hm_thread_cache_tls@gottpoff(%%rip), %[ret]"
        : [ret] "=r" (-> usize),
    );
    const thread_pointer = asm ("movq %%fs:0, %[ret]"
        : [ret] "=r" (-> usize),
    );
    return @ptrFromInt(thread_pointer +% offset);
}

pub fn mapZeroed(bytes: usize) ?*anyopaque {
    const rc = linux.mmap(null, bytes, .{ .READ = true, .WRITE = true }, .{ .TYPE = .PRIVATE, .ANONYMOUS = true }, -1, 0);
    if (linux.errno(rc) != .SUCCESS) return null;
    return @ptrFromInt(rc);
}

pub fn createThreadCache() ?*ThreadCache {
    const raw = mapZeroed(@sizeOf(ThreadCache)) orelse return null;
    const tc: *ThreadCache = @ptrCast(@alignCast(raw));
    tc.* = .{};
    return tc;
}

pub fn createPoolCache(generation: u32) ?*PoolCache {
    const raw = mapZeroed(@sizeOf(PoolCache)) orelse return null;
    const cache: *PoolCache = @ptrCast(@alignCast(raw));
    cache.init(generation);
    return cache;
}

pub fn destroyPoolCache(cache: *PoolCache) void {
    _ = linux.munmap(@ptrCast(cache), @sizeOf(PoolCache));
}

pub fn destroyThreadCache(tc: *ThreadCache) void {
    _ = linux.munmap(@ptrCast(tc), @sizeOf(ThreadCache));
}

test "capacities hold between 8 and 128 blocks and shrink with size" {
    try std.testing.expectEqual(@as(u32, 128), capacity(0));
    try std.testing.expectEqual(@as(u32, 8), capacity(size_class.count - 1));
    for (1..size_class.count) |i| try std.testing.expect(capacity(@intCast(i)) <= capacity(@intCast(i - 1)));
}

test "a pool cache's bins tile its storage" {
    const cache = createPoolCache(7).?;
    defer destroyPoolCache(cache);
    try std.testing.expectEqual(@as(u32, 7), cache.generation);
    const last = cache.bins[size_class.count - 1];
    try std.testing.expectEqual(@intFromPtr(&cache.storage) + (slots_total - last.capacity) * @sizeOf(usize), @intFromPtr(last.items));
}
