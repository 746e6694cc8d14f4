//! Chunks: how hmalloc reserves memory and places it.
//!
//! What: a chunk is 4 MiB of address space, aligned to 4 MiB, owned by one
//! pool. Its pool's NUMA policy is applied to it with one `mbind` right after
//! it is mapped, before any byte of it is touched, so every page it will ever
//! fault in lands where the policy says: 256 mbind calls per GiB, and no
//! syscall per allocation. (Huge allocations get their own mapping and their
//! own single mbind in `huge.zig`.)
//!
//! Layout: the first `header_pages` pages hold this header: per-page entries
//! (page → first page of its run and slab class), free and dirty page bitmaps, and one
//! run descriptor per page (used only at a run's first page). The remaining
//! pages are handed out as *runs*: a slab of small blocks (`slab.zig`) or one
//! large block. Pointer → metadata is O(1): page_map gives the chunk, the page
//! index gives the run.
//!
//! Purging: freed pages stay mapped and *dirty* (still resident) so that the
//! next allocation reuses them without a fault; the pool purges dirty pages
//! with madvise(MADV_DONTNEED) once they have stayed free for a whole decay
//! interval (two-generation bitmaps: `purgeOld`), or all of them when a pool
//! holds more than its limit. DONTNEED keeps the VMA and its policy: a page faulted
//! again is placed by the same policy.
//!
//! Trade-off: first-fit over a 1024-bit map is linear in the chunk's words,
//! not O(log n) like a tree of free runs; with 16 words per chunk it is a few
//! dozen instructions, and it only runs on a pool's slow path (new slab, large
//! block), under the pool's lock. All fields here are guarded by that lock,
//! except `runs[*]` of slabs, which belong to their bin (see slab.zig).
const std = @import("std");
const assert = std.debug.assert;
const linux = std.os.linux;
const size_class = @import("size_class.zig");
const page_map = @import("page_map.zig");

pub const chunk_bytes: usize = page_map.granule_bytes;
pub const page_bytes: usize = size_class.page_size_bytes;
pub const pages_per_chunk: usize = chunk_bytes / page_bytes;
const map_words = pages_per_chunk / 64;
pub const chunk_magic: u64 = 0x686d_6368_756e_6b31; // "hmchunk1"

pub const RunKind = enum(u8) { unused, slab, large };

/// Descriptor of a run, stored at `runs[first page]`.
pub const Run = struct {
    kind: RunKind = .unused,
    class: size_class.ClassIndex = 0,
    pages: u16 = 0,
    /// slab: free blocks in `free_bitmap`. Guarded by the bin's lock.
    free_count: u16 = 0,
    /// slab: on its bin's list of slabs with free blocks.
    listed: bool = false,
    /// slab: the bin shard (pool.zig) whose bin owns it; fixed while the slab lives.
    shard: u8 = 0,
    /// slab: bit i set = block i is free (in the slab, not in any cache).
    free_bitmap: [size_class.slab_regions_max / 64]u64 = @splat(0),
    next: ?*Run = null,
    prev: ?*Run = null,

    /// The chunk holding this descriptor.
    pub inline fn chunk(run: *Run) *Chunk {
        return @ptrFromInt(@intFromPtr(run) & ~(chunk_bytes - 1));
    }
    /// Address of the run's first byte.
    pub inline fn base(run: *Run) usize {
        const c = run.chunk();
        const index = (@intFromPtr(run) - @intFromPtr(&c.runs)) / @sizeOf(Run);
        return @intFromPtr(c) + index * page_bytes;
    }
};

/// What a chunk knows of one of its pages. Side by side, so that free's one lookup touches one
/// cache line (as two arrays they were two: mixed 8 B-32 KiB frees stalled on both).
pub const PageEntry = extern struct {
    /// First page of the run holding this page (valid for pages in runs).
    owner: u16,
    /// Its slab's class key (size_class.keyOf) for the pages of a slab, 0 for anything else.
    key: size_class.Key,
};

