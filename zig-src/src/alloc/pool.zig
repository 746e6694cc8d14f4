//! Pools: an allocator with a placement policy, and the hmalloc entry logic.
//!
//! What: a pool owns chunks (chunk.zig) obtained from its source
//! (chunk_source.zig) and placed by its policy (policy.zig), one bin per small
//! class in each bin shard (slab.zig; a thread refills from its shard's bins,
//! so two threads running at once cut their blocks from different slabs: see
//! `max_shards`), and the huge mappings made for it (huge.zig). The default
//! pool serves hmalloc(); `hm_pool_create` makes more, each with its own
//! policy; libmemtier makes one per memory tier. Any pool's block is freed
//! with the same `free`, because the page map knows each chunk's pool.
//!
//! Paths, by size:
//! - small (≤ 32 KiB): the calling thread's cache (thread_cache.zig) — no
//!   lock, no syscall; a batch refill/flush against the bin otherwise;
//! - large (≤ `large_max_bytes`): a page run in one of the pool's chunks,
//!   under the pool's page lock;
//! - huge: a mapping of its own (one mbind), unmapped on free.
//!
//! Locks: one per bin, one per pool for pages and chunks (`page_lock`), taken
//! in that order (a bin takes pages for a new slab, and gives empty slabs
//! back); the pool registry's lock comes before both; page_map's lock after.
//! fork() takes them all in that order (atfork prepare) and releases them in
//! parent and child.
//!
//! Detection: a pointer that page_map does not know, one inside a block, one
//! whose run is free, and a small block freed twice (its first word holds the
//! canary `address ^ secret` while it is free; hmalloc clears that word when
//! it hands the block out) are reported with one line naming the call, then
//! abort(). Never silent corruption.
//!
//! Trade-off: free pages are purged (MADV_DONTNEED) once they have been free
//! for a whole `decay_ns` interval, or all at once (but the run just freed)
//! when a pool holds more than its cap of them — at most once per
//! `cap_purge_ns` below the cap plus `hard_extra_pages`; checked only when
//! pages are freed — no background thread. The cap is the room under the
//! recent peak: the pages freed since the most pages in use over the last one
//! to two decay intervals, between `dirty_max_pages` (1 MiB) and
//! `dirty_room_max_pages` (1 GiB). So a load that frees and takes back pages
//! keeps them (the pages it will take again are ones it just had), while
//! dirty pages never lift a pool's resident pages above that peak by more than
//! the base cap. Once the pages in use stayed below 1/4 of the peak for
//! `shrink_delay_ns` (200 ms), the pool is shrinking, not churning: the cap is
//! half the pages in use, so a program that freed what it had gets its pages
//! purged at its first free of a page run after that; a shorter drop (all of a
//! program's threads exiting, the next ones starting) keeps them. A program
//! that frees some and then idles keeps at most what it freed until its next
//! free after a decay tick, as with jemalloc's decay without its background
//! thread. A cap purge skips ranges shorter than `purge_range_min_pages` when
//! the longer ones suffice, and a new run is taken from dirty pages first,
//! anywhere in the pool (`allocRunLocked`), so fresh pages are faulted in only
//! when no resident free span fits. Measured (mimalloc-bench, 2 threads):
//! rptest made 19-37k page faults per run with a cap that grew only after
//! purges were undone (from 1 MiB, halved at each quiet tick), 9-26k so;
//! mstress 18-25k, 8-16k so (mimalloc 4-5k; tcmalloc 6k). mimalloc's
//! test-stress (32 threads re-created 50 times) with a 32 MiB cap and an
//! immediate shrink: 1.76M faults, 9.0-9.4 s (glibc 8.2-8.6 s); 0.14-0.26M,
//! 5.9-6.4 s so; xmalloc-test 570-650k -> 13-37k faults.
const std = @import("std");
const builtin = @import("builtin");
const assert = std.debug.assert;
const linux = std.os.linux;
const size_class = @import("size_class.zig");
const page_map = @import("page_map.zig");
const chunk_mod = @import("chunk.zig");
const slab = @import("slab.zig");
const thread_cache = @import("thread_cache.zig");
const chunk_source = @import("chunk_source.zig");
const huge = @import("huge.zig");
const report = @import("report.zig");
const Policy = @import("placement").policy.Policy;
const Lock = @import("lock.zig").Lock;
const bulk_bytes = @import("bulk_bytes.zig");

const Chunk = chunk_mod.Chunk;
const Run = chunk_mod.Run;
pub const ChunkSource = chunk_source.ChunkSource;
pub const max_pools = thread_cache.max_pools;
pub const page_bytes = chunk_mod.page_bytes;

