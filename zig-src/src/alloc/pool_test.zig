//! Tests of pool.zig: blocks of every size and alignment, frees from other
//! threads, realloc across paths, purging, mbind counts, pool slot reuse.
//! (Kept apart so that pool.zig stays readable; they use its public API.)
const std = @import("std");
const pool_mod = @import("alloc").pool;
const registry = @import("alloc").registry;
const Policy = @import("placement").policy.Policy;

const Pool = pool_mod.Pool;
const free = pool_mod.free;
const usableSize = pool_mod.usableSize;
const poolOf = pool_mod.poolOf;
const realloc = pool_mod.realloc;
const page_bytes = pool_mod.page_bytes;
const dirty_max_pages = pool_mod.dirty_max_pages;

const testing = std.testing;

fn testPool() !*Pool {
    const policy: Policy = .{};
    return registry.create(&policy, .anonymous) orelse error.OutOfMemory;
}

test "blocks of every size are usable, distinct and keep their contents" {
    const p = try testPool();
    defer registry.destroy(p);
    var blocks: [300][*]u8 = undefined;
    var sizes: [300]usize = undefined;
    var size: usize = 0;
    for (&blocks, &sizes, 0..) |*b, *s, i| {
        size = (size * 7 + 13) % (3 * 1024 * 1024) + 1;
        if (i % 3 != 0) size %= 4096;
        s.* = size;
        b.* = p.alloc(size) orelse return error.OutOfMemory;
        try testing.expect(usableSize(b.*, "test") >= size);
        try testing.expect(@intFromPtr(b.*) % 8 == 0);
        @memset(b.*[0..size], @truncate(i));
    }
    for (blocks, sizes, 0..) |b, s, i| {
        try testing.expect(std.mem.allEqual(u8, b[0..s], @truncate(i)));
        free(b, "test");
    }
}

test "every power-of-two alignment up to 1 GiB is honoured" {
    const p = try testPool();
    defer registry.destroy(p);
    var alignment: usize = 8;
    while (alignment <= 1 << 30) : (alignment *= 2) {
        for ([_]usize{ 1, 100, 5000, 3 << 20 }) |size| {
            const b = p.allocAligned(alignment, size) orelse return error.OutOfMemory;
            try testing.expectEqual(@as(usize, 0), @intFromPtr(b) % alignment);
            try testing.expect(usableSize(b, "test") >= size);
            free(b, "test");
        }
    }
}

test "a block freed by another thread is reused, not lost" {
    const p = try testPool();
    defer registry.destroy(p);
    var blocks: [1000]usize = undefined;
    for (&blocks) |*b| b.* = @intFromPtr(p.alloc(64).?);
    const t = try std.Thread.spawn(.{}, struct {
        fn run(list: []const usize) void {
            for (list) |b| free(@ptrFromInt(b), "test");
        }
    }.run, .{@as([]const usize, &blocks)});
    t.join();
    // The other thread's cache went back to the bins at its exit: allocating
    // the same again needs no new memory.
    const mapped = p.stats.mapped_bytes.load(.monotonic);
    for (&blocks) |*b| b.* = @intFromPtr(p.alloc(64).?);
    try testing.expectEqual(mapped, p.stats.mapped_bytes.load(.monotonic));
    for (blocks) |b| free(@ptrFromInt(b), "test");
}

test "two threads alive at once cut their small blocks from different slabs (bin shards)" {
    const p = try testPool();
    defer registry.destroy(p);
    const count = 64;
    const Worker = struct {
        fn run(pool: *Pool, out: *[count]usize, ready: *std.atomic.Value(bool), done: *std.atomic.Value(bool)) void {
            for (out) |*b| b.* = @intFromPtr(pool.alloc(48).?);
            ready.store(true, .release);
            while (!done.load(.acquire)) std.Thread.yield() catch {};
            for (out) |b| free(@ptrFromInt(b), "test");
        }
    };
    var theirs: [count]usize = undefined;
    var ready: std.atomic.Value(bool) = .init(false);
    var done: std.atomic.Value(bool) = .init(false);
    const t = try std.Thread.spawn(.{}, Worker.run, .{ p, &theirs, &ready, &done });
    while (!ready.load(.acquire)) std.Thread.yield() catch {};
    var ours: [count]usize = undefined;
    for (&ours) |*b| b.* = @intFromPtr(p.alloc(48).?);
    // A slab of 48 B blocks spans one or a few pages: no page holds blocks of both threads.
    var shared_pages: usize = 0;
    for (ours) |a| {
        for (theirs) |b| {
            if (a / page_bytes == b / page_bytes) shared_pages += 1;
        }
    }
    done.store(true, .release);
    t.join();
    for (ours) |b| free(@ptrFromInt(b), "test");
    // One CPU: a single shard, nothing runs at once to share lines with.
    if (registry.shardCount() > 1) try testing.expectEqual(@as(usize, 0), shared_pages);
}