pub const Chunk = struct {
    magic: u64,
    /// The owning pool (opaque here to keep this file free of pool.zig).
    pool: *anyopaque,
    /// The owning pool's slot (indexes each thread's caches: `free` needs
    /// no load from the pool).
    slot: u8,
    /// Next chunk of the same pool.
    next: ?*Chunk,
    free_pages: u32,
    /// page → its run's first page and slab class: what `free` reads on its
    /// fast path (no run descriptor), both from one cache line.
    page_entries: [pages_per_chunk]PageEntry,
    /// bit set = page free.
    free_map: [map_words]u64,
    /// bit set = page free but maybe still resident (not purged yet).
    dirty_map: [map_words]u64,
    /// bit set = page was already dirty at the pool's last decay tick: it has
    /// been free for at least one decay interval, so the next tick purges it.
    old_dirty_map: [map_words]u64,
    runs: [pages_per_chunk]Run,

    pub const header_pages: usize = (@sizeOf(Chunk) + page_bytes - 1) / page_bytes;
    pub const usable_pages: usize = pages_per_chunk - header_pages;

    comptime {
        assert(header_pages < pages_per_chunk / 16);
        // Chunk geometry: a power-of-two chunk (address → chunk is a mask) of whole
        // pages, whose page bitmaps are whole words, and a header that fits its pages.
        assert(std.math.isPowerOfTwo(chunk_bytes) and chunk_bytes % page_bytes == 0);
        assert(map_words * 64 == pages_per_chunk);
        assert(@sizeOf(Chunk) <= header_pages * page_bytes);
    }

    /// Sets up the header of a freshly mapped (zero, placed) chunk.
    pub fn init(base: usize, pool: *anyopaque, slot: u8) *Chunk {
        assert(base % chunk_bytes == 0);
        const c: *Chunk = @ptrFromInt(base);
        // Fresh anonymous memory is zero: only the non-zero fields are written,
        // so the header's untouched pages (run descriptors) cost no RSS yet.
        c.magic = chunk_magic;
        c.pool = pool;
        c.slot = slot;
        c.next = null;
        c.free_pages = usable_pages;
        setBits(&c.free_map, header_pages, usable_pages);
        return c;
    }

    pub inline fn fromAddress(address: usize) *Chunk {
        return @ptrFromInt(address & ~(chunk_bytes - 1));
    }

    pub inline fn pageIndex(c: *const Chunk, address: usize) usize {
        return (address - @intFromPtr(c)) >> size_class.page_shift;
    }

    pub inline fn pageIsFree(c: *const Chunk, page: usize) bool {
        return testBit(&c.free_map, page);
    }

    /// The run holding `address` if that page is in use, else null.
    pub inline fn runOf(c: *Chunk, address: usize) ?*Run {
        const page = c.pageIndex(address);
        if (page < header_pages or testBit(&c.free_map, page)) return null;
        return &c.runs[c.page_entries[page].owner];
    }

    /// First fit: `pages` free pages starting at a multiple of `align_pages`.
    /// Returns the run's descriptor (kind still .unused), or null if none fits.
    pub fn allocRun(c: *Chunk, pages: usize, align_pages: usize) ?*Run {
        return c.allocRunFrom(pages, align_pages, .any);
    }

    /// `allocRun`, but only a run that starts at a dirty page (resident, free): taking those
    /// first keeps a pool's resident pages down while it holds dirty ones (pool.zig).
    pub fn allocRunOnDirty(c: *Chunk, pages: usize, align_pages: usize) ?*Run {
        return c.allocRunFrom(pages, align_pages, .dirty);
    }

    fn allocRunFrom(c: *Chunk, pages: usize, align_pages: usize, comptime first_page: enum { any, dirty }) ?*Run {
        assert(pages > 0 and pages <= usable_pages and std.math.isPowerOfTwo(align_pages));
        if (c.free_pages < pages) return null;
        const starts = switch (first_page) {
            .any => &c.free_map,
            .dirty => &c.dirty_map, // dirty pages are free pages
        };
        var start: usize = header_pages;
        while (true) {
            // Skip to the next candidate first page, then check the whole span is free.
            const free_page = firstSet(starts, start, pages_per_chunk) orelse return null;
            start = std.mem.alignForward(usize, free_page, align_pages);
            if (start + pages > pages_per_chunk) return null;
            if (firstClear(&c.free_map, start, start + pages)) |busy| {
                start = busy + 1;
                continue;
            }
            clearBits(&c.free_map, start, pages);
            c.free_pages -= @intCast(pages);
            for (c.page_entries[start .. start + pages]) |*entry| entry.owner = @intCast(start);
            const run = &c.runs[start];
            run.* = .{ .pages = @intCast(pages) };
            return run;
        }
    }

    /// Marks a run's pages as a slab of `class` (or clears the mark: null).
    pub fn markSlab(c: *Chunk, run: *Run, class: ?size_class.ClassIndex) void {
        const start = c.runStart(run);
        const value: size_class.Key = if (class) |k| size_class.keyOf(k) else 0;
        for (c.page_entries[start .. start + run.pages]) |*entry| entry.key = value;
    }

    /// Returns a run's pages to the chunk; they stay resident (dirty) until purged.
    /// Returns how many of them were clean before (newly dirty).
    pub fn freeRun(c: *Chunk, run: *Run) usize {
        const start = c.runStart(run);
        const pages: usize = run.pages;
        assert(start >= header_pages and pages > 0 and start + pages <= pages_per_chunk);
        assert(firstSet(&c.free_map, start, start + pages) == null);
        for (c.page_entries[start .. start + pages]) |*entry| entry.key = 0;
        run.* = .{};
        setBits(&c.free_map, start, pages);
        const newly_dirty = pages - countBits(&c.dirty_map, start, pages);
        setBits(&c.dirty_map, start, pages);
        c.free_pages += @intCast(pages);
        assert(c.free_pages <= usable_pages);
        return newly_dirty;
    }

    /// Copies which pages of `run` (not taken yet) are dirty into `out`: bit
    /// i for the run's page i. The others are clean: never touched since the
    /// chunk was mapped, or purged since — zero, in an anonymous mapping.
    pub fn dirtyPagesOf(c: *const Chunk, run: *const Run, out: []u64) void {
        const start = c.runStart(run);
        assert(run.pages <= out.len * 64);
        @memset(out, 0);
        for (0..run.pages) |i| {
            if (testBit(&c.dirty_map, start + i)) out[i >> 6] |= @as(u64, 1) << @intCast(i & 63);
        }
    }

    /// How many of the chunk's pages are dirty (free and still resident).
    pub fn dirtyPages(c: *const Chunk) usize {
        return countBits(&c.dirty_map, 0, pages_per_chunk);
    }

    /// Marks pages of a run being handed out as in use (no longer dirty-free).
    pub fn takeDirty(c: *Chunk, run: *Run) usize {
        const start = c.runStart(run);
        const n = countBits(&c.dirty_map, start, run.pages);
        assert(n <= run.pages);
        clearBits(&c.dirty_map, start, run.pages);
        clearBits(&c.old_dirty_map, start, run.pages);
        return n;
    }

    /// A decay tick: purges the pages that were dirty at the previous tick
    /// and still are (free for a whole interval), then remembers the pages
    /// dirty now. Pages freed and reused between ticks are never purged.
    /// Returns pages purged.
    pub fn purgeOld(c: *Chunk) usize {
        var old = c.old_dirty_map;
        for (&old, c.dirty_map) |*o, dirty| o.* &= dirty;
        const purged = c.purgeMarked(&old);
        c.old_dirty_map = c.dirty_map;
        return purged;
    }

    /// madvise(DONTNEED) every free dirty page range; returns pages purged.
    pub fn purge(c: *Chunk) usize {
        var all = c.dirty_map;
        const purged = c.purgeMarked(&all);
        c.old_dirty_map = @splat(0);
        return purged;
    }

    /// `purge`, except pages [start, start + pages), which stay dirty (a run
    /// just freed, likely to be taken again at once), and ranges of fewer than
    /// `min_range_pages` dirty pages (a page between two slabs, soon taken
    /// again by another: a system call and a page fault each, for 4 KiB).
    pub fn purgeExcept(c: *Chunk, start: usize, pages: usize, min_range_pages: usize) usize {
        var marked = c.dirty_map;
        clearBits(&marked, start, pages);
        const purged = c.purgeMarkedRanges(&marked, min_range_pages);
        for (&c.old_dirty_map, c.dirty_map) |*o, dirty| o.* &= dirty;
        return purged;
    }

    /// The page index of a run's first page (its descriptor's position).
    pub inline fn runStart(c: *const Chunk, run: *const Run) usize {
        return (@intFromPtr(run) - @intFromPtr(&c.runs)) / @sizeOf(Run);
    }

    /// Purges the (free, dirty) pages marked in `marked` and clears their
    /// dirty bits; returns how many.
    fn purgeMarked(c: *Chunk, marked: *const [map_words]u64) usize {
        return c.purgeMarkedRanges(marked, 1);
    }

    /// `purgeMarked` of the marked ranges of at least `min_range_pages` pages.
    fn purgeMarkedRanges(c: *Chunk, marked: *const [map_words]u64, min_range_pages: usize) usize {
        assert(min_range_pages >= 1);
        var purged: usize = 0;
        var page: usize = header_pages;
        while (page < pages_per_chunk) {
            const start = firstSet(marked, page, pages_per_chunk) orelse break;
            const end = firstClear(marked, start, pages_per_chunk) orelse pages_per_chunk;
            if (end - start < min_range_pages) {
                page = end;
                continue;
            }
            assert(firstClear(&c.free_map, start, end) == null);
            const addr = @intFromPtr(c) + start * page_bytes;
            _ = linux.madvise(@ptrFromInt(addr), (end - start) * page_bytes, linux.MADV.DONTNEED);
            clearBits(&c.dirty_map, start, end - start);
            purged += end - start;
            page = end;
        }
        return purged;
    }

    pub fn isEmpty(c: *const Chunk) bool {
        return c.free_pages == usable_pages;
    }
};

