//! Huge blocks: allocations larger than a chunk's page runs allow (> 2 MiB,
//! or aligned to more than 1 MiB) get a mapping of their own.
//!
//! What: one granule-aligned mapping from the pool's source, placed with one
//! `Policy.apply` (so ≤ 1 mbind per ≥ 2 MiB: within 512 per GiB), starting
//! with one header page (this struct) and then the block, aligned as asked.
//! Every granule of the mapping is registered in page_map with the header's
//! address, so `free` finds the header from the block's address in O(1) and
//! can tell a foreign or interior pointer from the block's start.
//!
//! Freeing keeps an anonymous mapping, its pages and placement, in the pool's
//! cache for the next huge blocks (huge_cache.zig), which may also assemble
//! a block from several cached mappings moved side by side.
//!
//! Segments: a mapping assembled from moved pieces spans several VMAs (the
//! kernel does not merge separately faulted anonymous VMAs), and mremap moves
//! or grows one VMA at a time (a range over several only from Linux 6.17). So
//! each mapping lists its `segments`, ranges that each lie inside one VMA
//! (at most `max_segments`, which bounds the VMAs a block costs), and moves
//! segment by segment. The segments of all huge mappings are counted
//! (`segments_in_use`), and blocks are no longer assembled while they exceed a
//! quarter of the kernel's default limit of VMAs per process.
//!
//! Growing: an anonymous block grows with mremap (in place by its last
//! segment if the address space after it is free, else a one-segment block
//! moves to a new granule-aligned range): its pages move, none is copied, and
//! the VMA keeps its memory policy (the new tail is placed by one more
//! `Policy.apply` before first touch). A block of several segments that cannot
//! grow in place is copied by the caller: moving it piece by piece could fail
//! half way with the block torn. Shrinking to more than half keeps the mapping.
//!
//! Trade-off: one header page per huge block (4 KiB of RSS per ≥ 2 MiB, 0.2%)
//! buys the O(1) lookup without a separate metadata allocator; up to
//! `max_segments` VMAs per block buy reusing cached pages without merging them.
const std = @import("std");
const assert = std.debug.assert;
const linux = std.os.linux;
const page_map = @import("page_map.zig");
const chunk_source = @import("chunk_source.zig");
const report = @import("report.zig");
const pool_mod = @import("pool.zig");
const bulk_bytes = @import("bulk_bytes.zig");
const huge_cache = @import("huge_cache.zig");
pub const Cache = huge_cache.Cache;
pub const expireLocked = huge_cache.expireLocked;
pub const dropCacheLocked = huge_cache.dropCacheLocked;
pub const trimLocked = huge_cache.trimLocked;
const Pool = pool_mod.Pool;

const page_bytes = std.heap.page_size_min;
const huge_magic: u64 = 0x686d_6875_6765_3031; // "hmhuge01"
pub const cached_magic: u64 = 0x686d_6375_6765_3031; // "hmcuge01"

/// Most segments (ranges each inside one VMA) one huge mapping may have: see `Huge.segments`.
pub const max_segments = 32;
/// Segments of all live and cached huge mappings of all pools: each may be a VMA of its own.
/// Assembling stops while this is above `segments_budget`, a quarter of the kernel's default
/// `vm.max_map_count` (65530): a program with thousands of huge blocks would otherwise run out
/// of VMAs (mmap, mremap and mprotect fail with ENOMEM) where one mapping per block would not.
pub var segments_in_use: std.atomic.Value(usize) = .init(0);
pub const segments_budget: usize = 16384;

/// Books a change of `delta` segments to `segments_in_use`.
pub fn noteSegments(delta: isize) void {
    if (delta >= 0) {
        _ = segments_in_use.fetchAdd(@intCast(delta), .monotonic);
    } else {
        const old = segments_in_use.fetchSub(@intCast(-delta), .monotonic);
        assert(old >= @as(usize, @intCast(-delta)));
    }
}