/// Largest block served from a chunk's pages; bigger ones are huge.
pub const large_max_bytes: usize = 2 * 1024 * 1024;
/// Largest alignment served inside a chunk; bigger ones are huge.
const large_align_max_bytes: usize = 1024 * 1024;
/// The largest size or alignment served: 64 TiB (x86-64's user space is 128
/// TiB). Checked once, where a request leaves the small classes: every entry
/// (alloc, allocAligned, allocZeroed, realloc, hmalloc) sends anything larger
/// than 32 KiB, and any alignment above a page, to `allocPages`, so no
/// rounding after it (to pages, to an alignment, a huge block's header page)
/// can wrap around; a small request (≤ 32 KiB) cannot.
pub const request_max_bytes: usize = 1 << 46;
/// Free-but-resident pages a pool may always hold before it purges them all: the
/// smallest cap, 1 MiB (python3 under memtier, bench/py_objects.py, kept the same
/// peak RSS with it as with 256 KiB, 36.2-36.7 MiB, and 37.7 MiB at 2 MiB; with the
/// room under the peak as the cap, 41.6 MiB before and after, glibc 39.3, page
/// faults 30.7k -> 23.5k). Freeing never purges the run just freed
/// (freeRunLocked), so cycling one block of any size stays free of page faults.
pub const dirty_max_pages: usize = 256;
/// Over the cap, purging waits for `cap_purge_ns` since the last one unless
/// the cap plus `hard_extra_pages` are dirty. The larson workload (thread caches
/// of exiting threads emptying slabs) made 4,414 madvise calls per run, 3,621
/// with the wait; python3's peak RSS did not move.
const cap_purge_ns: u64 = 10_000_000;
/// The largest cap: what a program that frees some memory and then idles may keep resident
/// (1 GiB; its pages still go back one to two decay intervals after they were freed, at the
/// pool's next free of a page run, as with jemalloc's decay without its background thread). At
/// 32 MiB, mimalloc's test-stress (32 threads re-created 50 times, ~130 MiB each round) purged
/// each round's pages at its end and faulted them in again in the next: 1.8M faults, 346k
/// madvise calls, 1.15x glibc's time; 0.2-0.3M faults, 0.75x, at 256 MiB. The older mstress of
/// mimalloc-bench at 32 threads (~300 MiB in use at a round's peak, 25 MiB at its end) still
/// purged 1.7M pages per run at 256 MiB (3.3M faults, 16 s; tcmalloc 0.14M, 10.3 s): at 1 GiB,
/// 0.22-0.34M pages, 0.59-0.65M faults, 8.7-9.6 s, the same peak RSS (the room is under the peak).
const dirty_room_max_pages: usize = 262144;
/// A pool whose pages in use stayed below 1/this of their peak for `shrink_delay_ns` keeps at
/// most half of them dirty (`effectiveCapPages`). 1/4, not 1/8: once a stress test's threads
/// had freed everything, each pool still had 11-12% of its peak in runs (slabs kept empty for
/// their classes, slabs pinned by a live thread's cache), and kept 26 MiB dirty per pool.
const shrunk_share: usize = 4;
/// How long a pool stays below 1/`shrunk_share` of its peak before it counts as shrinking: a
/// drop shorter than this is churn (all of test-stress's threads exit at the end of a round,
/// and the next round's threads start at once), a longer one a program that freed its memory.
const shrink_delay_ns: u64 = 200_000_000;
/// Over the cap plus this many pages (1 MiB), a purge does not wait for `cap_purge_ns`.
const hard_extra_pages: usize = 256;
/// A cap purge skips dirty ranges shorter than this when the longer ones bring the pool to
/// half its cap (`purgeAllBut`). mimalloc-bench's mstress (threads re-created 25 times, their
/// slabs emptied at each exit) made 2,159 madvise calls per run, 893 of them for one page.
const purge_range_min_pages: usize = 16;
/// Free pages older than one to two of these intervals are purged.
const decay_ns: u64 = 1_000_000_000;
/// Bin shards per pool (registry.zig assigns each thread the one with the fewest threads and
/// uses `shard_count` ≤ this of them): two threads running at once then cut their blocks from
/// different slabs. Sharing slabs put both threads' small blocks on one cache line, and every
/// free (which writes the block's first word) missed on the line the other core had just
/// written: glibc's bench-malloc-thread made 157M iterations with 1 thread, 158M with 2
/// (mimalloc: 150M, 301M).
pub const max_shards = 8;

comptime {
    assert(large_max_bytes / page_bytes <= Chunk.usable_pages);
}

pub const Stats = struct {
    mapped_bytes: std.atomic.Value(u64) = .init(0),
    huge_bytes: std.atomic.Value(u64) = .init(0),
    mbind_calls: std.atomic.Value(u64) = .init(0),
};