test "realloc keeps contents and the block's pool" {
    const p = try testPool();
    defer registry.destroy(p);
    var b = p.alloc(10).?;
    @memcpy(b[0..10], "0123456789");
    for ([_]usize{ 100, 40_000, 3 << 20, 50, 9 }) |size| {
        b = realloc(b, size, "test", p).?;
        try testing.expectEqualSlices(u8, "012345678", b[0..9]);
        try testing.expectEqual(p, poolOf(@intFromPtr(b), "test"));
    }
    free(b, "test");
}

test "freed large blocks are purged: dirty pages stay under the limit" {
    const p = try testPool();
    defer registry.destroy(p);
    var blocks: [64][*]u8 = undefined;
    for (&blocks) |*b| {
        b.* = p.alloc(1 << 20).?;
        @memset(b.*[0 .. 1 << 20], 1);
    }
    for (blocks) |b| free(b, "test");
    // At most the hard limit (a burst of frees waits for cap_purge_ns below it), plus the
    // block freed last (kept for reuse).
    try testing.expect(p.dirty_pages <= p.dirtyHardLimitPages() + (1 << 20) / page_bytes);
    // Cycling one block larger than the cap purges nothing.
    const mapped_before = p.dirty_pages;
    for (0..10) |_| free(p.alloc(1 << 20).?, "test");
    try testing.expectEqual(mapped_before, p.dirty_pages);
}

test "a load that frees and takes back more than the base cap keeps those pages resident" {
    const p = try testPool();
    defer registry.destroy(p);
    // 24 MiB of 16 KiB blocks; each cycle frees half of them and takes them back: the pages
    // freed stay dirty (under the recent peak), so the second half of every cycle reuses them.
    const count = 1536;
    const hard_extra = p.dirtyHardLimitPages() - dirty_max_pages; // an empty pool: the base cap
    const blocks = try testing.allocator.alloc([*]u8, count);
    defer testing.allocator.free(blocks);
    for (blocks) |*b| {
        b.* = p.alloc(16 * 1024).?;
        b.*[0] = 1;
    }
    const peak = p.used_pages;
    for (0..12) |_| {
        for (blocks[0 .. count / 2]) |b| free(b, "test");
        // Kept (with a cap that was the base cap it would have been purged), and never above
        // the peak by more than the base cap and the hard limit's margin.
        try testing.expect(p.dirty_pages > 4 * dirty_max_pages);
        try testing.expect(p.dirty_pages + p.used_pages <= peak + dirty_max_pages + hard_extra);
        for (blocks[0 .. count / 2]) |*b| {
            b.* = p.alloc(16 * 1024).?;
            b.*[0] = 1;
        }
    }
    for (blocks) |b| free(b, "test");
}

test "the cap in force: the room under the recent peak, within the base cap and 1 GiB, and half the pages in use once the pool is shrinking" {
    const p = try testPool();
    defer registry.destroy(p);
    const hard_extra = p.dirtyHardLimitPages() - dirty_max_pages; // an empty pool: the base cap
    p.peak_used_pages = 6000;
    p.used_pages = 3000; // freed 3000 pages since the peak: they may stay dirty
    try testing.expectEqual(@as(usize, 3000) + hard_extra, p.dirtyHardLimitPages());
    p.used_pages = 6000; // at the peak: nothing freed to keep
    try testing.expectEqual(dirty_max_pages + hard_extra, p.dirtyHardLimitPages());
    p.used_pages = 700; // below 1/4 of the peak, but not for long: the room still
    try testing.expectEqual(@as(usize, 5300) + hard_extra, p.dirtyHardLimitPages());
    p.shrinking = true; // for long: half the pages in use at most
    try testing.expectEqual(@as(usize, 350) + hard_extra, p.dirtyHardLimitPages());
    p.used_pages = 100; // and never below the base cap
    try testing.expectEqual(dirty_max_pages + hard_extra, p.dirtyHardLimitPages());
    p.shrinking = false;
    p.used_pages = 740;
    p.peak_used_pages = 5000;
    try testing.expectEqual(@as(usize, 4260) + hard_extra, p.dirtyHardLimitPages());
    // The peak of the decay interval before counts too (a tick resets the current one).
    p.peak_used_pages = 2000;
    p.previous_peak_used_pages = 5000;
    p.used_pages = 1000;
    try testing.expectEqual(@as(usize, 4000) + hard_extra, p.dirtyHardLimitPages());
    // At most 1 GiB, however far below a big peak.
    p.peak_used_pages = 800_000;
    p.previous_peak_used_pages = 0;
    p.used_pages = 400_000;
    try testing.expectEqual(@as(usize, 262_144) + hard_extra, p.dirtyHardLimitPages());
    p.used_pages = 0;
    p.peak_used_pages = 0;
}

