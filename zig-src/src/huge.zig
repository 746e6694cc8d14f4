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
//! Freeing unmaps at once: a huge block's pages return to the kernel (and its
//! node) immediately, which is what a program freeing a 1 GiB buffer expects.
//! Growing in place is not attempted here (realloc copies or, for blocks that
//! only shrink, keeps the mapping).
//!
//! Trade-off: one header page per huge block (4 KiB of RSS per ≥ 2 MiB, 0.2%)
//! buys the O(1) lookup without a separate metadata allocator.
const std = @import("std");
const assert = std.debug.assert;
const linux = std.os.linux;
const page_map = @import("page_map.zig");
const chunk_source = @import("chunk_source.zig");
const report = @import("report.zig");
const pool_mod = @import("pool.zig");
const Pool = pool_mod.Pool;

const page_bytes = std.heap.page_size_min;
const huge_magic: u64 = 0x686d_6875_6765_3031; // "hmhuge01"

pub const Huge = struct {
    magic: u64,
    pool: *Pool,
    map_base: usize,
    map_bytes: usize,
    /// The address handed to the user.
    user: usize,
    next: ?*Huge,
    prev: ?*Huge,

    pub fn usableSize(h: *const Huge) usize {
        return h.map_base + h.map_bytes - h.user;
    }
};

pub fn alloc(pool: *Pool, size: usize, alignment: usize) ?[*]u8 {
    const user_offset = @max(page_bytes, alignment);
    const body = std.math.add(usize, size, page_bytes - 1) catch return report.fail(.NOMEM);
    const map_bytes = std.math.add(usize, user_offset, body & ~(page_bytes - 1)) catch return report.fail(.NOMEM);
    if (map_bytes > (@as(usize, 1) << 46)) return report.fail(.NOMEM);

    pool.page_lock.lock();
    defer pool.page_lock.unlock();
    var e: linux.E = .SUCCESS;
    // The block starts `user_offset` (= its alignment, when above a page) into
    // the mapping, so a mapping aligned to it aligns the block.
    const map_align = @max(chunk_source.granule_bytes, alignment);
    const base = chunk_source.mapAligned(&pool.source, &pool.policy, map_bytes, map_align, &e, &pool.stats.mbind_calls) catch return report.fail(e);
    page_map.register(base, map_bytes, base | page_map.huge_tag) catch {
        chunk_source.unmap(&pool.source, base, map_bytes);
        return report.fail(.NOMEM);
    };
    // The header page is placed like the rest: it is part of the mapping.
    const h: *Huge = @ptrFromInt(base);
    h.* = .{
        .magic = huge_magic,
        .pool = pool,
        .map_base = base,
        .map_bytes = map_bytes,
        .user = base + user_offset,
        .next = pool.huge_list,
        .prev = null,
    };
    assert(h.user % alignment == 0);
    if (pool.huge_list) |head| head.prev = h;
    pool.huge_list = h;
    _ = pool.stats.huge_bytes.fetchAdd(map_bytes, .monotonic);
    return @ptrFromInt(h.user);
}

pub fn free(h: *Huge) void {
    const pool = h.pool;
    pool.page_lock.lock();
    defer pool.page_lock.unlock();
    releaseLocked(pool, h);
}

/// Unlinks and unmaps `h`. Caller holds the pool's page lock.
pub fn releaseLocked(pool: *Pool, h: *Huge) void {
    pool.page_lock.assertHeld();
    assert(h.magic == huge_magic and h.pool == pool);
    if (h.prev) |p| p.next = h.next else pool.huge_list = h.next;
    if (h.next) |n| n.prev = h.prev;
    const base = h.map_base;
    const bytes = h.map_bytes;
    _ = pool.stats.huge_bytes.fetchSub(bytes, .monotonic);
    page_map.unregister(base, bytes);
    chunk_source.unmap(&pool.source, base, bytes);
}

/// Whether a realloc to `size` can keep the block where it is: it fits, and
/// does not waste more than half of the mapping.
pub fn resize(h: *Huge, size: usize) bool {
    const usable = h.usableSize();
    return size <= usable and size > usable / 2 and size > pool_mod.large_max_bytes;
}