pub const Pool = struct {
    slot: u8,
    policy: Policy,
    source: ChunkSource,
    /// Whether a clean page (free, not dirty) reads as zero: true for pools
    /// born anonymous. A file-backed heap keeps old data in purged pages
    /// (MADV_DONTNEED on a shared mapping drops the mapping, not the file's
    /// contents), also after fork turned it into private memory.
    clean_pages_are_zero: bool = false,
    page_lock: Lock = .{},
    chunks: ?*Chunk = null,
    /// A chunk likely to have room (where the last page run came from).
    hint: ?*Chunk = null,
    dirty_pages: usize = 0,
    last_purge_ns: u64 = 0,
    last_cap_purge_ns: u64 = 0,
    /// Pages in runs (slabs and large blocks), the most since the last decay tick, and the
    /// most in the interval before it, for `effectiveCapPages`.
    used_pages: usize = 0,
    peak_used_pages: usize = 0,
    previous_peak_used_pages: usize = 0,
    /// When the pages in use last fell below 1/`shrunk_share` of the recent peak (0: they are
    /// not below it), and whether they have stayed below for `shrink_delay_ns` since.
    shrunk_since_ns: u64 = 0,
    shrinking: bool = false,
    huge_list: ?*huge.Huge = null,
    /// Freed huge mappings kept for reuse (huge.zig), under `page_lock`.
    huge_cache: huge.Cache = .{},
    stats: Stats = .{},
    /// One bin per class in each shard (`max_shards`; registry.zig uses `shard_count` of them).
    bins: [max_shards][size_class.count]slab.Bin,
    /// Per class, the empty slabs its bins keep in all shards (slab.Bin.class_empty_count).
    empty_slabs: [size_class.count]std.atomic.Value(u32),

    /// Allocates `size` bytes (malloc semantics: size 0 gives a unique block).
    pub inline fn alloc(pool: *Pool, size: usize) ?[*]u8 {
        if (size <= size_class.small_max_bytes) {
            @branchHint(.likely);
            return pool.allocSmall(size_class.classOf(size));
        }
        return pool.allocPages(size, page_bytes);
    }

    pub fn allocZeroed(pool: *Pool, n: usize, size: usize) ?[*]u8 {
        const total = std.math.mul(usize, n, size) catch return report.fail(.NOMEM);
        if (total > request_max_bytes) return report.fail(.NOMEM);
        if (total > large_max_bytes) return huge.alloc(pool, total, page_bytes, true); // zeroes a reused mapping only
        if (total > size_class.small_max_bytes and pool.clean_pages_are_zero) return pool.allocPagesZeroed(total);
        const p = pool.alloc(total) orelse return null;
        bulk_bytes.zero(p[0..@max(total, 1)]);
        return p;
    }

    /// A zeroed large block that writes only the pages that may hold old data
    /// (dirty ones): calloc of a big, sparsely used table (Python's obmalloc
    /// map, say) then costs no RSS for the pages never written, as with
    /// glibc's calloc of fresh memory (python3 under memtier: -380 KiB).
    fn allocPagesZeroed(pool: *Pool, size: usize) ?[*]u8 {
        assert(size <= large_max_bytes);
        const pages = std.mem.alignForward(usize, size, page_bytes) / page_bytes;
        var dirty: [large_max_bytes / page_bytes / 64]u64 = undefined;
        const base = pool.allocLarge(pages, 1, &dirty) orelse return report.fail(.NOMEM);
        var page: usize = 0;
        while (chunk_mod.firstSet(&dirty, page, pages)) |first| {
            const end = chunk_mod.firstClear(&dirty, first, pages) orelse pages;
            bulk_bytes.zero(@as([*]u8, @ptrFromInt(base + first * page_bytes))[0 .. (end - first) * page_bytes]);
            page = end;
        }
        return @ptrFromInt(base);
    }

    /// `alignment` must be a power of two (checked by the caller).
    pub fn allocAligned(pool: *Pool, alignment: usize, size: usize) ?[*]u8 {
        assert(std.math.isPowerOfTwo(alignment));
        // Every class from 16 B up is a multiple of 16.
        if (alignment <= size_class.min_alignment_bytes) return pool.alloc(@max(size, alignment));
        if (alignment <= page_bytes and size <= size_class.small_max_bytes) {
            const padded = std.mem.alignForward(usize, @max(size, 1), alignment);
            if (padded <= size_class.small_max_bytes) {
                const class = size_class.classOf(padded);
                assert(size_class.sizeOf(class) % alignment == 0);
                return pool.allocSmall(class);
            }
        }
        return pool.allocPages(size, @max(alignment, page_bytes));
    }

    /// A block of small class `class` (alloc with the class already known).
    pub inline fn allocClass(pool: *Pool, class: size_class.ClassIndex) ?[*]u8 {
        return pool.allocSmall(class);
    }

    /// The lock-free path. Every way off it is a call in tail position
    /// (`allocSmallSlow`), so the fast path needs no saved registers.
    inline fn allocSmall(pool: *Pool, class: size_class.ClassIndex) ?[*]u8 {
        const tc = thread_cache.current() orelse return pool.allocSmallSlow(class);
        const cache = tc.pools[pool.slot] orelse return pool.allocSmallSlow(class);
        return popOr(cache.bin(class)) orelse pool.allocSmallSlow(class);
    }

    fn allocSmallSlow(pool: *Pool, class: size_class.ClassIndex) ?[*]u8 {
        @branchHint(.cold);
        const cache = cacheOf(pool) orelse return pool.allocSmallUncached(class);
        return popOr(cache.bin(class)) orelse pool.refill(cache, class);
    }

    fn refill(pool: *Pool, cache: *thread_cache.PoolCache, class: size_class.ClassIndex) ?[*]u8 {
        @branchHint(.cold);
        const cbin = cache.bin(class);
        assert(cbin.count == 0);
        const want = cbin.capacity / 2;
        // The thread's shard: cacheOf made this thread's cache current before the cache came.
        const shard = if (thread_cache.current()) |tc| tc.shard else 0;
        const got = pool.takeBlocks(shard, class, cbin.items[0..want]);
        if (got == 0) return report.fail(.NOMEM);
        cbin.count = @intCast(got - 1);
        const block = cbin.items[got - 1];
        @as(*usize, @ptrFromInt(block)).* = 0;
        return @ptrFromInt(block);
    }

    fn allocSmallUncached(pool: *Pool, class: size_class.ClassIndex) ?[*]u8 {
        var one: [1]usize = undefined;
        if (pool.takeBlocks(0, class, &one) == 0) return report.fail(.NOMEM);
        @as(*usize, @ptrFromInt(one[0])).* = 0;
        return @ptrFromInt(one[0]);
    }

    /// Fills `out` (at least one block) from the class's bin in `shard`, adding a slab if needed.
    fn takeBlocks(pool: *Pool, shard: u8, class: size_class.ClassIndex, out: []usize) usize {
        assert(shard < max_shards);
        const bin = &pool.bins[shard][class];
        bin.lock.lock();
        defer bin.lock.unlock();
        var n = bin.take(out);
        if (n == 0) {
            const g = size_class.geometry(class);
            pool.page_lock.lock();
            const run = pool.allocRunLocked(g.pages, 1, null);
            pool.page_lock.unlock();
            bin.addSlab(run orelse return 0);
            n = bin.take(out);
        }
        return n;
    }

    /// Gives blocks back to their slabs' bins (called with the cache's oldest half): one lock
    /// per run of blocks of one shard (a thread's own blocks are mostly of its shard; blocks
    /// freed by other threads may be of theirs).
    pub fn putBlocks(pool: *Pool, class: size_class.ClassIndex, blocks: []const usize) void {
        var start: usize = 0;
        while (start < blocks.len) {
            const shard = shardOf(blocks[start]);
            var end = start + 1;
            while (end < blocks.len and shardOf(blocks[end]) == shard) end += 1;
            const bin = &pool.bins[shard][class];
            bin.lock.lock();
            defer bin.lock.unlock();
            bin.put(blocks[start..end], pool);
            start = end;
        }
    }

    /// The shard of the slab holding a small block that some cache holds (so the slab lives,
    /// and its `shard` does not change: read without a lock).
    inline fn shardOf(block: usize) u8 {
        return Chunk.fromAddress(block).runOf(block).?.shard;
    }

    /// Every bin of every shard to its empty state.
    pub fn resetBins(pool: *Pool) void {
        for (&pool.empty_slabs) |*count| count.* = .init(0);
        for (&pool.bins, 0..) |*shard_bins, shard| {
            for (shard_bins, 0..) |*bin, class| bin.* = .{
                .class = @intCast(class),
                .shard = @intCast(shard),
                .class_empty_count = &pool.empty_slabs[class],
            };
        }
    }

    /// slab.Bin.put's callback: an empty slab's pages go back to its chunk.
    pub fn releaseSlab(pool: *Pool, run: *Run) void {
        pool.page_lock.lock();
        defer pool.page_lock.unlock();
        pool.freeRunLocked(run);
    }

    /// Where every request beyond the small classes enters: its size and
    /// alignment are checked here, once (see `request_max_bytes`).
    fn allocPages(pool: *Pool, size: usize, alignment: usize) ?[*]u8 {
        if (size > request_max_bytes or alignment > request_max_bytes) return report.fail(.NOMEM);
        // Size 0 (aligned to more than a page) still takes a page: there is
        // no run of 0 pages, and a huge block must end after its start.
        const bytes = @max(size, 1);
        if (bytes > large_max_bytes or alignment > large_align_max_bytes)
            return huge.alloc(pool, bytes, alignment, false);
        const pages = std.mem.alignForward(usize, bytes, page_bytes) / page_bytes;
        assert(pages >= 1);
        return @ptrFromInt(pool.allocLarge(pages, alignment / page_bytes, null) orelse return report.fail(.NOMEM));
    }

    /// A large block's page run, its address (null: no memory); `dirty_out`
    /// as allocRunLocked's.
    fn allocLarge(pool: *Pool, pages: usize, align_pages: usize, dirty_out: ?[]u64) ?usize {
        pool.page_lock.lock();
        defer pool.page_lock.unlock();
        const run = pool.allocRunLocked(pages, align_pages, dirty_out) orelse return null;
        run.kind = .large;
        return run.base();
    }

    /// A run of `pages`; `dirty_out`, if given, learns which of its pages
    /// were dirty (chunk.dirtyPagesOf) before they are taken.
    fn allocRunLocked(pool: *Pool, pages: usize, align_pages: usize, dirty_out: ?[]u64) ?*Run {
        pool.page_lock.assertHeld();
        // Dirty pages first, anywhere in the pool: a run taken from clean pages while dirty
        // ones wait lifts the pool's resident pages (first fit alone did, by up to the cap).
        if (pool.dirty_pages >= pages) {
            var it = pool.chunks;
            while (it) |c| : (it = c.next) {
                if (c.allocRunOnDirty(pages, align_pages)) |run| return pool.took(c, run, dirty_out);
            }
        }
        if (pool.hint) |c| if (c.allocRun(pages, align_pages)) |run| return pool.took(c, run, dirty_out);
        var it = pool.chunks;
        while (it) |c| : (it = c.next) {
            if (c.allocRun(pages, align_pages)) |run| {
                pool.hint = c;
                return pool.took(c, run, dirty_out);
            }
        }
        const c = pool.newChunkLocked() orelse return null;
        pool.hint = c;
        return pool.took(c, c.allocRun(pages, align_pages).?, dirty_out);
    }

    inline fn took(pool: *Pool, c: *Chunk, run: *Run, dirty_out: ?[]u64) *Run {
        if (dirty_out) |out| c.dirtyPagesOf(run, out);
        pool.dirty_pages -= c.takeDirty(run);
        pool.used_pages += run.pages;
        pool.peak_used_pages = @max(pool.peak_used_pages, pool.used_pages);
        if (pool.shrunk_since_ns != 0 and !pool.belowShrinkLine()) pool.endShrink();
        pool.assertDirtyPages();
        return run;
    }

    /// Debug builds: `dirty_pages` (written here as runs are taken, freed and
    /// purged) equals the dirty bits of the pool's chunks (written by chunk.zig).
    fn assertDirtyPages(pool: *const Pool) void {
        if (!std.debug.runtime_safety) return;
        var sum: usize = 0;
        var it = pool.chunks;
        while (it) |c| : (it = c.next) sum += c.dirtyPages();
        assert(sum == pool.dirty_pages);
    }

    fn newChunkLocked(pool: *Pool) ?*Chunk {
        pool.page_lock.assertHeld();
        var e: linux.E = .SUCCESS;
        const base = chunk_source.map(&pool.source, &pool.policy, chunk_mod.chunk_bytes, &e, &pool.stats.mbind_calls) catch {
            report.setErrno(e);
            return null;
        };
        page_map.register(base, chunk_mod.chunk_bytes, base) catch {
            chunk_source.unmap(&pool.source, base, chunk_mod.chunk_bytes);
            report.setErrno(.NOMEM);
            return null;
        };
        const c = Chunk.init(base, pool, pool.slot);
        c.next = pool.chunks;
        pool.chunks = c;
        _ = pool.stats.mapped_bytes.fetchAdd(chunk_mod.chunk_bytes, .monotonic);
        return c;
    }

    fn freeRunLocked(pool: *Pool, run: *Run) void {
        pool.page_lock.assertHeld();
        const c = run.chunk();
        const start = c.runStart(run);
        const pages: usize = run.pages;
        pool.dirty_pages += c.freeRun(run);
        defer pool.assertDirtyPages();
        // Over the cap: purge all but the run just freed, which the next
        // allocation of its size takes again (a program cycling one block
        // larger than the cap would otherwise fault all its pages in anew
        // each time: 1 MiB from Deno, 21 -> 592 us per hcalloc).
        const now = monotonicNs();
        pool.used_pages -= pages;
        pool.noteShrink(now);
        const cap = pool.effectiveCapPages();
        if (pool.dirty_pages > cap) {
            // At most one such purge per `cap_purge_ns` while under the hard
            // limit: churn (a server's slabs emptying and filling) otherwise
            // purges and refaults the same pages thousands of times a second.
            if (pool.dirty_pages > pool.dirtyHardLimitPages() or now -% pool.last_cap_purge_ns >= cap_purge_ns) {
                pool.last_cap_purge_ns = now;
                pool.purgeAllBut(c, start, pages);
                return;
            }
        }
        if (now -% pool.last_purge_ns > decay_ns) {
            // A decay tick: purge what has been free since the last tick.
            var it = pool.chunks;
            while (it) |chunk| : (it = chunk.next) pool.dirty_pages -= chunk.purgeOld();
            huge.expireLocked(pool, now);
            pool.last_purge_ns = now;
            pool.previous_peak_used_pages = pool.peak_used_pages;
            pool.peak_used_pages = pool.used_pages;
        }
    }

    /// Whether the pages in use are below 1/`shrunk_share` of the recent peak.
    inline fn belowShrinkLine(pool: *const Pool) bool {
        return pool.used_pages * shrunk_share < @max(pool.peak_used_pages, pool.previous_peak_used_pages);
    }

    /// The pages in use are back above the shrink line: churn, not shrinking.
    inline fn endShrink(pool: *Pool) void {
        pool.shrunk_since_ns = 0;
        pool.shrinking = false;
    }

    /// Updates `shrunk_since_ns` and `shrinking` after pages were freed at `now`.
    pub fn noteShrink(pool: *Pool, now: u64) void {
        pool.page_lock.assertHeld();
        if (!pool.belowShrinkLine()) {
            pool.endShrink();
        } else if (pool.shrunk_since_ns == 0) {
            pool.shrunk_since_ns = @max(now, 1);
        } else if (now -% pool.shrunk_since_ns >= shrink_delay_ns and !pool.shrinking) {
            pool.shrinking = true;
            huge.trimLocked(pool);
        }
    }

    /// The most dirty pages the pool holds after a free (but the run just freed): a purge
    /// never waits beyond the cap plus `hard_extra_pages`.
    pub fn dirtyHardLimitPages(pool: *const Pool) usize {
        return pool.effectiveCapPages() + hard_extra_pages;
    }

    /// The cap in force: the pages freed since the recent peak of the pages in use (the
    /// most over this decay interval and the one before), so dirty pages never lift the
    /// pool's resident pages above that peak by more than the base cap `dirty_max_pages`
    /// (the floor), and at most `dirty_room_max_pages`. A pool that stayed below
    /// 1/`shrunk_share` of that peak for `shrink_delay_ns` is shrinking, not churning: it keeps
    /// at most half the pages in use, so a program that freed what it had gives the pages back
    /// at its first free of a page run after that delay.
    inline fn effectiveCapPages(pool: *const Pool) usize {
        assert(pool.peak_used_pages >= pool.used_pages);
        const peak = @max(pool.peak_used_pages, pool.previous_peak_used_pages);
        const room = if (pool.shrinking)
            pool.used_pages / 2
        else
            peak - pool.used_pages;
        return std.math.clamp(room, dirty_max_pages, dirty_room_max_pages);
    }

    /// Purges dirty pages of the pool, chunk by chunk, until it holds at most half its cap
    /// besides [start, start + pages) of `keep`, which it never purges. Stopping there matters
    /// when the cap is big: mimalloc-bench's mstress with 32 threads fell from 300 MiB in use to
    /// 25 MiB at the end of each round, and purging every chunk took 260 of its 256+ MiB of
    /// dirty pages each time (the next round faulted them in again).
    fn purgeAllBut(pool: *Pool, keep: *Chunk, start: usize, pages: usize) void {
        const target = pages + pool.effectiveCapPages() / 2;
        // The ranges of `purge_range_min_pages` first: if they bring the pool to half its cap,
        // the short ones (pages between slabs) stay dirty for the slabs that come next.
        for ([_]usize{ purge_range_min_pages, 1 }) |min_range| {
            var it = pool.chunks;
            while (it) |c| : (it = c.next) {
                if (pool.dirty_pages <= target) break;
                pool.dirty_pages -= c.purgeExcept(if (c == keep) start else 0, if (c == keep) pages else 0, min_range);
            }
            if (pool.dirty_pages <= target) break;
        }
        assert(pool.dirty_pages <= target);
        pool.assertDirtyPages();
    }

    /// Frees a large block (the run's first byte), called from `free`.
    fn freeLarge(pool: *Pool, run: *Run) void {
        pool.page_lock.lock();
        defer pool.page_lock.unlock();
        assert(run.kind == .large);
        pool.freeRunLocked(run);
    }

    /// fork() child: a file-backed pool copies its memory into private pages
    /// and goes on with anonymous memory (see chunk_source.privatize).
    pub fn privatizeAfterFork(pool: *Pool) void {
        if (pool.source != .file) return;
        var it = pool.chunks;
        while (it) |c| : (it = c.next) {
            if (!chunk_source.privatize(@intFromPtr(c), chunk_mod.chunk_bytes)) privatizeFailed();
        }
        // Cached huge mappings still map the parent's file: drop them here
        // without punching holes in it (the parent's pages).
        for (&pool.huge_cache.entries) |*entry| {
            const e = entry.* orelse continue;
            entry.* = null;
            _ = pool.stats.huge_bytes.fetchSub(e.map_bytes, .monotonic);
            huge.noteSegments(-@as(isize, e.segment_count));
            _ = linux.munmap(@ptrFromInt(e.map_base), e.map_bytes);
        }
        pool.huge_cache.bytes = 0;
        var h = pool.huge_list;
        while (h) |x| : (h = x.next) {
            if (!chunk_source.privatize(x.map_base, x.map_bytes)) privatizeFailed();
            // The rest of its last granule: the parent's file, never used here.
            const tail = std.mem.alignForward(usize, x.map_bytes, chunk_source.granule_bytes) - x.map_bytes;
            if (tail > 0) _ = linux.munmap(@ptrFromInt(x.map_base + x.map_bytes), tail);
        }
        pool.source.file.unmapFreeInChild();
        pool.source = .anonymous;
    }

    fn privatizeFailed() noreturn {
        report.writeAll("hmalloc: fork: cannot copy the file-backed heap into the child\n");
        std.c._exit(127);
    }

    /// Unmaps every chunk and huge block of the pool. The caller makes sure
    /// no thread uses it any more (registry.destroy drops the threads' caches).
    pub fn releaseAll(pool: *Pool) void {
        pool.page_lock.lock();
        defer pool.page_lock.unlock();
        var it = pool.chunks;
        while (it) |c| {
            it = c.next;
            page_map.unregister(@intFromPtr(c), chunk_mod.chunk_bytes);
            chunk_source.unmap(&pool.source, @intFromPtr(c), chunk_mod.chunk_bytes);
        }
        pool.chunks = null;
        pool.hint = null;
        pool.dirty_pages = 0;
        pool.used_pages = 0;
        while (pool.huge_list) |h| huge.releaseLocked(pool, h);
        huge.dropCacheLocked(pool);
        pool.resetBins();
        pool.stats.mapped_bytes.store(0, .monotonic);
    }
};

