//! The huge blocks' cache: the freed anonymous mappings a pool keeps, with
//! their pages and placement, for its next huge blocks (huge.zig).
//!
//! What: freeing keeps a mapping in the pool's `Cache` when it is small against
//! the pool's live huge bytes (at most `cache_slots` mappings and
//! max(`cache_min_bytes`, live / 2, the room under the recent peak of the live
//! bytes) bytes, rechecked whenever a fresh mapping is made): it is unregistered from page_map
//! (a stale pointer is "not allocated" again), but keeps its pages and its
//! placement. The next huge block takes, in this order:
//! - the smallest cached mapping that holds it (up to 1/4 too big whole; a
//!   bigger one is split at a granule boundary: its head serves the block, its
//!   tail stays cached);
//! - else cached mappings moved side by side with mremap (`takeAssembledLocked`):
//!   the biggest that fit together, then the head of one bigger than the gap
//!   they leave, else a fresh mapping's pages for the rest;
//! - else a fresh mapping.
//! Moved pages are neither copied nor faulted again, so a program cycling
//! blocks of random sizes (mimalloc-bench's malloc-large: 93% system time
//! with a mapping per block) faults in little more than its peak. A cached
//! mapping belongs to its pool, whose policy its VMAs already carry: it is
//! never handed to another pool. Cached mappings older than `cache_decay_ns`
//! are unmapped at the pool's next huge operation or decay tick, and a block
//! bigger than the cap (a program freeing its one 1 GiB buffer) is unmapped at
//! once. A file-backed (FS_DAX) tier's mappings are never cached: their pages
//! are tier capacity the user capped, and a freed block's bytes go back to the
//! file at once. (Tried: caching them, split to size, within the floor and
//! given back before the file would refuse a request. mstress at 32 threads
//! with two tiers went from 1.5M faults / 13.1 s to 0.93-1.06M / 11-12.4 s,
//! but the stress tests' two-tier RSS after freeing everything went from 20-32
//! to 40-52 MiB, over their bound, and malloc-large's peak from 438 to 443-552
//! MiB: a mapping that cannot move waits, resident, for a block of its size.)
//! The floor of 10 MiB bounds what a program that freed everything still holds.
//!
//! Why: without a cache, malloc-large (blocks of 5-25 MiB, 20 live) spent
//! 93% of its time in the kernel mapping, placing, faulting and unmapping;
//! with a cache of whole mappings alone, whenever no cached mapping was big
//! enough a new tail was faulted in and the cache, over its cap, unmapped as
//! many pages as came in (570k faults against tcmalloc's 185k).
//!
//! Trade-off: up to half the live huge bytes, or the room under their peak of
//! the last one to two seconds (up to 1 GiB; none once the pool is shrinking),
//! stay resident for up to a second after their blocks are freed, and per
//! pool: blocks that move between two tiers' pools can have both pools near
//! their peaks' room at once; an assembled block costs one mremap per
//! segment and up to `huge.max_segments` VMAs, where an allocator with one
//! reserved range per pool (jemalloc's extents, tcmalloc's page heap) would
//! merge neighbours for free, but would need the pool's policy applied to
//! address space it does not use yet.
const std = @import("std");
const assert = std.debug.assert;
const linux = std.os.linux;
const chunk_source = @import("chunk_source.zig");
const pool_mod = @import("pool.zig");
const huge = @import("huge.zig");
const Pool = pool_mod.Pool;
const Huge = huge.Huge;
const cached_magic = huge.cached_magic;
const max_segments = huge.max_segments;
const growable = huge.growable;
const unmapLocked = huge.unmapLocked;
const page_bytes = std.heap.page_size_min;

