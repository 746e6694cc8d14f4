//! Size classes: jemalloc's geometry, computed at compile time.
//!
//! What: every request is rounded up to a *class*. Classes below 128 B are
//! spaced 16 B apart (plus a lone 8 B class for tiny objects); from 128 B on,
//! each power-of-two group [2^k, 2^(k+1)] holds four classes spaced 2^(k-2)
//! apart: 160, 192, 224, 256, 320, ... — so internal fragmentation is at most
//! 25% (20% past the first groups). A request up to `lookup_max_bytes` (4 KiB)
//! finds its class with one load from a table built at compile time; a larger
//! one with a count-leading-zeros and two shifts: no search and no division.
//!
//! Classes up to `small_max_bytes` (32 KiB) are *small*: carved out of slabs
//! and cached per thread. Bigger requests are *large* (page runs inside a
//! chunk, rounded to whole pages) or *huge* (a mapping of their own); those
//! are decided in `pool.zig` from the constants here.
//!
//! Each small class also has a slab geometry: the number of pages a slab of
//! that class spans, chosen as the fewest pages that waste at most 1/16 of the
//! slab and hold at least `slab_regions_min` blocks, capped so a slab's free
//! bitmap fits `slab_regions_max` bits. Division by a class size (pointer →
//! block index, done on every free) is a multiply and a shift with the
//! reciprocal computed here (exact for offsets below 2^32). Whether an offset
//! is a block's start (free's interior-pointer check) is one multiply, one
//! rotate and one compare with `start_tests` (no division, no second multiply).
//!
//! Trade-off: four classes per doubling (jemalloc's choice) instead of eight
//! (tcmalloc-like) keeps the class count, and so per-thread cache memory,
//! small, at the cost of up to 25% rounding for sizes just above a class.
const std = @import("std");
const assert = std.debug.assert;

pub const page_size_bytes: usize = 4096;
pub const page_shift: u6 = 12;
/// Largest request served from slabs (and cached per thread).
pub const small_max_bytes: usize = 32 * 1024;
/// Most blocks a slab may hold: the width of its free bitmap.
pub const slab_regions_max: usize = 512;
const slab_regions_min: usize = 4;
const slab_pages_max: usize = 32;
/// Smallest alignment every block has (malloc's guarantee on x86_64).
pub const min_alignment_bytes: usize = 16;

pub const ClassIndex = u8;

const class_table = buildClassTable();
pub const count: usize = class_table.len;

comptime {
    assert(class_table[count - 1] == small_max_bytes);
    assert(count <= std.math.maxInt(ClassIndex));
    // Design facts: classes strictly increase, and each keeps the minimum alignment
    // (the lone 8 B class aside), so rounding up to a class never misaligns a block.
    for (class_table[1..], class_table[0 .. count - 1]) |size, smaller| {
        assert(size > smaller);
        assert(size % min_alignment_bytes == 0);
    }
}

fn buildClassTable() [countClasses()]u32 {
    @setEvalBranchQuota(100_000);
    var table: [countClasses()]u32 = undefined;
    var i: usize = 0;
    var size: usize = 8;
    while (size <= small_max_bytes) : (size = nextClassSize(size)) {
        table[i] = size;
        i += 1;
    }
    return table;
}

fn countClasses() usize {
    @setEvalBranchQuota(100_000);
    var n: usize = 0;
    var size: usize = 8;
    while (size <= small_max_bytes) : (size = nextClassSize(size)) n += 1;
    return n;
}

fn nextClassSize(size: usize) usize {
    if (size < 16) return 16;
    if (size < 128) return size + 16;
    // size in [2^k, 2^(k+1)): spacing 2^(k-2).
    const k = std.math.log2_int(usize, size);
    return size + (@as(usize, 1) << @intCast(k - 2));
}

/// Sizes up to this are classified by one table load (8-byte steps).
pub const lookup_max_bytes: usize = 4096;
const lookup_table: [lookup_max_bytes / 8 + 1]ClassIndex = blk: {
    @setEvalBranchQuota(200_000);
    var t: [lookup_max_bytes / 8 + 1]ClassIndex = undefined;
    for (&t, 0..) |*c, i| c.* = classByArithmetic(@max(i * 8, 1));
    break :blk t;
};

/// The class of a request of `size_bytes` (0 ≤ size ≤ small_max_bytes; 0
/// gets the smallest class).
pub inline fn classOf(size_bytes: usize) ClassIndex {
    assert(size_bytes <= small_max_bytes);
    if (size_bytes <= lookup_max_bytes) {
        @branchHint(.likely);
        return lookup_table[(size_bytes + 7) >> 3];
    }
    return classByArithmetic(size_bytes);
}

/// A class's *key*: (class + 1) · key_stride. A chunk's page entry (`Chunk.page_entries`) holds it
/// for slab pages (0 for any other page), and per-class tables of 16-byte
/// entries with an unused entry 0 (`start_tests`, a thread cache's bins) are
/// addressed with the key as a byte offset: no shift, no decrement on the
/// hot paths.
pub const Key = u16;
pub const key_stride: usize = 16;