test "a pool counts as shrinking once it stayed below 1/4 of its peak for the delay, and stops when it grows again" {
    const p = try testPool();
    defer registry.destroy(p);
    p.page_lock.lock();
    defer p.page_lock.unlock();
    const ms: u64 = 1_000_000;
    p.peak_used_pages = 8000;
    p.used_pages = 900; // below 1/4 since t = 1000 ms
    p.noteShrink(1000 * ms);
    try testing.expect(!p.shrinking);
    p.noteShrink(1100 * ms); // 100 ms: churn, a round's threads gone and the next to come
    try testing.expect(!p.shrinking);
    p.noteShrink(1250 * ms); // 250 ms: shrinking
    try testing.expect(p.shrinking);
    p.used_pages = 2500; // back above the line: churn again, and the clock starts over
    p.noteShrink(1300 * ms);
    try testing.expect(!p.shrinking);
    p.used_pages = 500;
    p.noteShrink(1400 * ms);
    try testing.expect(!p.shrinking);
    p.noteShrink(1500 * ms);
    try testing.expect(!p.shrinking);
    p.used_pages = 0;
    p.peak_used_pages = 0;
}

test "mbind calls stay within 512 per GiB allocated" {
    var policy: Policy = .{};
    policy.mode = .bind;
    policy.nodes = @import("placement").node_mask.NodeMask.single(0);
    const p = registry.create(&policy, .anonymous) orelse return error.OutOfMemory;
    defer registry.destroy(p);
    var total: usize = 0;
    var size: usize = 1000;
    while (total < 256 << 20) {
        size = (size * 13 + 7) % (4 << 20) + 1;
        _ = p.alloc(size) orelse return error.OutOfMemory;
        total += size;
    }
    const calls = p.stats.mbind_calls.load(.monotonic);
    try testing.expect(calls > 0); // bind really calls mbind
    try testing.expect(calls * (1 << 30) / total <= 512);
}

test "a destroyed pool's slot is reused and stale caches are dropped" {
    const a = try testPool();
    const slot = a.slot;
    const stale = a.alloc(32).?;
    free(stale, "test"); // now in this thread's cache of slot `slot`
    registry.destroy(a);
    const b = try testPool();
    defer registry.destroy(b);
    try testing.expectEqual(slot, b.slot);
    const fresh = b.alloc(32).?;
    try testing.expectEqual(b, poolOf(@intFromPtr(fresh), "test"));
    free(fresh, "test");
}

test "a small alignment with a size above the small classes gets a page run" {
    const p = try testPool();
    defer registry.destroy(p);
    var r: usize = 0;
    while (r < 100) : (r += 1) {
        const size = 1 + r * 997;
        const a = p.allocAligned(256, size) orelse return error.OutOfMemory;
        const b = p.allocAligned(64, std.mem.alignForward(usize, size, 64)) orelse return error.OutOfMemory;
        try testing.expect(@intFromPtr(a) % 256 == 0 and @intFromPtr(b) % 64 == 0);
        free(a, "test");
        free(b, "test");
    }
}

test "calloc of a large block is zero, and writes only the pages that held data" {
    const p = try testPool();
    defer registry.destroy(p);
    const size: usize = 1 << 20;
    // Fresh pages: zero without being touched (none resident after calloc).
    const fresh = p.allocZeroed(1, size).?;
    var vec: [size / page_bytes]u8 = undefined;
    try testing.expectEqual(@as(usize, 0), std.os.linux.mincore(@ptrCast(fresh), size, &vec));
    var resident: usize = 0;
    for (vec) |v| resident += v & 1;
    try testing.expectEqual(@as(usize, 0), resident);
    try testing.expect(std.mem.allEqual(u8, fresh[0..size], 0));
    // Dirty pages: written over, then handed out zeroed again.
    @memset(fresh[0 .. size / 2], 0xa5);
    free(fresh, "test");
    const again = p.allocZeroed(1, size).?;
    try testing.expectEqual(@intFromPtr(fresh), @intFromPtr(again)); // the same run, kept dirty
    try testing.expect(std.mem.allEqual(u8, again[0..size], 0));
    free(again, "test");
}