/// Mappings a pool keeps after their blocks are freed. With 16, mstress at 32 threads (blocks of
/// 2.4 and 4.9 MiB freed by many threads) evicted 817 mappings per run from a full cache, 86 so.
pub const cache_slots = 32;
comptime {
    assert(cache_slots <= 32); // takeAssembledLocked's mask
}
/// Bytes of cached mappings a pool may always keep; more when half of its live huge bytes, or
/// the room under their recent peak, is more (`cacheCapLocked`).
pub const cache_min_bytes: usize = 10 * 1024 * 1024;
/// The most the room under the recent peak lets the cache keep (the pools' dirty pages have
/// the same bound, pool.zig's `dirty_room_max_pages`).
pub const cache_room_max_bytes: usize = 1024 * 1024 * 1024;
/// A cached mapping unused this long is unmapped.
pub const cache_decay_ns: u64 = 1_000_000_000;
/// A cached mapping cut to fill an assembled mapping's gap keeps its tail cached only when the
/// tail is at least this big; else it joins whole.
const assembly_tail_min_bytes: usize = 1024 * 1024;

/// A pool's freed huge mappings, kept for reuse (guarded by its page lock).
pub const Cache = struct {
    entries: [cache_slots]?*Huge = @splat(null),
    bytes: usize = 0,
    /// The most live huge bytes (the cache's not counted) since `peak_since_ns`, and over the
    /// interval of `cache_decay_ns` before it: the recent peak the cap leaves room under.
    peak_live_bytes: usize = 0,
    previous_peak_live_bytes: usize = 0,
    peak_since_ns: u64 = 0,

    /// Notes `live` bytes of live huge blocks at `now` (after an allocation).
    pub fn notePeak(cache: *Cache, live: usize, now: u64) void {
        if (now -% cache.peak_since_ns >= cache_decay_ns) {
            cache.previous_peak_live_bytes = cache.peak_live_bytes;
            cache.peak_live_bytes = 0;
            cache.peak_since_ns = now;
        }
        cache.peak_live_bytes = @max(cache.peak_live_bytes, live);
    }

    /// Removes the mapping in slot `i` from the cache and returns it.
    fn take(cache: *Cache, i: usize) *Huge {
        const h = cache.entries[i].?;
        cache.entries[i] = null;
        cache.bytes -= h.map_bytes;
        return h;
    }

    /// The slot of the mapping cached longest ago, null when the cache is empty.
    fn oldest(cache: *const Cache) ?usize {
        var found: ?usize = null;
        for (cache.entries, 0..) |entry, i| {
            const e = entry orelse continue;
            if (found == null or e.cached_ns < cache.entries[found.?].?.cached_ns) found = i;
        }
        return found;
    }
};

/// Writes the header of a cached mapping of `bytes` at `base` (its first page, already ours),
/// whose contents are not known to be zero, and returns it. Its segments are the caller's to set.
fn cachedHeaderAt(pool: *Pool, base: usize, bytes: usize, cached_ns: u64) *Huge {
    const h = huge.headerAt(pool, base, bytes);
    h.magic = cached_magic;
    h.cached_ns = cached_ns;
    h.zero = false;
    return h;
}

/// The smallest cached mapping that holds `map_bytes` at `map_align`,
/// removed from the cache (only anonymous mappings are cached). One that is more
/// than a quarter too big is split at the first granule boundary after the
/// request: the head serves it, and a tail of at least a granule stays cached as
/// a mapping of its own, its pages kept (a smaller tail is unmapped).
pub fn takeCachedLocked(pool: *Pool, map_bytes: usize, map_align: usize) ?*Huge {
    pool.page_lock.assertHeld();
    const cache = &pool.huge_cache;
    var best: ?usize = null;
    for (cache.entries, 0..) |entry, i| {
        const e = entry orelse continue;
        if (e.map_bytes < map_bytes or e.map_base % map_align != 0) continue;
        if (best == null or e.map_bytes < cache.entries[best.?].?.map_bytes) best = i;
    }
    const i = best orelse return null;
    const h = cache.take(i);
    assert(h.magic == cached_magic and h.pool == pool and pool.source == .anonymous);
    if (h.map_bytes - map_bytes > h.map_bytes / 4) {
        const split = std.mem.alignForward(usize, h.map_base + map_bytes, chunk_source.granule_bytes);
        const end = h.map_base + h.map_bytes;
        if (end >= split + chunk_source.granule_bytes) {
            // The slot `h` left holds the tail: the cache's bytes lose only the head's.
            const tail = splitCached(pool, h, split - h.map_base);
            cache.entries[i] = tail;
            cache.bytes += tail.map_bytes;
            trimCacheLocked(pool, cacheCapLocked(pool, 0));
        } else {
            _ = linux.munmap(@ptrFromInt(h.map_base + map_bytes), h.map_bytes - map_bytes);
            _ = pool.stats.huge_bytes.fetchSub(h.map_bytes - map_bytes, .monotonic);
            h.cutSegments(map_bytes, null);
            h.map_bytes = map_bytes;
            assert(h.segmentsCover());
        }
        assert(h.map_bytes >= map_bytes);
    }
    return h;
}