/// libc's clock_gettime: the vDSO, no system call (std.os.linux's is a raw
/// syscall: it cost 2-4 us per large block, measured from Deno).
pub fn monotonicNs() u64 {
    var ts: std.c.timespec = undefined;
    _ = std.c.clock_gettime(.MONOTONIC_COARSE, &ts);
    return @as(u64, @intCast(ts.sec)) * 1_000_000_000 + @as(u64, @intCast(ts.nsec));
}

// ---- pointer → owner, and the operations on any pool's pointer ----------------

/// The free canary's key, random per process (set by registry.init).
pub var secret: usize = 0x9e37_79b9_7f4a_7c15;

pub const Caller = report.Caller;

pub const Owner = union(enum) {
    small: struct { pool: *Pool, class: size_class.ClassIndex },
    large: struct { pool: *Pool, run: *Run },
    huge: *huge.Huge,
};

/// Whether `address` lies in memory some pool owns (a chunk or huge mapping).
/// A foreign pointer gives false without touching memory near it.
pub inline fn isOurs(address: usize) bool {
    return page_map.lookup(address) != 0;
}

/// Classifies `address` or reports it (and aborts) as not a live block.
pub fn ownerOf(address: usize, caller: Caller) Owner {
    const entry = page_map.lookup(address);
    if (entry == 0) report.notOurs(caller, address);
    if (entry & page_map.huge_tag != 0) {
        const h: *huge.Huge = @ptrFromInt(entry & ~page_map.huge_tag);
        if (address != h.user) report.invalidPointer(caller, address, "not the start of a block");
        return .{ .huge = h };
    }
    const c: *Chunk = @ptrFromInt(entry);
    assert(c.magic == chunk_mod.chunk_magic);
    const run = c.runOf(address) orelse report.invalidPointer(caller, address, "not in use (freed already, or never allocated)");
    const pool: *Pool = @ptrCast(@alignCast(c.pool));
    switch (run.kind) {
        .slab => {
            const class = run.class;
            const base = @intFromPtr(c) + @as(usize, c.page_entries[c.pageIndex(address)].owner) * page_bytes;
            const index = size_class.regionIndex(class, address - base);
            if (base + index * size_class.sizeOf(class) != address)
                report.invalidPointer(caller, address, "not the start of a block");
            return .{ .small = .{ .pool = pool, .class = class } };
        },
        .large => {
            if (address != run.base()) report.invalidPointer(caller, address, "not the start of a block");
            return .{ .large = .{ .pool = pool, .run = run } };
        },
        .unused => report.invalidPointer(caller, address, "not in use (freed already, or never allocated)"),
    }
}