pub const Huge = struct {
    magic: u64,
    pool: *Pool,
    map_base: usize,
    map_bytes: usize,
    /// The address handed to the user.
    user: usize,
    /// The block's size rounded up to pages (a reused mapping may hold more:
    /// reported as asked, so that malloc_usable_size and memtier's byte
    /// accounting see the same size at malloc and at free).
    usable_bytes: usize = 0,
    next: ?*Huge,
    prev: ?*Huge,
    /// When it entered the cache (monotonic ns).
    cached_ns: u64 = 0,
    /// Whether every byte after the header reads as zero (a fresh mapping).
    zero: bool = true,
    /// The mapping as ranges that each lie inside one VMA, by length in address order (their
    /// sum is `map_bytes`): one for a mapping made at once, more for one assembled from cached
    /// mappings (`takeAssembledLocked`). mremap moves and grows one VMA at a time, so a mapping
    /// moves segment by segment and grows in place by its last one.
    segments: [max_segments]usize = @splat(0),
    segment_count: u8 = 0,

    pub fn usableSize(h: *const Huge) usize {
        assert(h.user + h.usable_bytes <= h.map_base + h.map_bytes);
        return h.usable_bytes;
    }

    /// The mapping is one segment (made at once, or grown or moved whole).
    fn setOneSegment(h: *Huge) void {
        noteSegments(1 - @as(isize, h.segment_count));
        h.segments[0] = h.map_bytes;
        h.segment_count = 1;
    }

    /// Whether the segments cover the mapping exactly (assertions).
    pub fn segmentsCover(h: *const Huge) bool {
        var sum: usize = 0;
        for (h.segments[0..h.segment_count]) |len| sum += len;
        return h.segment_count >= 1 and h.segment_count <= max_segments and sum == h.map_bytes;
    }

    /// Cuts the segments at `offset` bytes into the mapping: `h` keeps those before it, `tail`
    /// (if any, a new header with no segments yet) gets those after. `h.map_bytes` is the
    /// caller's to set.
    pub fn cutSegments(h: *Huge, offset: usize, tail: ?*Huge) void {
        assert(offset > 0 and offset < h.map_bytes and h.segmentsCover());
        const before: isize = h.segment_count;
        defer noteSegments(@as(isize, h.segment_count) + @as(isize, if (tail) |t| t.segment_count else 0) - before);
        var start: usize = 0;
        var i: usize = 0;
        while (start + h.segments[i] <= offset) : (i += 1) start += h.segments[i];
        const cut = offset - start; // into segment i (0: offset is where it starts)
        if (tail) |t| {
            var k: usize = 0;
            if (cut > 0) {
                t.segments[0] = h.segments[i] - cut;
                k = 1;
            }
            for (h.segments[i + @intFromBool(cut > 0) .. h.segment_count]) |len| {
                t.segments[k] = len;
                k += 1;
            }
            t.segment_count = @intCast(k);
        }
        if (cut > 0) h.segments[i] = cut;
        h.segment_count = @intCast(i + @intFromBool(cut > 0));
    }
};

/// `size` (≥ 1) and `alignment` were checked against `request_max_bytes` by
/// the pool (Pool.allocPages, Pool.allocZeroed), so this arithmetic cannot wrap around.
pub fn alloc(pool: *Pool, size: usize, alignment: usize, zeroed: bool) ?[*]u8 {
    assert(size >= 1 and size <= pool_mod.request_max_bytes and alignment <= pool_mod.request_max_bytes);
    const user_offset = @max(page_bytes, alignment);
    const map_bytes = user_offset + std.mem.alignForward(usize, size, page_bytes);
    assert(map_bytes > user_offset); // the block ends inside its mapping
    // The block starts `user_offset` (= its alignment, when above a page) into
    // the mapping, so a mapping aligned to it aligns the block.
    const map_align = @max(chunk_source.granule_bytes, alignment);

    const h = blk: {
        pool.page_lock.lock();
        defer pool.page_lock.unlock();
        const now = pool_mod.monotonicNs();
        expireLocked(pool, now);
        if (huge_cache.takeCachedLocked(pool, map_bytes, map_align) orelse huge_cache.takeAssembledLocked(pool, map_bytes, map_align)) |cached| {
            page_map.register(cached.map_base, cached.map_bytes, cached.map_base | page_map.huge_tag) catch {
                unmapLocked(pool, cached);
                return report.fail(.NOMEM);
            };
            cached.magic = huge_magic;
            break :blk linkLocked(pool, cached, user_offset, now);
        }
        var e: linux.E = .SUCCESS;
        const base = chunk_source.mapAligned(&pool.source, &pool.policy, map_bytes, map_align, &e, &pool.stats.mbind_calls) catch return report.fail(e);
        page_map.register(base, map_bytes, base | page_map.huge_tag) catch {
            chunk_source.unmap(&pool.source, base, map_bytes);
            return report.fail(.NOMEM);
        };
        // The header page is placed like the rest: it is part of the mapping.
        const fresh = headerAt(pool, base, map_bytes);
        fresh.setOneSegment();
        _ = pool.stats.huge_bytes.fetchAdd(map_bytes, .monotonic);
        const linked = linkLocked(pool, fresh, user_offset, now);
        huge_cache.trimLocked(pool);
        break :blk linked;
    };
    h.usable_bytes = std.mem.alignForward(usize, size, page_bytes);
    assert(h.user % alignment == 0 and h.usableSize() >= size);
    // A reused mapping holds its last block's data (outside the lock: it is ours now).
    if (zeroed and !h.zero) bulk_bytes.zero(@as([*]u8, @ptrFromInt(h.user))[0..size]);
    h.zero = false;
    return @ptrFromInt(h.user);
}