test "a file-backed pool zeroes every page of a large calloc (purged file pages keep data)" {
    const p = try testPool();
    defer registry.destroy(p);
    p.clean_pages_are_zero = false; // as a file-backed pool
    const size: usize = 256 * 1024;
    const a = p.alloc(size).?;
    @memset(a[0..size], 0x5a);
    free(a, "test");
    const b = p.allocZeroed(1, size).?;
    try testing.expect(std.mem.allEqual(u8, b[0..size], 0));
    free(b, "test");
}

test "an aligned request near SIZE_MAX fails with ENOMEM instead of wrapping around to a small block" {
    const p = try testPool();
    defer registry.destroy(p);
    const max = std.math.maxInt(usize);
    var alignment: usize = 8;
    while (alignment <= 1 << 30) : (alignment *= 2) {
        for ([_]usize{ max, max - 1, max - 4095, max - (1 << 21), pool_mod.request_max_bytes + 1 }) |size| {
            std.c._errno().* = 0;
            try testing.expect(p.allocAligned(alignment, size) == null);
            try testing.expectEqual(@as(c_int, @backingInt(std.os.linux.E.NOMEM)), std.c._errno().*);
        }
    }
    try testing.expect(p.alloc(max) == null);
    try testing.expect(p.allocZeroed(1, max - 8) == null);
}

test "size 0 with any alignment from 8 B to 1 GiB gives an aligned block inside its own mapping" {
    const p = try testPool();
    defer registry.destroy(p);
    var alignment: usize = 8;
    while (alignment <= 1 << 30) : (alignment *= 2) {
        const b = p.allocAligned(alignment, 0) orelse return error.OutOfMemory;
        try testing.expectEqual(@as(usize, 0), @intFromPtr(b) % alignment);
        try testing.expect(usableSize(b, "test") >= 1);
        b[0] = 1; // the block's byte is ours: inside the mapping
        free(b, "test");
    }
}

test "a freed huge block's mapping is reused by the next one of about its size, and calloc of it is zero" {
    const p = try testPool();
    defer registry.destroy(p);
    const a = p.alloc(8 << 20) orelse return error.OutOfMemory;
    @memset(a[0 .. 8 << 20], 0xa5);
    const mapped = p.stats.huge_bytes.load(.monotonic);
    free(a, "test");
    // Kept (its pages and placement), but a stale pointer is not ours any more.
    try testing.expect(!pool_mod.isOurs(@intFromPtr(a)));
    try testing.expectEqual(mapped, p.stats.huge_bytes.load(.monotonic));
    const b = p.allocZeroed(1, 7 << 20) orelse return error.OutOfMemory;
    try testing.expectEqual(@intFromPtr(a), @intFromPtr(b));
    try testing.expect(std.mem.allEqual(u8, b[0 .. 7 << 20], 0));
    try testing.expectEqual(@as(usize, 7 << 20), usableSize(b, "test"));
    free(b, "test");
    // A bigger one grows the cached mapping (mremap) instead of mapping anew.
    const c = p.alloc(12 << 20) orelse return error.OutOfMemory;
    @memset(c[0 .. 12 << 20], 1);
    try testing.expectEqual(@as(usize, 12 << 20), usableSize(c, "test"));
    free(c, "test");
}

test "a huge block grows in realloc without losing its contents" {
    const p = try testPool();
    defer registry.destroy(p);
    var size: usize = 4 << 20;
    var block = p.alloc(size) orelse return error.OutOfMemory;
    for (0..size / page_bytes) |i| block[i * page_bytes] = @truncate(i);
    while (size < 64 << 20) : (size *= 2) {
        block = realloc(block, size * 2, "test", p) orelse return error.OutOfMemory;
        try testing.expect(usableSize(block, "test") >= size * 2);
        for (0..size / page_bytes) |i| try testing.expectEqual(@as(u8, @truncate(i)), block[i * page_bytes]);
        for (size / page_bytes..size * 2 / page_bytes) |i| block[i * page_bytes] = @truncate(i);
    }
    try testing.expect(poolOf(@intFromPtr(block), "test") == p);
    free(block, "test");
}

