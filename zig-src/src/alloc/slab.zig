//! Slabs and bins: where small blocks live when no thread holds them.
//!
//! What: a slab is a run of pages (see chunk.zig) cut into equal blocks of
//! one size class; its descriptor holds a bitmap of the blocks that are free
//! *in the slab*. A bin (one per pool, class and bin shard) owns the slabs of
//! its class that still have free blocks, on a list, under the bin's own lock.
//! A slab stays in the shard that cut it: blocks another thread frees go back
//! to it, whatever that thread's shard.
//!
//! Threads do not allocate from bins one block at a time: their caches
//! (thread_cache.zig) take a batch with `fill` and give a batch back with
//! `flush`, so a bin's lock is taken once per batch — tens of allocations —
//! and never on the common path. A block in a thread cache is "allocated" as
//! far as its slab knows; a block freed by another thread simply enters that
//! thread's cache and comes back to its slab with the next flush, which is
//! what makes remote frees cheap (no message queues, no atomics per free).
//!
//! A slab whose blocks are all free again goes back to its chunk as free
//! pages (then purged after the decay), except for about 64 KiB of empty
//! slabs per class (at least two, in all shards together), kept to absorb the
//! alloc/free ping-pong of batches.
//!
//! Trade-off: a per-class lock contends when many threads refill the same
//! class at once; batches make that rare for 2–64 threads, and it keeps
//! memory accounting exact and simple (mimalloc's per-page thread-free lists
//! avoid the lock but need an atomic per remote free).
const std = @import("std");
const assert = std.debug.assert;
const size_class = @import("size_class.zig");
const chunk = @import("chunk.zig");
const Run = chunk.Run;
const Lock = @import("lock.zig").Lock;

const empty_kept_bytes: usize = 64 * 1024;

pub const Bin = struct {
    lock: Lock = .{},
    class: size_class.ClassIndex = 0,
    /// The pool's bin shard this bin belongs to (its slabs carry it).
    shard: u8 = 0,
    /// Slabs with at least one free block.
    nonfull: ?*Run = null,
    /// Slabs this bin owns (full ones included).
    slab_count: usize = 0,
    /// Of those, slabs with every block free, kept for reuse.
    empty_count: usize = 0,
    /// The empty slabs of this class in all the pool's bin shards (null: this bin alone): what
    /// `emptySlabsKept` bounds, so that shards do not multiply the memory kept.
    class_empty_count: ?*std.atomic.Value(u32) = null,

    /// Moves up to `out.len` free blocks out of the bin's slabs into `out`.
    /// Returns how many; 0 means the bin needs a new slab (`addSlab`).
    /// Caller holds `lock`.
    pub fn take(bin: *Bin, out: []usize) usize {
        const size = size_class.sizeOf(bin.class);
        var n: usize = 0;
        while (n < out.len) {
            const slab = bin.nonfull orelse break;
            assert(slab.kind == .slab and slab.class == bin.class and slab.free_count > 0);
            const base = slab.base();
            if (slab.free_count == size_class.geometry(bin.class).regions) bin.noteEmpty(false);
            for (&slab.free_bitmap, 0..) |*word, w| {
                while (word.* != 0 and n < out.len) {
                    const bit = @ctz(word.*);
                    word.* &= word.* - 1;
                    out[n] = base + (w * 64 + bit) * size;
                    n += 1;
                    slab.free_count -= 1;
                }
                if (n == out.len) break;
            }
            if (slab.free_count == 0) bin.unlist(slab);
        }
        return n;
    }

    /// Returns blocks to their slabs. Slabs that become entirely free are
    /// handed to `release` (which frees their pages), except the last one.
    /// Caller holds `lock`; `release` runs under it (it takes the pool's
    /// page lock, which nests inside bin locks).
    pub fn put(bin: *Bin, blocks: []const usize, release: anytype) void {
        const size = size_class.sizeOf(bin.class);
        for (blocks) |block| {
            const c = chunk.Chunk.fromAddress(block);
            const slab = c.runOf(block).?;
            assert(slab.kind == .slab and slab.class == bin.class and slab.shard == bin.shard);
            const index = size_class.regionIndex(bin.class, block - slab.base());
            assert(block == slab.base() + index * size);
            const mask = @as(u64, 1) << @intCast(index & 63);
            assert(slab.free_bitmap[index >> 6] & mask == 0); // not free twice
            slab.free_bitmap[index >> 6] |= mask;
            slab.free_count += 1;
            const regions = size_class.geometry(bin.class).regions;
            if (slab.free_count == 1) bin.list(slab);
            if (slab.free_count == regions) {
                if (bin.emptyCount() < emptySlabsKept(bin.class) or bin.slab_count == 1) {
                    bin.noteEmpty(true);
                } else {
                    bin.unlist(slab);
                    bin.slab_count -= 1;
                    release.releaseSlab(slab);
                }
            }
        }
    }

    /// The empty slabs `emptySlabsKept` bounds: the class's in all shards, or this bin's.
    inline fn emptyCount(bin: *const Bin) usize {
        return if (bin.class_empty_count) |count| count.load(.monotonic) else bin.empty_count;
    }

    /// A slab of this bin became empty (`empty`) or stopped being so.
    inline fn noteEmpty(bin: *Bin, comptime empty: bool) void {
        if (empty) bin.empty_count += 1 else bin.empty_count -= 1;
        const count = bin.class_empty_count orelse return;
        _ = if (empty) count.fetchAdd(1, .monotonic) else count.fetchSub(1, .monotonic);
    }

    /// Empty slabs a bin keeps instead of giving their pages back: about
    /// `empty_kept_bytes` worth, at least two, for all shards of a class
    /// together. They absorb the alloc/free ping-pong of a producer and a
    /// consumer thread at batch boundaries, which otherwise costs a page-run
    /// round trip per slab. Two, because
    /// the classes whose slab alone exceeds the budget (≥ 64 KiB slabs of
    /// blocks ≥ 10 KiB) otherwise give a slab back and map a new one each
    /// time their live count wobbles across a slab boundary: in bench/'s
    /// mixed workload that was 1,793 madvise calls and 17.5k page faults per
    /// run, 1,021 and 14.3k with two (tcmalloc: 12.4k faults).
    fn emptySlabsKept(class: size_class.ClassIndex) usize {
        const slab_bytes = @as(usize, size_class.geometry(class).pages) * size_class.page_size_bytes;
        return @max(2, empty_kept_bytes / slab_bytes);
    }

    /// Adopts a fresh run as a slab of this bin, all blocks free.
    pub fn addSlab(bin: *Bin, run: *Run) void {
        const g = size_class.geometry(bin.class);
        assert(run.pages == g.pages and run.kind == .unused);
        run.kind = .slab;
        run.class = bin.class;
        run.shard = bin.shard;
        run.free_count = g.regions;
        run.free_bitmap = @splat(0);
        var i: usize = 0;
        while (i < g.regions) : (i += 64) {
            const left = g.regions - i;
            run.free_bitmap[i >> 6] = if (left >= 64) ~@as(u64, 0) else (@as(u64, 1) << @intCast(left)) - 1;
        }
        run.chunk().markSlab(run, bin.class);
        bin.slab_count += 1;
        bin.noteEmpty(true);
        bin.list(run);
    }

    /// Whether the slab holding `block` (of this bin) has `block` free in it.
    /// Used to confirm a suspected double free. Caller holds `lock`.
    pub fn isFreeInSlab(bin: *Bin, block: usize) bool {
        const slab = chunk.Chunk.fromAddress(block).runOf(block) orelse return false;
        const index = size_class.regionIndex(bin.class, block - slab.base());
        return slab.free_bitmap[index >> 6] & (@as(u64, 1) << @intCast(index & 63)) != 0;
    }

    fn list(bin: *Bin, slab: *Run) void {
        assert(!slab.listed);
        slab.prev = null;
        slab.next = bin.nonfull;
        if (bin.nonfull) |head| head.prev = slab;
        bin.nonfull = slab;
        slab.listed = true;
    }

    fn unlist(bin: *Bin, slab: *Run) void {
        assert(slab.listed);
        if (slab.prev) |p| p.next = slab.next else bin.nonfull = slab.next;
        if (slab.next) |n| n.prev = slab.prev;
        slab.next = null;
        slab.prev = null;
        slab.listed = false;
    }
};

