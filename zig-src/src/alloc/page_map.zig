//! The page map: address → owner, for any address, in O(1), without faulting.
//!
//! What: every 4 MiB *granule* of the address space that hmalloc owns (a chunk,
//! or a piece of a huge mapping) has one entry in a two-level radix tree: the
//! chunk's address, or a huge mapping's header address tagged with bit 0.
//! `hfree(p)` looks p's granule up before touching any memory near p, so a
//! pointer hmalloc never returned — a stack address, a glibc block, garbage —
//! is recognised as foreign and reported instead of corrupting a heap.
//!
//! Why a radix tree: a chunk header found by masking the pointer is the usual
//! trick (jemalloc's, mimalloc's), but reading a header at `p & ~mask` for a
//! foreign pointer faults or reads someone else's bytes. The tree costs two
//! dependent loads, reads are lock-free (acquire loads; entries are published
//! with release stores after the owner is fully set up), writes happen only
//! when a chunk or huge mapping is created or destroyed, under one lock.
//!
//! Geometry: user addresses below 2^47 (x86_64 4-level paging); the root has
//! 2^12 slots (32 KiB, static), each leaf 2^13 entries (64 KiB, mapped on
//! first use and never freed: at most 4096 leaves, and a leaf covers 32 GiB).
//! Addresses at or above 2^47 are never ours (we never pass mmap a high hint).
//!
//! In front of the tree, `chunkOf` answers for chunks alone from a direct-
//! mapped table (granule number mod 8192 → chunk base, 64 KiB): one load,
//! one xor and one compare instead of two dependent loads and three tests,
//! which is most of `free`'s lookup; the xor also gives the offset in the
//! chunk. A slot whose entry names another granule (two chunks 32 GiB
//! apart), and every huge mapping, fall back to the tree. A slot holds its
//! chunk's base xor `fast_key`, an address above 2^47: an empty slot (0)
//! then decodes to `fast_key`, which matches no address we are given, not
//! even NULL or the first 4 MiB, and costs one more xor with a constant.
//! Zero for "empty" keeps the table in .bss: a nonzero initializer put its
//! 64 KiB in .data, which the kernel's fault-around maps in whole on the
//! first lookup (64 KiB of RSS in every program, half of a small one's).
const std = @import("std");
const assert = std.debug.assert;
const linux = std.os.linux;
const Lock = @import("lock.zig").Lock;

pub const granule_shift: u6 = 22;
pub const granule_bytes: usize = @as(usize, 1) << granule_shift;
const address_bits = 47;
const key_bits = address_bits - granule_shift; // 25
const root_bits = 12;
const leaf_bits = key_bits - root_bits; // 13
const leaf_entries = @as(usize, 1) << leaf_bits;

/// 0 = not ours. Chunk: the chunk's base (granule-aligned). Huge: header | huge_tag.
pub const Entry = usize;
pub const huge_tag: usize = 1;

const Leaf = [leaf_entries]std.atomic.Value(Entry);

var root: [1 << root_bits]std.atomic.Value(?*Leaf) = @splat(.init(null));
var write_lock: Lock = .{};

const fast_bits = 13;
/// Chunk base xor `fast_key` per slot; 0 = empty.
var fast_chunks: [1 << fast_bits]std.atomic.Value(usize) = @splat(.init(0));
const fast_key: usize = @as(usize, 1) << 62;

inline fn fastSlot(address: usize) *std.atomic.Value(usize) {
    return &fast_chunks[(address >> granule_shift) & ((1 << fast_bits) - 1)];
}

/// A chunk known to the fast table: its base, and `address`'s offset in it.
pub const ChunkHit = struct { base: usize, offset: usize };

/// The chunk holding `address` if the fast table knows it; null means "ask
/// `lookup`" (not a chunk, a colliding chunk, or not ours). Never a hit for
/// address 0 (NULL), which `free` relies on.
pub inline fn chunkOf(address: usize) ?ChunkHit {
    const base = fastSlot(address).load(.acquire) ^ fast_key;
    const offset = base ^ address;
    if (offset >= granule_bytes) return null;
    return .{ .base = base, .offset = offset };
}

/// The entry of the granule holding `address` (0 if none). Lock-free.
pub inline fn lookup(address: usize) Entry {
    const key = address >> granule_shift;
    if (key >> key_bits != 0) return 0;
    const leaf = root[key >> leaf_bits].load(.acquire) orelse return 0;
    return leaf[key & (leaf_entries - 1)].load(.acquire);
}

/// Publishes `entry` for every granule of [base, base + length). `base` must be
/// granule-aligned and the range must not be registered yet.
pub fn register(base: usize, length: usize, entry: Entry) error{OutOfMemory}!void {
    assert(base % granule_bytes == 0 and length > 0 and entry != 0);
    write_lock.lock();
    defer write_lock.unlock();
    var key = base >> granule_shift;
    const end = (base + length - 1) >> granule_shift;
    if (end >> key_bits != 0) return error.OutOfMemory;
    // Make every leaf first, so a failure leaves nothing half-published.
    var k = key;
    while (k <= end) : (k += leaf_entries - (k & (leaf_entries - 1))) {
        _ = try leafFor(k);
    }
    while (key <= end) : (key += 1) {
        const leaf = root[key >> leaf_bits].load(.monotonic).?;
        assert(leaf[key & (leaf_entries - 1)].load(.monotonic) == 0);
        leaf[key & (leaf_entries - 1)].store(entry, .release);
    }
    // A chunk (one granule, untagged entry) also gets the fast slot if free.
    if (entry == base and length == granule_bytes) {
        const slot = fastSlot(base);
        if (slot.load(.monotonic) == 0) slot.store(base ^ fast_key, .release);
    }
}