/// Pages of `block[0..bytes]` that are resident (mincore): a page that moved with mremap is, a
/// page never touched is not.
fn residentPages(block: [*]u8, bytes: usize) !usize {
    var vec: [4096]u8 = undefined;
    const pages = bytes / page_bytes;
    if (pages > vec.len) return error.TooBig;
    if (std.os.linux.errno(std.os.linux.mincore(block, pages * page_bytes, &vec)) != .SUCCESS) return error.Mincore;
    var count: usize = 0;
    for (vec[0..pages]) |v| count += v & 1;
    return count;
}

test "a huge block bigger than every cached mapping is assembled from them: their pages move, the gap is filled from the head of a bigger one" {
    const p = try testPool();
    defer registry.destroy(p);
    const kib: usize = 1 << 10;
    // Three cached mappings of 4, 3 and 2.5 MiB (each with its header page: within the
    // cache's 10 MiB floor), their pages resident.
    const a = p.alloc(4096 * kib) orelse return error.OutOfMemory;
    const b = p.alloc(3072 * kib) orelse return error.OutOfMemory;
    const c = p.alloc(2560 * kib) orelse return error.OutOfMemory;
    @memset(a[0 .. 4096 * kib], 0xa1);
    @memset(b[0 .. 3072 * kib], 0xb2);
    @memset(c[0 .. 2560 * kib], 0xc3);
    free(a, "test");
    free(b, "test");
    free(c, "test");
    const mapped = p.stats.huge_bytes.load(.monotonic);
    try testing.expectEqual(mapped, p.huge_cache.bytes);
    // 7 MiB: no one of them is enough. The biggest that fit together (4 and 2.5 MiB) move side
    // by side, and the 3 MiB one gives its head for the gap (0.5 MiB less a page); its tail stays.
    const d = p.alloc(7168 * kib) orelse return error.OutOfMemory;
    try testing.expectEqual(mapped, p.stats.huge_bytes.load(.monotonic)); // nothing new mapped
    try testing.expectEqual(7168 * kib / page_bytes, try residentPages(d, 7168 * kib)); // nor faulted
    try testing.expectEqual(2560 * kib + 2 * page_bytes, p.huge_cache.bytes);
    // The block is the pieces' pages, side by side: all of the 4 and 2.5 MiB blocks' old
    // contents, and the head of the 3 MiB one's (less the pieces' header pages). A stale header
    // page inside the block may hold a byte equal to a pattern (an address's byte: 1 run in a
    // few hundred), so the counts may exceed the contents by what those pages hold.
    const headers_slack = 3 * page_bytes;
    const a1 = std.mem.count(u8, d[0 .. 7168 * kib], &.{0xa1});
    try testing.expect(a1 >= 4096 * kib and a1 <= 4096 * kib + headers_slack);
    const c3 = std.mem.count(u8, d[0 .. 7168 * kib], &.{0xc3});
    try testing.expect(c3 >= 2560 * kib and c3 <= 2560 * kib + headers_slack);
    try testing.expect(std.mem.count(u8, d[0 .. 7168 * kib], &.{0xb2}) >= 512 * kib - 3 * page_bytes);
    @memset(d[0 .. 7168 * kib], 0x5e);
    try testing.expectEqual(7168 * kib, usableSize(d, "test"));
    // It grows in realloc (in place by its last segment, else by a copy) with its contents.
    const e = realloc(d, 12288 * kib, "test", p) orelse return error.OutOfMemory;
    try testing.expect(std.mem.allEqual(u8, e[0 .. 7168 * kib], 0x5e));
    @memset(e[7168 * kib .. 12288 * kib], 0x6f);
    free(e, "test");
}