const TestRelease = struct {
    released: usize = 0,
    fn releaseSlab(self: *TestRelease, slab: *Run) void {
        self.released += 1;
        _ = slab.chunk().freeRun(slab);
    }
};

test "a bin hands out every block of a slab once, then asks for a new slab" {
    const linux = std.os.linux;
    const rc = linux.mmap(null, 2 * chunk.chunk_bytes, .{ .READ = true, .WRITE = true }, .{ .TYPE = .PRIVATE, .ANONYMOUS = true }, -1, 0);
    const c = chunk.Chunk.init(std.mem.alignForward(usize, rc, chunk.chunk_bytes), @ptrFromInt(0x1000), 0);
    const class = size_class.classOf(48);
    var bin: Bin = .{ .class = class };
    const g = size_class.geometry(class);
    bin.addSlab(c.allocRun(g.pages, 1).?);
    var out: [600]usize = undefined;
    const n = bin.take(&out);
    try std.testing.expectEqual(@as(usize, g.regions), n);
    try std.testing.expectEqual(@as(usize, 0), bin.take(&out));
    // Distinct, in bounds, aligned to 16.
    for (out[0..n], 0..) |p, i| {
        try std.testing.expect(p % 16 == 0);
        if (i > 0) try std.testing.expect(p > out[i - 1]);
    }
    // Give them back: the only slab is kept, not released.
    var rel: TestRelease = .{};
    bin.put(out[0..n], &rel);
    try std.testing.expectEqual(@as(usize, 0), rel.released);
    try std.testing.expect(bin.isFreeInSlab(out[3]));
    // Empty slabs beyond the bin's budget go back to their chunk.
    const kept = Bin.emptySlabsKept(class);
    for (0..kept + 1) |_| bin.addSlab(c.allocRun(g.pages, 1).?);
    var many: [16 * 600]usize = undefined;
    const m = bin.take(many[0 .. (kept + 2) * g.regions]);
    try std.testing.expectEqual((kept + 2) * g.regions, m);
    bin.put(many[0..m], &rel);
    try std.testing.expectEqual(@as(usize, 2), rel.released); // kept + 2 slabs, kept kept
    try std.testing.expectEqual(kept, bin.empty_count);
}