/// free(3) of any pool's block. NULL needs no test of its own on the fast
/// path: no chunk-table entry matches address 0 (see page_map.chunkOf).
pub inline fn free(ptr: ?*anyopaque, caller: Caller) void {
    const address = @intFromPtr(ptr);
    const hit = page_map.chunkOf(address) orelse return freeOffTable(address, caller);
    freeInChunk(address, hit, caller, null);
}

fn freeOffTable(address: usize, caller: Caller) void {
    @branchHint(.cold);
    if (address == 0) return;
    freeSlow(address, caller, null);
}

/// `free` for an interposer: a pointer no pool owns is handed to
/// `onForeign` instead of being reported; everything else is as `free`.
/// NULL is freed as nothing (and never reaches `onForeign`).
pub inline fn freeOrForeign(address: usize, caller: Caller, comptime onForeign: fn (usize) void) void {
    freeCounted(address, caller, onForeign, null);
}

/// Called with a block's pool slot and usable size just before the block is freed.
pub const FreeHook = ?fn (slot: u8, bytes: usize) void;

/// `freeOrForeign` for an interposer that counts bytes per pool. A small block pushed onto this
/// thread's cache (the common case) adds its size to the cache's `freed_bytes`, a counter its
/// owner takes when it needs it (no call, no other cache line: a hook on every free made the
/// two-tier free path 1.3 ns slower); every other block — one the cache cannot take, large,
/// huge — is told to `onFree` with its pool slot and usable size. The block's owner is found by
/// the same single chunk-table lookup as `free`'s common case.
pub inline fn freeCounted(address: usize, caller: Caller, comptime onForeign: fn (usize) void, comptime onFree: FreeHook) void {
    const hit = page_map.chunkOf(address) orelse return freeOffTableOrForeign(address, caller, onForeign, onFree);
    freeInChunk(address, hit, caller, onFree);
}