pub inline fn keyOf(class: usize) Key {
    assert(class < count);
    return @intCast((class + 1) * key_stride);
}

pub inline fn classOfKey(key: usize) ClassIndex {
    assert(key >= key_stride and key % key_stride == 0 and key / key_stride <= count);
    return @intCast(key / key_stride - 1);
}

const key_lookup_table: [lookup_max_bytes / 8 + 1]Key = blk: {
    @setEvalBranchQuota(200_000);
    var t: [lookup_max_bytes / 8 + 1]Key = undefined;
    for (&t, lookup_table) |*k, c| k.* = keyOf(c);
    break :blk t;
};

/// The key of the class of a request of ≤ lookup_max_bytes: one table load.
pub inline fn keyOfLookup(size_bytes: usize) usize {
    assert(size_bytes <= lookup_max_bytes);
    return key_lookup_table[(size_bytes + 7) >> 3];
}

/// classOf for sizes above lookup_max_bytes (and any size ≤ small_max_bytes).
pub fn classByArithmetic(size_bytes: usize) ClassIndex {
    if (size_bytes <= 8) return 0;
    if (size_bytes <= 128) return @intCast((size_bytes + 15) >> 4);
    // Group g ≥ 0 covers (2^(g+7), 2^(g+8)]; four classes per group,
    // the group's first class index is 8 + 4g + 1.
    const x = size_bytes - 1;
    const lg: usize = std.math.log2_int(usize, x); // ≥ 7
    const shift: u6 = @intCast(lg - 2);
    const group = lg - 7;
    const within = (x >> shift) & 3; // 0..3
    return @intCast(9 + 4 * group + within);
}

/// The size in bytes of class `class`.
pub inline fn sizeOf(class: ClassIndex) usize {
    return class_table[class];
}

/// Class sizes indexed by key / key_stride (entry 0 unused): `sizeOfKey` is a shift and a load.
const size_by_key_table: [count + 1]u32 = blk: {
    var t: [count + 1]u32 = undefined;
    t[0] = 0;
    for (class_table, 1..) |size, i| t[i] = size;
    break :blk t;
};

/// The size in bytes of the class whose key is `key`.
pub inline fn sizeOfKey(key: usize) usize {
    assert(key >= key_stride and key % key_stride == 0 and key / key_stride <= count);
    return size_by_key_table[key / key_stride];
}

/// Request size rounded up to its class (small) or to whole pages (larger).
pub fn usableSizeFor(size_bytes: usize) usize {
    if (size_bytes <= small_max_bytes) return sizeOf(classOf(@max(size_bytes, 1)));
    return std.mem.alignForward(usize, size_bytes, page_size_bytes);
}

pub const SlabGeometry = struct {
    pages: u16,
    regions: u16,
    /// ceil(2^32 / size): offset / size == (offset * reciprocal) >> 32 for offsets < 2^22.
    reciprocal: u64,
};

const geometry_table = buildGeometry();

fn buildGeometry() [count]SlabGeometry {
    @setEvalBranchQuota(1_000_000);
    var table: [count]SlabGeometry = undefined;
    for (class_table, 0..) |size32, i| {
        const size: u64 = size32;
        var best_pages: u64 = 0;
        var pages: u64 = 1;
        while (pages <= slab_pages_max) : (pages += 1) {
            const bytes = pages * page_size_bytes;
            const regions = bytes / size;
            if (regions > slab_regions_max) break;
            if (regions < @min(slab_regions_min, slab_pages_max * page_size_bytes / size)) continue;
            const waste = bytes - regions * size;
            best_pages = pages;
            if (waste * 16 <= bytes) break;
        }
        assert(best_pages != 0);
        const regions = best_pages * page_size_bytes / size;
        table[i] = .{
            .pages = @intCast(best_pages),
            .regions = @intCast(regions),
            .reciprocal = ((1 << 32) + size - 1) / size,
        };
    }
    return table;
}

pub inline fn geometry(class: ClassIndex) SlabGeometry {
    return geometry_table[class];
}

/// Divisibility by a class size d = m·2^k (m odd) without division
/// (Granlund–Montgomery): for x < 2^32, x % d == 0 exactly when
/// rotr32(x·m⁻¹ mod 2^32, k) ≤ ⌊(2^32 − 1) / d⌋. Indexed by class + 1
/// (addressed by key); entry 0 is never consulted.
pub const StartTest = extern struct { inverse: u32, limit: u32, shift: u32, unused: u32 = 0 };

comptime {
    assert(@sizeOf(StartTest) == key_stride);
}