// ---- bitmaps over u64 words ------------------------------------------------

inline fn testBit(map: []const u64, i: usize) bool {
    return (map[i >> 6] >> @intCast(i & 63)) & 1 != 0;
}

fn setBits(map: []u64, start: usize, n: usize) void {
    for (start..start + n) |i| map[i >> 6] |= @as(u64, 1) << @intCast(i & 63);
}

fn clearBits(map: []u64, start: usize, n: usize) void {
    for (start..start + n) |i| map[i >> 6] &= ~(@as(u64, 1) << @intCast(i & 63));
}

fn countBits(map: []const u64, start: usize, n: usize) usize {
    var total: usize = 0;
    for (start..start + n) |i| total += @intFromBool(testBit(map, i));
    return total;
}

/// First index in [start, end) whose bit is clear, or null.
pub fn firstClear(map: []const u64, start: usize, end: usize) ?usize {
    var i = start;
    while (i < end) {
        const word = ~map[i >> 6] >> @intCast(i & 63);
        if (word != 0) {
            const found = i + @ctz(word);
            return if (found < end) found else null;
        }
        i = (i | 63) + 1;
    }
    return null;
}

/// First index in [start, end) whose bit is set, or null.
pub fn firstSet(map: []const u64, start: usize, end: usize) ?usize {
    var i = start;
    while (i < end) {
        const word = map[i >> 6] >> @intCast(i & 63);
        if (word != 0) {
            const found = i + @ctz(word);
            return if (found < end) found else null;
        }
        i = (i | 63) + 1;
    }
    return null;
}