fn freeOffTableOrForeign(address: usize, caller: Caller, comptime onForeign: fn (usize) void, comptime onFree: FreeHook) void {
    @branchHint(.cold);
    if (address == 0) return;
    if (page_map.lookup(address) == 0) return onForeign(address);
    freeSlow(address, caller, onFree);
}

/// The common case, a small block in a chunk, checked inline with the same
/// rules as ownerOf; anything else (and any doubt) takes ownerOf's full path.
inline fn freeInChunk(address: usize, hit: page_map.ChunkHit, caller: Caller, comptime onFree: FreeHook) void {
    const c: *Chunk = @ptrFromInt(hit.base);
    const page = hit.offset >> size_class.page_shift;
    const entry = c.page_entries[page];
    const key: usize = entry.key; // 0: not a slab page
    if (key != 0) {
        @branchHint(.likely);
        const slab_offset = hit.offset - @as(usize, entry.owner) * page_bytes;
        if (size_class.isBlockStart(key, slab_offset)) {
            @branchHint(.likely);
            return freeSmall(c.slot, key, address, caller, onFree);
        }
    }
    return freeSlow(address, caller, onFree);
}

fn freeSlow(address: usize, caller: Caller, comptime onFree: FreeHook) void {
    @branchHint(.cold);
    const owner = ownerOf(address, caller);
    if (onFree) |hook| hook(ownedPool(owner).slot, ownedSize(owner));
    freeOwned(owner, address, caller);
}