pub const start_tests: [count + 1]StartTest = blk: {
    var t: [count + 1]StartTest = undefined;
    t[0] = .{ .inverse = 0, .limit = 0, .shift = 0 };
    for (class_table, 1..) |size, i| {
        const k = @ctz(size);
        const m: u64 = size >> k;
        // Newton's iteration for the inverse of an odd m modulo 2^32.
        var inv: u64 = m;
        for (0..5) |_| inv = (inv *% (2 -% m *% inv)) & 0xffff_ffff;
        assert((inv * m) & 0xffff_ffff == 1);
        t[i] = .{ .inverse = @intCast(inv), .limit = @intCast(0xffff_ffff / size), .shift = k };
    }
    break :blk t;
};

/// Whether `offset_bytes` (from a slab's start, < 2^32) is a multiple of the
/// size of the class whose key is `key`.
pub inline fn isBlockStart(key: usize, offset_bytes: usize) bool {
    assert(key >= key_stride and key % key_stride == 0 and key / key_stride <= count);
    const t: *const StartTest = @ptrFromInt(@intFromPtr(&start_tests) + key);
    const x: u32 = @truncate(offset_bytes);
    return std.math.rotr(u32, x *% t.inverse, t.shift) <= t.limit;
}

/// Index of the block at `offset_bytes` from its slab's start (no division).
pub inline fn regionIndex(class: ClassIndex, offset_bytes: usize) usize {
    assert(offset_bytes < slab_pages_max * page_size_bytes);
    return @intCast((@as(u64, offset_bytes) * geometry_table[class].reciprocal) >> 32);
}

test "classes follow jemalloc's spacing: 8, 16, 32, 48, ... 128, 160, 192, 224, 256, 320" {
    const expected = [_]usize{ 8, 16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 640 };
    for (expected, 0..) |size, i| try std.testing.expectEqual(size, sizeOf(@intCast(i)));
    try std.testing.expectEqual(small_max_bytes, sizeOf(count - 1));
}

test "classOf returns the smallest class that fits, for every size" {
    var size: usize = 1;
    while (size <= small_max_bytes) : (size += 1) {
        const class = classOf(size);
        try std.testing.expect(sizeOf(class) >= size);
        if (class > 0) try std.testing.expect(sizeOf(class - 1) < size);
    }
}

test "rounding wastes at most 25% past 16 bytes" {
    var size: usize = 17;
    while (size <= small_max_bytes) : (size += 1) {
        try std.testing.expect(sizeOf(classOf(size)) * 4 <= size * 5 + 64);
    }
}

test "aligned sizes land on classes that are multiples of the alignment" {
    // The property haligned_alloc relies on: align_up(size, a) is itself a class.
    var a: usize = 16;
    while (a <= page_size_bytes) : (a *= 2) {
        var size: usize = 1;
        while (size <= small_max_bytes) : (size += 7) {
            const want = std.mem.alignForward(usize, size, a);
            if (want > small_max_bytes) break;
            try std.testing.expectEqual(@as(usize, 0), sizeOf(classOf(want)) % a);
        }
    }
}

test "slab geometry: bitmap fits, waste small, reciprocal divides exactly" {
    for (0..count) |i| {
        const class: ClassIndex = @intCast(i);
        const g = geometry(class);
        const size = sizeOf(class);
        try std.testing.expect(g.regions >= 1 and g.regions <= slab_regions_max);
        try std.testing.expect(g.regions * size <= g.pages * page_size_bytes);
        var r: usize = 0;
        while (r < g.regions) : (r += 1) {
            try std.testing.expectEqual(r, regionIndex(class, r * size));
            if (size > 1) try std.testing.expectEqual(r, regionIndex(class, r * size + size - 1));
        }
    }
}

test "isBlockStart says exactly whether an offset is a multiple of the class size" {
    for (0..count) |class| {
        const size = sizeOf(@intCast(class));
        const slab_bytes = @as(usize, geometry(@intCast(class)).pages) * page_size_bytes;
        const step: usize = if (class < 12) 1 else 3;
        var offset: usize = 0;
        while (offset < slab_bytes + 2 * size) : (offset += step) {
            try std.testing.expectEqual(offset % size == 0, isBlockStart(keyOf(class), offset));
        }
        var q: usize = 0;
        while (q * size < slab_bytes) : (q += 1) {
            try std.testing.expect(isBlockStart(keyOf(class), q * size));
            if (size > 8) try std.testing.expect(!isBlockStart(keyOf(class), q * size + 8));
        }
    }
}

test "keys round-trip to classes, and the key table agrees with classOf" {
    for (0..count) |class| {
        try std.testing.expectEqual(@as(ClassIndex, @intCast(class)), classOfKey(keyOf(class)));
        try std.testing.expectEqual(sizeOf(@intCast(class)), sizeOfKey(keyOf(class)));
    }
    var size: usize = 0;
    while (size <= lookup_max_bytes) : (size += 1) try std.testing.expectEqual(@as(usize, keyOf(classOf(size))), keyOfLookup(size));
}