fn testChunk() !*Chunk {
    const rc = linux.mmap(null, 2 * chunk_bytes, .{ .READ = true, .WRITE = true }, .{ .TYPE = .PRIVATE, .ANONYMOUS = true }, -1, 0);
    if (linux.errno(rc) != .SUCCESS) return error.OutOfMemory;
    return Chunk.init(std.mem.alignForward(usize, rc, chunk_bytes), @ptrFromInt(0x1000), 0);
}

test "a fresh chunk offers all pages after its header" {
    const c = try testChunk();
    try std.testing.expectEqual(Chunk.usable_pages, c.free_pages);
    const run = c.allocRun(Chunk.usable_pages, 1) orelse return error.TestUnexpectedResult;
    try std.testing.expectEqual(@intFromPtr(c) + Chunk.header_pages * page_bytes, run.base());
    try std.testing.expect(c.allocRun(1, 1) == null);
}

test "runs honour alignment and map every page back to their descriptor" {
    const c = try testChunk();
    const a = c.allocRun(3, 1).?;
    const b = c.allocRun(16, 16).?;
    try std.testing.expect(b.base() % (16 * page_bytes) == 0);
    try std.testing.expectEqual(a, c.runOf(a.base() + 2 * page_bytes + 5).?);
    try std.testing.expectEqual(b, c.runOf(b.base() + 15 * page_bytes).?);
    try std.testing.expect(c.runOf(@intFromPtr(c) + 8) == null); // header
}