test "huge blocks of random sizes cycled through the cache (assembled, split, grown) keep their contents, and calloc's are zero" {
    const huge = @import("alloc").huge;
    const segments_before = huge.segments_in_use.load(.monotonic);
    const p = try testPool();
    errdefer registry.destroy(p);
    const mib: usize = 1 << 20;
    var prng = std.Random.DefaultPrng.init(0x5eed);
    const random = prng.random();
    var blocks: [6]?[*]u8 = @splat(null);
    var sizes: [6]usize = @splat(0);
    var tags: [6]u8 = @splat(0);
    for (0..200) |round| {
        const i = random.uintLessThan(usize, blocks.len);
        if (blocks[i]) |old| {
            // Every page still holds what was written there.
            var offset: usize = 0;
            while (offset < sizes[i]) : (offset += page_bytes) try testing.expectEqual(tags[i], old[offset]);
            try testing.expectEqual(tags[i], old[sizes[i] - 1]);
            if (round % 7 == 3) {
                // Grown by realloc: the old pages keep their contents.
                const bigger = sizes[i] + random.uintLessThan(usize, 6 * mib);
                const grown = realloc(old, bigger, "test", p) orelse return error.OutOfMemory;
                var at: usize = 0;
                while (at < sizes[i]) : (at += page_bytes) try testing.expectEqual(tags[i], grown[at]);
                free(grown, "test");
            } else free(old, "test");
        }
        const size = 2 * mib + random.uintLessThan(usize, 10 * mib);
        const zeroed = round % 5 == 0;
        const block = (if (zeroed) p.allocZeroed(1, size) else p.alloc(size)) orelse return error.OutOfMemory;
        if (zeroed) try testing.expect(std.mem.allEqual(u8, block[0..size], 0));
        const tag: u8 = @truncate(round + 1);
        var offset: usize = 0;
        while (offset < size) : (offset += page_bytes) block[offset] = tag;
        block[size - 1] = tag;
        blocks[i] = block;
        sizes[i] = size;
        tags[i] = tag;
    }
    for (blocks) |block| if (block) |b| free(b, "test");
    // Every segment booked for the VMA budget is given back with the mappings.
    registry.destroy(p);
    try testing.expectEqual(segments_before, huge.segments_in_use.load(.monotonic));
}

test "over the VMA budget, a huge block is not assembled from cached mappings but mapped anew" {
    const huge = @import("alloc").huge;
    const p = try testPool();
    defer registry.destroy(p);
    const kib: usize = 1 << 10;
    const a = p.alloc(4096 * kib) orelse return error.OutOfMemory;
    const b = p.alloc(3072 * kib) orelse return error.OutOfMemory;
    free(a, "test");
    free(b, "test");
    const mapped = p.stats.huge_bytes.load(.monotonic);
    // As if thousands of assembled blocks were live: their VMAs count against the process's.
    _ = huge.segments_in_use.fetchAdd(huge.segments_budget, .monotonic);
    defer _ = huge.segments_in_use.fetchSub(huge.segments_budget, .monotonic);
    const c = p.alloc(6144 * kib) orelse return error.OutOfMemory;
    try testing.expect(p.stats.huge_bytes.load(.monotonic) > mapped); // a fresh mapping
    try testing.expectEqual(mapped, p.huge_cache.bytes); // both kept as they were
    free(c, "test");
}

test "the huge cache keeps the room under the recent peak of live huge bytes: a load cycling blocks maps none anew" {
    const MiB: usize = 1 << 20;
    const p = try testPool();
    defer registry.destroy(p);
    // Ten live 6 MiB blocks; freeing eight leaves 12 MiB live, whose half (6 MiB) would hold
    // none of them, and the 10 MiB floor one: the room under the 60 MiB peak holds all eight.
    var blocks: [10][*]u8 = undefined;
    for (&blocks) |*b| b.* = p.alloc(6 * MiB) orelse return error.OutOfMemory;
    var before: [10]usize = undefined;
    for (blocks, &before) |b, *address| address.* = @intFromPtr(b);
    for (blocks[2..]) |b| free(b, "test");
    try testing.expect(p.huge_cache.bytes >= 8 * 6 * MiB);
    // Taken again: the same mappings, no new one.
    const mapped = p.stats.huge_bytes.load(.monotonic);
    for (blocks[2..]) |*b| b.* = p.alloc(6 * MiB) orelse return error.OutOfMemory;
    try testing.expectEqual(mapped, p.stats.huge_bytes.load(.monotonic));
    for (blocks[2..]) |b| try testing.expect(std.mem.indexOfScalar(usize, &before, @intFromPtr(b)) != null);
    for (blocks[2..]) |b| free(b, "test");
    try testing.expect(p.huge_cache.bytes >= 8 * 6 * MiB);
    // Once the pool counts as shrinking, the room goes: the cache keeps its base cap only.
    {
        p.page_lock.lock();
        defer p.page_lock.unlock();
        const ms: u64 = 1_000_000;
        p.peak_used_pages = 8000;
        p.used_pages = 900;
        p.noteShrink(1000 * ms);
        p.noteShrink(1250 * ms);
        try testing.expect(p.shrinking);
        try testing.expect(p.huge_cache.bytes <= 10 * MiB);
        p.used_pages = 0;
        p.peak_used_pages = 0;
        p.shrinking = false;
    }
    for (blocks[0..2]) |b| free(b, "test");
}
