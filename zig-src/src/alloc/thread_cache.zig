//! Thread caches: the lock-free common path of small allocations.
//!
//! What: each thread has, for each pool it has used, a `PoolCache`: one stack
//! of free block addresses per size class. hmalloc pops, hfree pushes; no
//! lock, no atomic, no syscall. An empty stack is refilled with a batch from
//! the pool's bin; a full one gives its older half back (slab.zig).
//!
//! The only hot thread-local variable is one pointer (`current()`), so a library
//! that Deno dlopens keeps within the static TLS surplus (a large initial-exec
//! TLS block makes dlopen fail: "cannot allocate memory in static TLS block");
//! the caches themselves are mmap'ed per thread and returned by a pthread key
//! destructor when the thread exits, after giving their blocks back.
//!
//! Pools can be destroyed while other threads still cache their blocks: the
//! registry keeps every live ThreadCache on a list and, under its lock,
//! destroys each thread's cache of the dying pool (its memory is gone), so
//! the hot paths need no check that a cache is still current.
//!
//! Capacities: `capacity(class)` blocks, 32 KiB worth per class, between 8 and
//! 1024 blocks; a refill takes half a stack. That bounds what a thread can hold
//! idle at 2.3 MiB per pool, and keeps the lock taken once every >= 4 operations
//! of one class even for 32 KiB blocks. The 1024 (128 before) is for the tiny
//! classes: glibc's bench-malloc-simple (up to 1,600 blocks of 16-64 B allocated,
//! then freed) spent 12% of its time refilling and flushing 128-block stacks,
//! 6% with these, for 36 KiB more address space per pool cache, touched only as
//! the stacks fill. (A first try was reverted for a corruption that turned out
//! to be the test program's: it wrote 16 bytes into 8 B blocks. A refill of a
//! whole 8 B slab hands out its last block, whose overflow lands on the next
//! page; smaller refills had made that rarer, not impossible.)
const std = @import("std");
const builtin = @import("builtin");
const assert = std.debug.assert;
const linux = std.os.linux;
const size_class = @import("size_class.zig");

pub const max_pools = 64;
const cache_bytes_per_class = 32 * 1024;
const capacity_min = 8;
const capacity_max = 1024;

pub inline fn capacity(class: size_class.ClassIndex) u32 {
    return capacity_table[class];
}

const capacity_table: [size_class.count]u32 = blk: {
    var t: [size_class.count]u32 = undefined;
    // Even, so that a full bin's halves do not overlap (pool.flushHalf).
    for (&t, 0..) |*c, i| c.* = @intCast(std.math.clamp(cache_bytes_per_class / size_class.sizeOf(i), capacity_min, capacity_max) & ~@as(usize, 1));
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

    comptime {
        std.debug.assert(@sizeOf(CacheBin) == size_class.key_stride);
    }
};

/// One thread's cache of one pool.
pub const PoolCache = struct {
    /// Indexed by class + 1, addressed by class key (size_class.Key: what a
    /// chunk's page entry (`Chunk.page_entries`) holds and what hmalloc's size table gives), so
    /// neither path shifts or decrements; entry 0 is never used.
    bins_by_code: [size_class.count + 1]CacheBin,
    /// Bytes of the blocks freed into this cache by the fast path of a counting free
    /// (pool.freeCounted), since its owner last took them (libmemtier's ledger); 0 otherwise.
    freed_bytes: u64 = 0,
    storage: [slots_total]usize,

    fn init(cache: *PoolCache) void {
        cache.freed_bytes = 0;
        cache.bins_by_code[0] = .{ .count = 0, .capacity = 0, .items = &cache.storage };
        var offset: usize = 0;
        for (cache.bins(), 0..) |*b, i| {
            b.* = .{ .count = 0, .capacity = capacity_table[i], .items = cache.storage[offset..].ptr };
            offset += capacity_table[i];
        }
        assert(offset == slots_total);
    }

    /// The bin of `class`.
    pub inline fn bin(cache: *PoolCache, class: usize) *CacheBin {
        return &cache.bins_by_code[class + 1];
    }

    /// The bin of the class whose key is `key`.
    pub inline fn binByKey(cache: *PoolCache, key: usize) *CacheBin {
        assert(key >= size_class.key_stride and key % size_class.key_stride == 0 and key / size_class.key_stride <= size_class.count);
        return @ptrFromInt(@intFromPtr(&cache.bins_by_code) + key);
    }

    /// Every class's bin, in class order.
    pub inline fn bins(cache: *PoolCache) []CacheBin {
        return cache.bins_by_code[1..];
    }
};