test "purgeExcept keeps the given pages dirty and purges the others" {
    const c = try testChunk();
    const a = c.allocRun(4, 1).?;
    const b = c.allocRun(8, 1).?;
    const b_start = c.runStart(b);
    _ = c.freeRun(a);
    _ = c.freeRun(b);
    try std.testing.expectEqual(@as(usize, 4), c.purgeExcept(b_start, 8, 1));
    try std.testing.expectEqual(@as(usize, 8), countBits(&c.dirty_map, b_start, 8));
    try std.testing.expectEqual(@as(usize, 8), c.purge());
}

test "freed runs are reused first-fit and become dirty until purged" {
    const c = try testChunk();
    const a = c.allocRun(4, 1).?;
    const base = a.base();
    @as(*u8, @ptrFromInt(base)).* = 1;
    try std.testing.expectEqual(@as(usize, 4), c.freeRun(a));
    try std.testing.expect(c.runOf(base) == null);
    const again = c.allocRun(2, 1).?;
    try std.testing.expectEqual(base, again.base());
    try std.testing.expectEqual(@as(usize, 2), c.takeDirty(again));
    try std.testing.expectEqual(@as(usize, 2), c.purge());
    try std.testing.expectEqual(@as(usize, 0), c.purge());
}

test "allocRunOnDirty takes a run where dirty pages are, and none when they do not fit it" {
    const c = try testChunk();
    const low = c.allocRun(8, 1).?; // stays clean once freed: purged below
    const high = c.allocRun(8, 1).?;
    const high_base = high.base();
    _ = c.allocRun(4, 1).?; // keeps `high` from merging with the untouched pages after it
    _ = c.freeRun(low);
    try std.testing.expectEqual(@as(usize, 8), c.purge());
    _ = c.freeRun(high); // dirty
    try std.testing.expect(c.allocRunOnDirty(9, 1) == null);
    const again = c.allocRunOnDirty(6, 1).?;
    try std.testing.expectEqual(high_base, again.base());
    try std.testing.expectEqual(@as(usize, 6), c.takeDirty(again));
    // First fit alone would have taken the clean pages below.
    try std.testing.expect(c.allocRun(6, 1).?.base() < high_base);
}