/// A mapping of `map_bytes` assembled from cached mappings that are each too small for it: the
/// biggest that fit together (biggest first), then the head of the smallest one bigger than the
/// gap they leave (its tail stays cached), all moved side by side with mremap to a fresh range.
/// Their pages move, none is copied, zeroed or faulted again; if nothing fills the gap, a fresh
/// mapping under them supplies the rest. Without this, a program cycling blocks of random sizes
/// (malloc-large: 5-25 MiB) faulted in a new tail whenever no one cached mapping was big
/// enough, and the cache, over its cap, unmapped as many pages as came in. Null, the cache as it
/// was, when nothing fits, the pool's mappings cannot move (`growable`) or no address space is
/// left; a failed move (no VMA left) unmaps the pieces taken and gives null too.
pub fn takeAssembledLocked(pool: *Pool, map_bytes: usize, map_align: usize) ?*Huge {
    pool.page_lock.assertHeld();
    if (!growable(pool)) return null;
    if (huge.segments_in_use.load(.monotonic) + max_segments > huge.segments_budget) return null;
    const cache = &pool.huge_cache;
    var taken: u32 = 0; // bit i: entry i is a piece
    var pieces_bytes: usize = 0;
    var segment_count: usize = 0;
    while (true) {
        var best: ?usize = null;
        for (cache.entries, 0..) |entry, i| {
            const e = entry orelse continue;
            // One segment is kept for the gap.
            if ((taken >> @intCast(i)) & 1 != 0 or pieces_bytes + e.map_bytes > map_bytes or segment_count + e.segment_count >= max_segments) continue;
            if (best == null or e.map_bytes > cache.entries[best.?].?.map_bytes) best = i;
        }
        const i = best orelse break;
        taken |= @as(u32, 1) << @intCast(i);
        pieces_bytes += cache.entries[i].?.map_bytes;
        segment_count += cache.entries[i].?.segment_count;
    }
    const gap = map_bytes - pieces_bytes;
    var filler: ?usize = null;
    if (gap > 0) {
        for (cache.entries, 0..) |entry, i| {
            const e = entry orelse continue;
            if ((taken >> @intCast(i)) & 1 != 0 or e.map_bytes <= gap or segment_count + e.segment_count > max_segments) continue;
            if (filler == null or e.map_bytes < cache.entries[filler.?].?.map_bytes) filler = i;
        }
    }
    if (taken == 0 and filler == null) return null;
    // The filler's head: the gap in whole pages, or all of it when its tail would be too small to keep.
    var head_bytes: usize = 0;
    if (filler) |i| {
        head_bytes = std.mem.alignForward(usize, gap, page_bytes);
        if (cache.entries[i].?.map_bytes - head_bytes < assembly_tail_min_bytes) head_bytes = cache.entries[i].?.map_bytes;
    }
    const moved_bytes = pieces_bytes + head_bytes;
    const total = @max(map_bytes, moved_bytes);
    var e: linux.E = .SUCCESS;
    const base = (if (moved_bytes < total)
        chunk_source.mapAligned(&pool.source, &pool.policy, total, map_align, &e, &pool.stats.mbind_calls)
    else
        chunk_source.reserveAddressSpace(total, map_align, &e)) catch return null;
    // From here the pieces are out of the cache (the filler's tail stays in its slot).
    var pieces: [cache_slots]*Huge = undefined;
    var piece_count: usize = 0;
    for (0..cache_slots) |i| {
        if ((taken >> @intCast(i)) & 1 == 0) continue;
        pieces[piece_count] = cache.take(i);
        piece_count += 1;
    }
    if (filler) |i| {
        const whole = cache.take(i);
        if (head_bytes < whole.map_bytes) {
            // The slot keeps the tail, as in takeCachedLocked.
            const tail = splitCached(pool, whole, head_bytes);
            cache.entries[i] = tail;
            cache.bytes += tail.map_bytes;
        }
        pieces[piece_count] = whole;
        piece_count += 1;
    }
    var lengths: [max_segments]usize = undefined;
    var count: usize = 0;
    var offset: usize = 0;
    var failed = false;
    for (pieces[0..piece_count]) |piece| {
        assert(piece.magic == cached_magic and piece.pool == pool and piece.segmentsCover());
        const from = piece.map_base;
        const piece_bytes = piece.map_bytes;
        const n = piece.segment_count;
        // Copied out first: the header moves with the first segment.
        @memcpy(lengths[count..][0..n], piece.segments[0..n]);
        const moved = if (failed) 0 else moveSegments(from, lengths[count..][0..n], base + offset);
        if (moved < piece_bytes) {
            // What did not move is unmapped where it is (the moved part goes with `base` below).
            failed = true;
            _ = linux.munmap(@ptrFromInt(from + moved), piece_bytes - moved);
        }
        count += n;
        offset += piece_bytes;
    }
    assert(offset == moved_bytes and count <= max_segments);
    if (failed) {
        _ = linux.munmap(@ptrFromInt(base), total);
        _ = pool.stats.huge_bytes.fetchSub(moved_bytes, .monotonic);
        huge.noteSegments(-@as(isize, @intCast(count)));
        return null;
    }
    if (moved_bytes < total) {
        lengths[count] = total - moved_bytes;
        count += 1;
    }
    // The first piece's header page is the mapping's first page now.
    const h = cachedHeaderAt(pool, base, total, 0);
    h.segment_count = @intCast(count);
    @memcpy(h.segments[0..count], lengths[0..count]);
    assert(h.segmentsCover() and h.map_bytes >= map_bytes);
    // The pieces' segments were booked (`count` of them before the fresh rest's).
    if (moved_bytes < total) huge.noteSegments(1);
    _ = pool.stats.huge_bytes.fetchAdd(total - moved_bytes, .monotonic);
    return h;
}