/// Writes the header of a fresh mapping of `bytes` at `base` (its first page, zero and ours)
/// and returns it: not linked, no segments yet.
pub fn headerAt(pool: *Pool, base: usize, bytes: usize) *Huge {
    const h: *Huge = @ptrFromInt(base);
    h.* = .{
        .magic = huge_magic,
        .pool = pool,
        .map_base = base,
        .map_bytes = bytes,
        .user = 0,
        .next = null,
        .prev = null,
    };
    return h;
}

fn linkLocked(pool: *Pool, h: *Huge, user_offset: usize, now: u64) *Huge {
    pool.page_lock.assertHeld();
    pool.huge_cache.notePeak(pool.stats.huge_bytes.load(.monotonic) - pool.huge_cache.bytes, now);
    h.user = h.map_base + user_offset;
    h.next = pool.huge_list;
    h.prev = null;
    if (pool.huge_list) |head| head.prev = h;
    pool.huge_list = h;
    return h;
}

fn unlinkLocked(pool: *Pool, h: *Huge) void {
    pool.page_lock.assertHeld();
    if (h.prev) |p| p.next = h.next else pool.huge_list = h.next;
    if (h.next) |n| n.prev = h.prev;
}

/// Whether the pool's huge mappings may grow with mremap: anonymous memory
/// (a file tier's offsets would not follow), and a policy the VMA carries
/// to its new pages (not the weighted-interleave emulation's stripes).
pub fn growable(pool: *Pool) bool {
    return pool.source == .anonymous and pool.policy.mode != .weighted_interleave;
}

/// Places a mapping's new, untouched tail by the pool's policy.
fn placeTailLocked(pool: *Pool, base: usize, bytes: usize) void {
    pool.page_lock.assertHeld();
    var calls: usize = 0;
    _ = pool.policy.applyCounted(base, bytes, &calls);
    _ = pool.stats.mbind_calls.fetchAdd(calls, .monotonic);
}

pub fn free(h: *Huge) void {
    const pool = h.pool;
    const detached = blk: {
        pool.page_lock.lock();
        defer pool.page_lock.unlock();
        assert(h.magic == huge_magic and h.pool == pool);
        unlinkLocked(pool, h);
        page_map.unregister(h.map_base, h.map_bytes);
        const now = pool_mod.monotonicNs();
        expireLocked(pool, now);
        break :blk huge_cache.cacheOrDetachLocked(pool, h, now) orelse return;
    };
    releaseDetached(pool, detached);
}

pub fn unmapLocked(pool: *Pool, h: *Huge) void {
    const d = detachLocked(pool, h); // first: the header is in the mapping
    chunk_source.unmap(&pool.source, d.base, d.bytes);
}

/// A huge mapping no longer counted as the pool's, whose range `releaseDetached` unmaps.
pub const Detached = struct { base: usize, bytes: usize };

/// Stops counting `h` as the pool's mapping (statistics, segments) and returns its range:
/// the header (in the mapping) is not read again.
pub fn detachLocked(pool: *Pool, h: *Huge) Detached {
    pool.page_lock.assertHeld();
    noteSegments(-@as(isize, h.segment_count));
    _ = pool.stats.huge_bytes.fetchSub(h.map_bytes, .monotonic);
    return .{ .base = h.map_base, .bytes = h.map_bytes };
}

/// Gives a file tier's detached mapping back, its pages taken out of the file outside the page
/// lock: MADV_REMOVE of 2.4-4.9 MiB took 1.4 ms a call on tmpfs, while mimalloc's test-stress
/// (32 threads on 2 cores) queued on the lock: 79k futex calls a run, 18k with one tier.
pub fn releaseDetached(pool: *Pool, d: Detached) void {
    pool.page_lock.assertNotHeld();
    chunk_source.removeFilePages(&pool.source, d.base, d.bytes);
    pool.page_lock.lock();
    defer pool.page_lock.unlock();
    chunk_source.finishFileUnmap(&pool.source, d.base, d.bytes);
}