pub const ThreadCache = struct {
    /// The default pool's (slot 0's) cache, first so that hmalloc reaches
    /// it from the thread pointer with no lookup. `pools[0]` points here.
    default: PoolCache,
    /// Slot → this thread's cache of that pool (null: none yet). Entries of
    /// other slots are created by their owner thread and destroyed by it at
    /// exit, or by `registry.destroy` (under the registry lock) with the pool.
    pools: [max_pools]?*PoolCache,
    /// The bin shard this thread's caches refill from, in every pool (registry.zig).
    shard: u8 = 0,
    /// The registry's list of live thread caches (under its lock).
    next: ?*ThreadCache = null,
    prev: ?*ThreadCache = null,
};

/// This thread's cache; null until its first allocation (and after exit).
pub inline fn current() ?*ThreadCache {
    return @ptrCast(@alignCast(currentSlot().*));
}

pub inline fn setCurrent(tc: ?*ThreadCache) void {
    currentSlot().* = tc;
}

inline fn currentSlot() *?*anyopaque {
    return &tlsSlots()[@backingInt(TlsSlot.thread_cache)];
}

/// The slots of thread_pointer.c's `hm_tls`.
pub const TlsSlot = enum(usize) { thread_cache = 0, memtier_state = 1 };

/// Release builds (LLVM, x86_64) read the initial-exec TLS slot `slot` defined in
/// thread_pointer.c with `%fs:` addressing; other builds use `fallback`, a Zig
/// threadlocal (the self-hosted backend's assembler has no @gottpoff).
const use_initial_exec = builtin.cpu.arch == .x86_64 and builtin.zig_backend == .stage2_llvm and builtin.link_libc;

threadlocal var fallback_slots: [2]?*anyopaque = @splat(null);

/// This thread's `hm_tls` (thread_pointer.c), indexed by `TlsSlot`. A path that reads both
/// slots (libmemtier's two-tier malloc) calls this once: each call loads the array's offset and
/// the thread pointer again (LLVM does not merge the asm statements).
pub inline fn tlsSlots() *[2]?*anyopaque {
    if (!use_initial_exec) return &fallback_slots;
    const offset = asm ("movq hm_tls@gottpoff(%%rip), %[ret]"
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
    // Fresh memory is zero: pools[*], next and prev are null already.
    tc.default.init();
    tc.pools[0] = &tc.default;
    return tc;
}

pub fn createPoolCache() ?*PoolCache {
    const raw = mapZeroed(@sizeOf(PoolCache)) orelse return null;
    const cache: *PoolCache = @ptrCast(@alignCast(raw));
    cache.init();
    return cache;
}

pub fn destroyPoolCache(cache: *PoolCache) void {
    _ = linux.munmap(@ptrCast(cache), @sizeOf(PoolCache));
}

pub fn destroyThreadCache(tc: *ThreadCache) void {
    _ = linux.munmap(@ptrCast(tc), @sizeOf(ThreadCache));
}

test "capacities hold between 8 and 1024 blocks, 32 KiB of blocks where that is within, and shrink with size" {
    try std.testing.expectEqual(@as(u32, 1024), capacity(0));
    try std.testing.expectEqual(@as(u32, 512), capacity(size_class.classOf(64)));
    var held: usize = 0;
    for (0..size_class.count) |i| held += capacity(@intCast(i)) * size_class.sizeOf(@intCast(i));
    try std.testing.expect(held <= 2_400_000); // what a thread may hold idle per pool
    try std.testing.expectEqual(@as(u32, 8), capacity(size_class.count - 1));
    for (1..size_class.count) |i| try std.testing.expect(capacity(@intCast(i)) <= capacity(@intCast(i - 1)));
    for (0..size_class.count) |i| try std.testing.expect(capacity(@intCast(i)) % 2 == 0);
}

test "a pool cache's bins tile its storage" {
    const cache = createPoolCache().?;
    defer destroyPoolCache(cache);
    const last = cache.bin(size_class.count - 1).*;
    try std.testing.expectEqual(@intFromPtr(&cache.storage) + (slots_total - last.capacity) * @sizeOf(usize), @intFromPtr(last.items));
}

test "a thread cache starts with the default pool's cache, also reachable as slot 0" {
    const tc = createThreadCache().?;
    defer destroyThreadCache(tc);
    try std.testing.expectEqual(@as(usize, 0), @offsetOf(ThreadCache, "default"));
    try std.testing.expectEqual(&tc.default, tc.pools[0].?);
    for (tc.pools[1..]) |p| try std.testing.expectEqual(@as(?*PoolCache, null), p);
    try std.testing.expectEqual(capacity(0), tc.default.bin(0).capacity);
    try std.testing.expectEqual(tc.default.bin(3), tc.default.binByKey(size_class.keyOf(3)));
}