/// Splits the cached mapping `h` at `offset` bytes into it: `h` keeps the head, and the tail,
/// returned, gets a header of its own in its first page (its pages and placement kept).
fn splitCached(pool: *Pool, h: *Huge, offset: usize) *Huge {
    pool.page_lock.assertHeld();
    assert(offset % page_bytes == 0 and offset > 0 and offset < h.map_bytes);
    const tail = cachedHeaderAt(pool, h.map_base + offset, h.map_bytes - offset, h.cached_ns);
    h.cutSegments(offset, tail);
    h.map_bytes = offset;
    assert(h.segmentsCover() and tail.segmentsCover());
    return tail;
}

/// Moves the segments of `lengths`, which lie side by side from `from`, to the same places from
/// `to` (mremap: the pages move, page tables only). Returns the bytes moved: all of them, or
/// those before the segment that failed to move (it and those after stay where they were).
fn moveSegments(from: usize, lengths: []const usize, to: usize) usize {
    var offset: usize = 0;
    for (lengths) |len| {
        const rc = linux.mremap(@ptrFromInt(from + offset), len, len, .{ .MAYMOVE = true, .FIXED = true }, @ptrFromInt(to + offset));
        if (linux.errno(rc) != .SUCCESS) return offset;
        assert(rc == to + offset);
        offset += len;
    }
    return offset;
}

