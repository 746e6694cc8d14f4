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
//! Freeing keeps an anonymous mapping in the pool's `Cache` when it is small against
//! the pool's live huge bytes (at most `cache_slots` mappings and
//! max(`cache_min_bytes`, live / 2) bytes): it is unregistered from page_map
//! (a stale pointer is "not allocated" again), but keeps its pages and its
//! placement, so the next huge block of about its size (up to 1/4 smaller)
//! costs no mmap, mbind, munmap or page faults (mimalloc-bench's malloc-large
//! did all four per block: 93% system time). A bigger cached mapping is split
//! at a granule boundary: its head serves the block, its tail stays cached. A cached mapping belongs to its
//! pool, whose policy it already has: it is never handed to another pool.
//! Cached mappings older than `cache_decay_ns` are unmapped at the pool's
//! next huge operation or decay tick, and a block bigger than the cap (a
//! program freeing its one 1 GiB buffer) is unmapped at once. File-backed
//! (FS_DAX) mappings are never cached: their pages are tier capacity that the
//! user capped, and a freed block's bytes go back to the file at once. The
//! floor of 10 MiB bounds what a program that freed everything still holds.
//!
//! Growing: an anonymous block grows with mremap (in place if the address
//! space after it is free, else moved to a new granule-aligned range): its
//! pages move, none is copied, and the VMA keeps its memory policy (the new
//! tail is placed by one more `Policy.apply` before first touch). Shrinking
//! to more than half keeps the mapping.
//!
//! Trade-off: one header page per huge block (4 KiB of RSS per ≥ 2 MiB, 0.2%)
//! buys the O(1) lookup without a separate metadata allocator; the cache
//! holds up to half the live huge bytes resident for up to a second
//! (malloc-large: 2x fewer page faults than without the split; half rather
//! than a quarter of the live bytes in 16 slots rather than 8: 850k -> 570k
//! faults, 3.2 -> 2.6 s, max RSS 480 -> 543 MiB against glibc's 534;
//! figures in bench/README.md). The cache does not merge mappings: two
//! separately faulted anonymous mappings are two VMAs, which mremap can only
//! move together from Linux 6.17 on.
const std = @import("std");
const assert = std.debug.assert;
const linux = std.os.linux;
const page_map = @import("page_map.zig");
const chunk_source = @import("chunk_source.zig");
const report = @import("report.zig");
const pool_mod = @import("pool.zig");
const bulk_bytes = @import("bulk_bytes.zig");
const Pool = pool_mod.Pool;

const page_bytes = std.heap.page_size_min;
const huge_magic: u64 = 0x686d_6875_6765_3031; // "hmhuge01"
const cached_magic: u64 = 0x686d_6375_6765_3031; // "hmcuge01"

/// Mappings a pool keeps after their blocks are freed.
pub const cache_slots = 16;
/// Bytes of cached mappings a pool may always keep; more when half of
/// its live huge bytes is more.
pub const cache_min_bytes: usize = 10 * 1024 * 1024;
/// A cached mapping unused this long is unmapped.
pub const cache_decay_ns: u64 = 1_000_000_000;

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

    pub fn usableSize(h: *const Huge) usize {
        assert(h.user + h.usable_bytes <= h.map_base + h.map_bytes);
        return h.usable_bytes;
    }
};

/// A pool's freed huge mappings, kept for reuse (guarded by its page lock).
pub const Cache = struct {
    entries: [cache_slots]?*Huge = @splat(null),
    bytes: usize = 0,
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
        expireLocked(pool, pool_mod.monotonicNs());
        if (takeCachedLocked(pool, map_bytes, map_align) orelse takeGrownLocked(pool, map_bytes, map_align)) |cached| {
            page_map.register(cached.map_base, cached.map_bytes, cached.map_base | page_map.huge_tag) catch {
                unmapLocked(pool, cached);
                return report.fail(.NOMEM);
            };
            cached.magic = huge_magic;
            break :blk linkLocked(pool, cached, user_offset);
        }
        var e: linux.E = .SUCCESS;
        const base = chunk_source.mapAligned(&pool.source, &pool.policy, map_bytes, map_align, &e, &pool.stats.mbind_calls) catch return report.fail(e);
        page_map.register(base, map_bytes, base | page_map.huge_tag) catch {
            chunk_source.unmap(&pool.source, base, map_bytes);
            return report.fail(.NOMEM);
        };
        // The header page is placed like the rest: it is part of the mapping.
        const fresh: *Huge = @ptrFromInt(base);
        fresh.* = .{
            .magic = huge_magic,
            .pool = pool,
            .map_base = base,
            .map_bytes = map_bytes,
            .user = 0,
            .next = null,
            .prev = null,
        };
        _ = pool.stats.huge_bytes.fetchAdd(map_bytes, .monotonic);
        break :blk linkLocked(pool, fresh, user_offset);
    };
    h.usable_bytes = std.mem.alignForward(usize, size, page_bytes);
    assert(h.user % alignment == 0 and h.usableSize() >= size);
    // A reused mapping holds its last block's data (outside the lock: it is ours now).
    if (zeroed and !h.zero) bulk_bytes.zero(@as([*]u8, @ptrFromInt(h.user))[0..size]);
    h.zero = false;
    return @ptrFromInt(h.user);
}