/// Frees the block at `address` whose owner `ownerOf` returned.
pub inline fn freeOwned(owner: Owner, address: usize, caller: Caller) void {
    switch (owner) {
        .small => |s| freeSmall(s.pool.slot, size_class.keyOf(s.class), address, caller, null),
        .large => |l| l.pool.freeLarge(l.run),
        .huge => |h| huge.free(h),
    }
}

/// The usable size of the block `owner` describes.
pub inline fn ownedSize(owner: Owner) usize {
    return switch (owner) {
        .small => |s| size_class.sizeOf(s.class),
        .large => |l| @as(usize, l.run.pages) * page_bytes,
        .huge => |h| h.usableSize(),
    };
}

/// The pool of the block `owner` describes.
pub inline fn ownedPool(owner: Owner) *Pool {
    return switch (owner) {
        .small => |s| s.pool,
        .large => |l| l.pool,
        .huge => |h| h.pool,
    };
}

/// Pushes a small block of the pool in `slot` onto this thread's cache.
/// `key` is the block's class key (as a chunk's page entry says). Counting
/// (`onFree` given, see freeCounted): the push adds the block's size to the
/// cache's `freed_bytes`; the slow path tells `onFree` instead.
inline fn freeSmall(slot: u8, key: usize, address: usize, caller: Caller, comptime onFree: FreeHook) void {
    const word: *usize = @ptrFromInt(address);
    const canary = address ^ secret;
    if (word.* == canary) report.invalidPointer(caller, address, "double free");
    const tc = thread_cache.current() orelse return freeSmallSlow(key, address, onFree);
    const cache = tc.pools[slot] orelse return freeSmallSlow(key, address, onFree);
    const bin = cache.binByKey(key);
    const count = bin.count;
    if (count == bin.capacity) return freeSmallSlow(key, address, onFree);
    bin.items[count] = address;
    bin.count = count + 1;
    if (onFree != null) cache.freed_bytes +%= size_class.sizeOfKey(key);
    word.* = canary; // last: it may not alias the loads above
}

/// freeSmall off its fast path: no cache yet, or a full bin. A small block
/// always lies in a chunk, which names its pool.
fn freeSmallSlow(key: usize, address: usize, comptime onFree: FreeHook) void {
    @branchHint(.cold);
    const class = size_class.classOfKey(key);
    const pool: *Pool = @ptrCast(@alignCast(Chunk.fromAddress(address).pool));
    if (onFree) |hook| hook(pool.slot, size_class.sizeOf(class));
    const word: *usize = @ptrFromInt(address);
    const cache = cacheOf(pool) orelse {
        word.* = address ^ secret;
        pool.putBlocks(class, &.{address});
        return;
    };
    const bin = cache.bin(class);
    if (bin.count == bin.capacity) flushHalf(pool, class, bin);
    word.* = address ^ secret;
    bin.items[bin.count] = address;
    bin.count += 1;
}