/// Puts `h` (unlinked, unregistered) into the cache, evicting the oldest
/// mappings to make room, or unmaps it when it is bigger than the cap; a file tier's mapping
/// is detached instead, its range returned for the caller to give back once it released the
/// page lock (huge.releaseDetached).
pub fn cacheOrDetachLocked(pool: *Pool, h: *Huge, now: u64) ?huge.Detached {
    pool.page_lock.assertHeld();
    // A file tier's pages are capacity the user capped (PMEM_SIZE_LIMIT): never held back.
    if (pool.source != .anonymous) return huge.detachLocked(pool, h);
    const cache = &pool.huge_cache;
    const cap = cacheCapLocked(pool, h.map_bytes);
    if (h.map_bytes > cap) {
        unmapLocked(pool, h);
        trimCacheLocked(pool, cap);
        return null;
    }
    while (true) {
        if (std.mem.indexOfScalar(?*Huge, &cache.entries, null)) |free_slot| {
            if (cache.bytes + h.map_bytes <= cap) {
                h.magic = cached_magic;
                h.cached_ns = now;
                cache.entries[free_slot] = h;
                cache.bytes += h.map_bytes;
                return null;
            }
        }
        // No slot, or bytes over the cap with h alone within it: not empty.
        unmapLocked(pool, cache.take(cache.oldest().?));
    }
}

/// What the cache may hold: the most of `cache_min_bytes`, half the live huge bytes and the
/// room under their recent peak (at most `cache_room_max_bytes`), the live bytes counted
/// without the cache and without `leaving_bytes` (a mapping being freed). The room is what a
/// program cycling huge blocks takes again: mimalloc's test-stress (32 threads, 2.4 and 4.9 MiB
/// blocks among small ones) mapped 1,650 huge blocks anew per run with half the live bytes
/// alone as the cap, and the cache evicted 1,588 (each mapped, placed and faulted again).
fn cacheCapLocked(pool: *Pool, leaving_bytes: usize) usize {
    pool.page_lock.assertHeld();
    const cache = &pool.huge_cache;
    const live = pool.stats.huge_bytes.load(.monotonic) - cache.bytes - leaving_bytes;
    const peak = @max(cache.peak_live_bytes, cache.previous_peak_live_bytes);
    // A shrinking pool (pool.zig: its pages in use long below their peak) keeps no room.
    const room = if (pool.shrinking) 0 else @min(peak -| live, cache_room_max_bytes);
    return @max(cache_min_bytes, live / 2, room);
}

/// Unmaps the oldest cached mappings beyond the cap in force: called when the pool starts
/// shrinking, so that the room under an old peak goes back with its pages, and when a huge
/// block was mapped anew (the live bytes grew, and no cached mapping served them).
pub fn trimLocked(pool: *Pool) void {
    trimCacheLocked(pool, cacheCapLocked(pool, 0));
}

/// Unmaps the oldest cached mappings until the cache holds at most `cap` bytes.
fn trimCacheLocked(pool: *Pool, cap: usize) void {
    pool.page_lock.assertHeld();
    const cache = &pool.huge_cache;
    while (cache.bytes > cap) unmapLocked(pool, cache.take(cache.oldest().?)); // bytes > 0: not empty
}

/// Unmaps the cached mappings older than `cache_decay_ns`. Page lock held.
pub fn expireLocked(pool: *Pool, now: u64) void {
    pool.page_lock.assertHeld();
    const cache = &pool.huge_cache;
    if (cache.bytes == 0) return;
    for (cache.entries, 0..) |entry, i| {
        const e = entry orelse continue;
        if (now -% e.cached_ns >= cache_decay_ns) unmapLocked(pool, cache.take(i));
    }
}

/// Unmaps every cached mapping (pool teardown). Page lock held.
pub fn dropCacheLocked(pool: *Pool) void {
    pool.page_lock.assertHeld();
    for (&pool.huge_cache.entries) |*entry| {
        const e = entry.* orelse continue;
        entry.* = null;
        unmapLocked(pool, e);
    }
    pool.huge_cache.bytes = 0;
}