fn linkLocked(pool: *Pool, h: *Huge, user_offset: usize) *Huge {
    pool.page_lock.assertHeld();
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

/// The smallest cached mapping that holds `map_bytes` at `map_align`,
/// removed from the cache. An anonymous one that is more than a quarter too
/// big is split at the first granule boundary after the request: the head
/// serves it, and a tail of at least a granule stays cached as a mapping of
/// its own, its pages kept (a smaller tail is unmapped); a file tier's is only
/// taken when it is at most a quarter too big.
fn takeCachedLocked(pool: *Pool, map_bytes: usize, map_align: usize) ?*Huge {
    pool.page_lock.assertHeld();
    const cache = &pool.huge_cache;
    const trimmable = pool.source == .anonymous;
    var best: ?usize = null;
    for (cache.entries, 0..) |entry, i| {
        const e = entry orelse continue;
        if (e.map_bytes < map_bytes or e.map_base % map_align != 0) continue;
        if (!trimmable and e.map_bytes - map_bytes > e.map_bytes / 4) continue;
        if (best == null or e.map_bytes < cache.entries[best.?].?.map_bytes) best = i;
    }
    const i = best orelse return null;
    const h = cache.entries[i].?;
    cache.entries[i] = null;
    cache.bytes -= h.map_bytes;
    assert(h.magic == cached_magic and h.pool == pool);
    if (h.map_bytes - map_bytes > h.map_bytes / 4) {
        assert(trimmable);
        const split = std.mem.alignForward(usize, h.map_base + map_bytes, chunk_source.granule_bytes);
        const end = h.map_base + h.map_bytes;
        if (end >= split + chunk_source.granule_bytes) {
            // The slot `h` left holds the tail: the cache's bytes lose only the head's.
            const tail: *Huge = @ptrFromInt(split);
            tail.* = .{
                .magic = cached_magic,
                .pool = pool,
                .map_base = split,
                .map_bytes = end - split,
                .user = 0,
                .next = null,
                .prev = null,
                .cached_ns = h.cached_ns,
                .zero = false,
            };
            cache.entries[i] = tail;
            cache.bytes += tail.map_bytes;
            h.map_bytes = split - h.map_base;
            trimCacheLocked(pool, cacheCapLocked(pool, 0));
        } else {
            _ = linux.munmap(@ptrFromInt(h.map_base + map_bytes), h.map_bytes - map_bytes);
            _ = pool.stats.huge_bytes.fetchSub(h.map_bytes - map_bytes, .monotonic);
            h.map_bytes = map_bytes;
        }
        assert(h.map_bytes >= map_bytes);
    }
    return h;
}

/// The biggest cached mapping smaller than `map_bytes`, grown to it with
/// mremap (its pages move, none is zeroed or faulted again); only for pools
/// whose mappings can grow (see `growable`).
fn takeGrownLocked(pool: *Pool, map_bytes: usize, map_align: usize) ?*Huge {
    pool.page_lock.assertHeld();
    if (!growable(pool)) return null;
    const cache = &pool.huge_cache;
    var best: ?usize = null;
    for (cache.entries, 0..) |entry, i| {
        const e = entry orelse continue;
        if (e.map_bytes >= map_bytes) continue;
        if (best == null or e.map_bytes > cache.entries[best.?].?.map_bytes) best = i;
    }
    const i = best orelse return null;
    const h = cache.entries[i].?;
    cache.entries[i] = null;
    cache.bytes -= h.map_bytes;
    assert(h.magic == cached_magic and h.pool == pool);
    const old_bytes = h.map_bytes;
    var base = h.map_base;
    const in_place = linux.mremap(@ptrFromInt(base), old_bytes, map_bytes, .{}, null);
    if (linux.errno(in_place) != .SUCCESS or base % map_align != 0) {
        if (linux.errno(in_place) == .SUCCESS) _ = linux.mremap(@ptrFromInt(base), map_bytes, old_bytes, .{}, null);
        var e: linux.E = .SUCCESS;
        const target = chunk_source.reserveAddressSpace(map_bytes, map_align, &e) catch {
            unmapLocked(pool, h);
            return null;
        };
        const moved = linux.mremap(@ptrFromInt(base), old_bytes, map_bytes, .{ .MAYMOVE = true, .FIXED = true }, @ptrFromInt(target));
        if (linux.errno(moved) != .SUCCESS) {
            _ = linux.munmap(@ptrFromInt(target), map_bytes);
            unmapLocked(pool, h);
            return null;
        }
        base = target;
    }
    placeTailLocked(pool, base + old_bytes, map_bytes - old_bytes);
    const grown: *Huge = @ptrFromInt(base);
    grown.map_base = base;
    grown.map_bytes = map_bytes;
    _ = pool.stats.huge_bytes.fetchAdd(map_bytes - old_bytes, .monotonic);
    return grown;
}

/// Whether the pool's huge mappings may grow with mremap: anonymous memory
/// (a file tier's offsets would not follow), and a policy the VMA carries
/// to its new pages (not the weighted-interleave emulation's stripes).
fn growable(pool: *Pool) bool {
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
    pool.page_lock.lock();
    defer pool.page_lock.unlock();
    assert(h.magic == huge_magic and h.pool == pool);
    unlinkLocked(pool, h);
    page_map.unregister(h.map_base, h.map_bytes);
    const now = pool_mod.monotonicNs();
    expireLocked(pool, now);
    cacheOrUnmapLocked(pool, h, now);
}

/// Puts `h` (unlinked, unregistered) into the cache, evicting the oldest
/// mappings to make room, or unmaps it when it is bigger than the cap.
fn cacheOrUnmapLocked(pool: *Pool, h: *Huge, now: u64) void {
    pool.page_lock.assertHeld();
    const cache = &pool.huge_cache;
    const cap = cacheCapLocked(pool, h.map_bytes);
    // A file tier's pages are capacity the user capped (PMEM_SIZE_LIMIT): never held back.
    if (h.map_bytes > cap or pool.source != .anonymous) {
        unmapLocked(pool, h);
        return trimCacheLocked(pool, cap);
    }
    while (true) {
        var free_slot: ?usize = null;
        var oldest: ?usize = null;
        for (cache.entries, 0..) |entry, i| {
            const e = entry orelse {
                free_slot = i;
                continue;
            };
            if (oldest == null or e.cached_ns < cache.entries[oldest.?].?.cached_ns) oldest = i;
        }
        if (free_slot != null and cache.bytes + h.map_bytes <= cap) {
            h.magic = cached_magic;
            h.cached_ns = now;
            cache.entries[free_slot.?] = h;
            cache.bytes += h.map_bytes;
            return;
        }
        const victim = oldest.?; // bytes over the cap with h alone within it: not empty
        const e = cache.entries[victim].?;
        cache.entries[victim] = null;
        cache.bytes -= e.map_bytes;
        unmapLocked(pool, e);
    }
}

/// What the cache may hold: max(`cache_min_bytes`, half the live huge bytes), the live
/// bytes counted without the cache and without `leaving_bytes` (a mapping being freed).
fn cacheCapLocked(pool: *Pool, leaving_bytes: usize) usize {
    pool.page_lock.assertHeld();
    const live = pool.stats.huge_bytes.load(.monotonic) - pool.huge_cache.bytes - leaving_bytes;
    return @max(cache_min_bytes, live / 2);
}

/// Unmaps the oldest cached mappings until the cache holds at most `cap` bytes.
fn trimCacheLocked(pool: *Pool, cap: usize) void {
    pool.page_lock.assertHeld();
    const cache = &pool.huge_cache;
    while (cache.bytes > cap) {
        var oldest: ?usize = null;
        for (cache.entries, 0..) |entry, i| {
            const e = entry orelse continue;
            if (oldest == null or e.cached_ns < cache.entries[oldest.?].?.cached_ns) oldest = i;
        }
        const e = cache.entries[oldest.?].?; // bytes > 0: not empty
        cache.entries[oldest.?] = null;
        cache.bytes -= e.map_bytes;
        unmapLocked(pool, e);
    }
}

/// Unmaps the cached mappings older than `cache_decay_ns`. Page lock held.
pub fn expireLocked(pool: *Pool, now: u64) void {
    pool.page_lock.assertHeld();
    const cache = &pool.huge_cache;
    if (cache.bytes == 0) return;
    for (&cache.entries) |*entry| {
        const e = entry.* orelse continue;
        if (now -% e.cached_ns < cache_decay_ns) continue;
        entry.* = null;
        cache.bytes -= e.map_bytes;
        unmapLocked(pool, e);
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

fn unmapLocked(pool: *Pool, h: *Huge) void {
    pool.page_lock.assertHeld();
    const base = h.map_base;
    const bytes = h.map_bytes;
    _ = pool.stats.huge_bytes.fetchSub(bytes, .monotonic);
    chunk_source.unmap(&pool.source, base, bytes);
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
    const old_base = h.map_base;
    const old_bytes = h.map_bytes;
    var base = old_base;
    const in_place = linux.mremap(@ptrFromInt(old_base), old_bytes, want, .{}, null);
    if (linux.errno(in_place) == .SUCCESS) {
        // Register the granules the mapping grew into (the others are).
        const old_end = std.mem.alignForward(usize, old_base + old_bytes, chunk_source.granule_bytes);
        if (old_base + want > old_end) page_map.register(old_end, old_base + want - old_end, old_base | page_map.huge_tag) catch {
            _ = linux.mremap(@ptrFromInt(old_base), want, old_bytes, .{}, null); // shrinking stays in place
            return null;
        };
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
    moved_h.user = base + user_offset;
    moved_h.usable_bytes = body & ~(page_bytes - 1);
    _ = pool.stats.huge_bytes.fetchAdd(want - old_bytes, .monotonic);
    return @ptrFromInt(moved_h.user);
}