/// A full cache bin gives its older half back to the pool.
fn flushHalf(pool: *Pool, class: size_class.ClassIndex, bin: *thread_cache.CacheBin) void {
    @branchHint(.cold);
    assert(bin.count == bin.capacity and bin.capacity % 2 == 0);
    const half = bin.capacity / 2;
    pool.putBlocks(class, bin.items[0..half]);
    @memcpy(bin.items[0..half], bin.items[half..bin.count]);
    bin.count = half;
}

pub fn usableSize(ptr: ?*anyopaque, caller: Caller) usize {
    const address = @intFromPtr(ptr orelse return 0);
    return ownedSize(ownerOf(address, caller));
}

pub fn poolOf(address: usize, caller: Caller) *Pool {
    return ownedPool(ownerOf(address, caller));
}

/// realloc(3) on any pool's block; the new block stays in the same pool.
pub fn realloc(ptr: ?*anyopaque, size: usize, caller: Caller, default_pool: *Pool) ?[*]u8 {
    const address = @intFromPtr(ptr orelse return default_pool.alloc(size));
    const owner = ownerOf(address, caller);
    const old_size = ownedSize(owner);
    const pool = ownedPool(owner);
    // Stay in place when the block already has the right size class, or shrinks to no less
    // than half (mimalloc's rule; glibc shrinks in place always): a block cycling between 8
    // and 16 KiB was copied every time, 108 ns a realloc, now 12 (mimalloc 5).
    switch (owner) {
        .small => if ((size <= old_size and size >= old_size / 2) or
            (size <= size_class.small_max_bytes and size_class.usableSizeFor(size) == old_size)) return @ptrCast(ptr),
        .large => if (size > size_class.small_max_bytes and size <= old_size and size > old_size / 2) return @ptrCast(ptr),
        .huge => |h| {
            if (huge.resize(h, size)) return @ptrCast(ptr);
            if (size > old_size) if (huge.grow(h, size)) |grown| return grown;
        },
    }
    const fresh = pool.alloc(size) orelse return null;
    bulk_bytes.copy(fresh[0..@min(size, old_size)], @as([*]const u8, @ptrCast(ptr))[0..@min(size, old_size)]);
    freeOwned(owner, address, caller);
    return fresh;
}

// ---- thread caches ------------------------------------------------------------

const registry = @import("registry.zig");

/// The newest block of `bin` (its free canary cleared), or null when the
/// bin has none.
inline fn popOr(bin: *thread_cache.CacheBin) ?[*]u8 {
    const count = bin.count;
    if (count == 0) return null;
    const block = bin.items[count - 1];
    bin.count = count - 1;
    @as(*usize, @ptrFromInt(block)).* = 0; // clear the free canary
    return @ptrFromInt(block);
}

/// A block of the class whose key is `key` from this thread's cache of the pool in `slot`, if
/// the cache exists and holds one (libmemtier's two-tier fast path); null otherwise, and
/// nothing changed: the caller then takes the full path.
pub inline fn allocCachedByKey(slot: u8, key: usize) ?[*]u8 {
    return allocCachedIn(thread_cache.current() orelse return null, slot, key);
}

/// allocCachedByKey for a caller that holds this thread's cache `tc`.
pub inline fn allocCachedIn(tc: *thread_cache.ThreadCache, slot: u8, key: usize) ?[*]u8 {
    const cache = tc.pools[slot] orelse return null;
    return popOr(cache.binByKey(key));
}

/// hmalloc(): the default pool's allocation. The thread's cache of the
/// default pool is the start of its ThreadCache, so the common path needs
/// neither the pool nor a slot lookup; sizes up to 4 KiB (the table's) are
/// tested first, so they pay one compare.
pub inline fn allocDefault(size: usize) ?[*]u8 {
    if (size <= size_class.lookup_max_bytes) {
        @branchHint(.likely);
        return allocDefaultSmall(size_class.keyOfLookup(size));
    }
    if (size <= size_class.small_max_bytes) return allocDefaultSmall(size_class.keyOf(size_class.classByArithmetic(size)));
    return registry.defaultPool().allocPages(size, page_bytes);
}

inline fn allocDefaultSmall(key: usize) ?[*]u8 {
    const tc = thread_cache.current() orelse return allocDefaultSlow(key);
    return popOr(tc.default.binByKey(key)) orelse allocDefaultSlow(key);
}

fn allocDefaultSlow(key: usize) ?[*]u8 {
    @branchHint(.cold);
    return registry.defaultPool().allocSmallSlow(size_class.classOfKey(key));
}

/// This thread's cache of `pool`, created on first use; null while the thread
/// is setting its cache up (re-entrant calls go to the bins directly).
inline fn cacheOf(pool: *Pool) ?*thread_cache.PoolCache {
    const tc = thread_cache.current() orelse return registry.initThreadCache(pool);
    return tc.pools[pool.slot] orelse registry.initPoolCache(tc, pool);
}

/// Gives every cached block of this thread's `cache` back to `pool`.
pub fn flushCache(pool: *Pool, cache: *thread_cache.PoolCache) void {
    for (cache.bins(), 0..) |*bin, class| {
        if (bin.count == 0) continue;
        pool.putBlocks(@intCast(class), bin.items[0..bin.count]);
        bin.count = 0;
    }
}

comptime {
    if (builtin.target.cpu.arch != .x86_64 and builtin.target.cpu.arch != .aarch64)
        @compileError("hmalloc supports 64-bit Linux on x86_64 and aarch64");
}