/// Unlinks and unmaps `h` (no cache: the pool goes away). Page lock held.
pub fn releaseLocked(pool: *Pool, h: *Huge) void {
    pool.page_lock.assertHeld();
    assert(h.magic == huge_magic and h.pool == pool);
    unlinkLocked(pool, h);
    page_map.unregister(h.map_base, h.map_bytes);
    unmapLocked(pool, h);
}

/// Whether a realloc to `size` can keep the block where it is: it fits, and
/// does not waste more than half of the mapping.
pub fn resize(h: *Huge, size: usize) bool {
    const usable = h.usableSize();
    return size <= usable and size > usable / 2 and size > pool_mod.large_max_bytes;
}

/// Grows an anonymous huge block to hold `size` bytes with mremap, keeping
/// its contents and placement without a copy; null when it cannot (a file
/// tier, a weighted-interleave emulation, no address space): the caller copies.
pub fn grow(h: *Huge, size: usize) ?[*]u8 {
    const pool = h.pool;
    if (!growable(pool)) return null;
    const user_offset = h.user - h.map_base;
    const body = std.math.add(usize, size, page_bytes - 1) catch return null;
    const want = std.math.add(usize, user_offset, body & ~(page_bytes - 1)) catch return null;
    if (want > (@as(usize, 1) << 46)) return null;
    if (want <= h.map_bytes) {
        // A reused mapping that already has the room.
        h.usable_bytes = std.mem.alignForward(usize, size, page_bytes);
        return @ptrFromInt(h.user);
    }
    const map_align = @max(chunk_source.granule_bytes, user_offset);

    pool.page_lock.lock();
    defer pool.page_lock.unlock();
    assert(h.magic == huge_magic);
    assert(h.segmentsCover());
    const old_base = h.map_base;
    const old_bytes = h.map_bytes;
    var base = old_base;
    // In place, the last segment grows (the whole mapping, when it is one).
    const last = h.segment_count - 1;
    const last_bytes = h.segments[last];
    const last_base = old_base + old_bytes - last_bytes;
    const in_place = linux.mremap(@ptrFromInt(last_base), last_bytes, last_bytes + (want - old_bytes), .{}, null);
    if (linux.errno(in_place) == .SUCCESS) {
        // Register the granules the mapping grew into (the others are).
        const old_end = std.mem.alignForward(usize, old_base + old_bytes, chunk_source.granule_bytes);
        if (old_base + want > old_end) page_map.register(old_end, old_base + want - old_end, old_base | page_map.huge_tag) catch {
            _ = linux.mremap(@ptrFromInt(last_base), last_bytes + (want - old_bytes), last_bytes, .{}, null); // shrinking stays in place
            return null;
        };
        h.segments[last] += want - old_bytes;
    } else if (h.segment_count > 1) {
        // Moving segment by segment could fail half way with the block torn: the caller copies.
        return null;
    } else {
        var e: linux.E = .SUCCESS;
        const target = chunk_source.reserveAddressSpace(want, map_align, &e) catch return null;
        page_map.register(target, want, target | page_map.huge_tag) catch {
            _ = linux.munmap(@ptrFromInt(target), want);
            return null;
        };
        const moved = linux.mremap(@ptrFromInt(old_base), old_bytes, want, .{ .MAYMOVE = true, .FIXED = true }, @ptrFromInt(target));
        if (linux.errno(moved) != .SUCCESS) {
            page_map.unregister(target, want);
            _ = linux.munmap(@ptrFromInt(target), want);
            return null;
        }
        assert(moved == target);
        page_map.unregister(old_base, old_bytes);
        base = target;
    }
    // The tail is not touched yet: placed like the rest before first use.
    placeTailLocked(pool, base + old_bytes, want - old_bytes);
    const moved_h: *Huge = @ptrFromInt(base);
    if (base != old_base) {
        // The header moved with its page: fix the list's links to it.
        if (moved_h.prev) |p| p.next = moved_h else pool.huge_list = moved_h;
        if (moved_h.next) |n| n.prev = moved_h;
    }
    moved_h.map_base = base;
    moved_h.map_bytes = want;
    if (base != old_base) moved_h.setOneSegment();
    assert(moved_h.segmentsCover());
    moved_h.user = base + user_offset;
    moved_h.usable_bytes = body & ~(page_bytes - 1);
    _ = pool.stats.huge_bytes.fetchAdd(want - old_bytes, .monotonic);
    return @ptrFromInt(moved_h.user);
}