/// Forgets the granules of [base, base + length) (before they are unmapped).
pub fn unregister(base: usize, length: usize) void {
    assert(base % granule_bytes == 0 and length > 0);
    write_lock.lock();
    defer write_lock.unlock();
    var key = base >> granule_shift;
    const end = (base + length - 1) >> granule_shift;
    if (length == granule_bytes and fastSlot(base).load(.monotonic) == base ^ fast_key) fastSlot(base).store(0, .release);
    while (key <= end) : (key += 1) {
        const leaf = root[key >> leaf_bits].load(.monotonic) orelse unreachable;
        assert(leaf[key & (leaf_entries - 1)].load(.monotonic) != 0);
        leaf[key & (leaf_entries - 1)].store(0, .release);
    }
}

fn leafFor(key: usize) error{OutOfMemory}!*Leaf {
    const slot = &root[key >> leaf_bits];
    if (slot.load(.monotonic)) |leaf| return leaf;
    const rc = linux.mmap(null, @sizeOf(Leaf), .{ .READ = true, .WRITE = true }, .{ .TYPE = .PRIVATE, .ANONYMOUS = true }, -1, 0);
    if (linux.errno(rc) != .SUCCESS) return error.OutOfMemory;
    const leaf: *Leaf = @ptrFromInt(rc);
    slot.store(leaf, .release);
    return leaf;
}

/// fork(): the child inherits a possibly held lock; the prepare/parent/child
/// handlers of `pool.zig` call these around fork.
pub fn lockForFork() void {
    write_lock.lock();
}
pub fn unlockAfterFork() void {
    write_lock.unlock();
}
pub fn resetInChild() void {
    write_lock = .{};
}

test "unregistered addresses, including absurd ones, are not ours" {
    var local: u64 = 0;
    try std.testing.expectEqual(@as(Entry, 0), lookup(@intFromPtr(&local)));
    try std.testing.expectEqual(@as(Entry, 0), lookup(0));
    try std.testing.expectEqual(@as(Entry, 0), lookup(std.math.maxInt(usize)));
    try std.testing.expectEqual(@as(Entry, 0), lookup(@as(usize, 1) << 47));
}

test "a registered range maps every byte of it, and only it" {
    const base: usize = 0x7f12_3440_0000 & ~(granule_bytes - 1);
    try register(base, 3 * granule_bytes, base | huge_tag);
    defer unregister(base, 3 * granule_bytes);
    try std.testing.expectEqual(base | huge_tag, lookup(base));
    try std.testing.expectEqual(base | huge_tag, lookup(base + 3 * granule_bytes - 1));
    try std.testing.expectEqual(@as(Entry, 0), lookup(base - 1));
    try std.testing.expectEqual(@as(Entry, 0), lookup(base + 3 * granule_bytes));
}

test "unregister forgets the range" {
    const base: usize = 0x5555_0000_0000;
    try register(base, granule_bytes, base);
    unregister(base, granule_bytes);
    try std.testing.expectEqual(@as(Entry, 0), lookup(base + 100));
}

test "chunks are found through the fast table; huge ranges and strangers are not" {
    const base: usize = 0x6666_0000_0000;
    try std.testing.expectEqual(@as(?ChunkHit, null), chunkOf(base + 5));
    try register(base, granule_bytes, base);
    try std.testing.expectEqual(ChunkHit{ .base = base, .offset = granule_bytes - 1 }, chunkOf(base + granule_bytes - 1).?);
    try std.testing.expectEqual(@as(?ChunkHit, null), chunkOf(base + granule_bytes));
    // Empty slots never match, also for the first granule.
    for ([_]usize{ 0, 8, 0x1000, granule_bytes - 1, granule_bytes, 3 * granule_bytes + 64 }) |a|
        try std.testing.expectEqual(@as(?ChunkHit, null), chunkOf(a));
    // A chunk 32 GiB further shares the slot: the tree answers for it.
    const twin = base + (@as(usize, 1) << (granule_shift + fast_bits));
    try register(twin, granule_bytes, twin);
    try std.testing.expectEqual(@as(?ChunkHit, null), chunkOf(twin));
    try std.testing.expectEqual(twin, lookup(twin));
    unregister(twin, granule_bytes);
    try std.testing.expectEqual(base, chunkOf(base).?.base); // the owner keeps its slot
    unregister(base, granule_bytes);
    try std.testing.expectEqual(@as(?ChunkHit, null), chunkOf(base));
    // Slot 0 (granule numbers that are multiples of 8192), taken and emptied again.
    const zero_slot: usize = @as(usize, 1) << (granule_shift + fast_bits);
    try register(zero_slot, granule_bytes, zero_slot);
    try std.testing.expectEqual(zero_slot, chunkOf(zero_slot + 100).?.base);
    try std.testing.expectEqual(@as(?ChunkHit, null), chunkOf(0)); // NULL, with slot 0 taken
    unregister(zero_slot, granule_bytes);
    try std.testing.expectEqual(@as(?ChunkHit, null), chunkOf(100));
    const huge_base: usize = 0x6677_0000_0000;
    try register(huge_base, granule_bytes, huge_base | huge_tag);
    defer unregister(huge_base, granule_bytes);
    try std.testing.expectEqual(@as(?ChunkHit, null), chunkOf(huge_base));
}
