//! The registry: process-wide allocator state — the pools, the default pool,
//! thread-cache lifecycles, and fork safety.
//!
//! What: up to `max_pools` pools live in numbered slots; slot 0 is the
//! default pool (hmalloc's), made on first use or by the library constructor
//! with the policy from the environment (policy_env.zig, which ends the
//! program on a bad one). A pool's slot indexes each thread's array of
//! caches; destroying a pool also destroys every thread's cache of it (the
//! registry lists all live thread caches), so that no cache can hand out a
//! block of a dead pool and the hot paths need no staleness check.
//!
//! Thread caches are created on a thread's first allocation and registered
//! with a pthread key whose destructor flushes them when the thread exits.
//! Creating them may re-enter the allocator (glibc can allocate in
//! pthread_setspecific under an interposer), so the thread marks itself busy
//! meanwhile and nested calls use the bins directly.
//!
//! fork(): the prepare handler takes every lock (registry, then each pool's
//! bins and page lock, then page_map's) so that no lock is held mid-update
//! by a thread that will not exist in the child; parent and child release
//! them. The child keeps the forking thread's caches; other threads' caches
//! are unreachable there (their memory stays allocated, as in glibc).
//!
//! A file-backed pool's heap (an FS_DAX tier) is a MAP_SHARED mapping: the
//! child copies it into private pages (privatizeAfterFork), and that copy
//! must be of the heap as it was at the fork. So, when such a pool exists,
//! the parent's handler waits on a pipe for the child's copy to be done (or
//! the child to be gone) *before* it releases the locks: until then no
//! thread of the parent can change the heap's metadata (a thread that did,
//! between the unlock and the child's copy, left the child a slab whose
//! count and bitmap disagree, and the child looped in Bin.take). Blocks'
//! contents may still change meanwhile, as they may at the fork itself.
//!
//! Trade-off: a fixed slot table (64 pools) instead of a growable list keeps
//! the per-thread cache lookup a single indexed load.
const std = @import("std");
const assert = std.debug.assert;
const linux = std.os.linux;
const pool_mod = @import("pool.zig");
const thread_cache = @import("thread_cache.zig");
const page_map = @import("page_map.zig");
const report = @import("report.zig");
const Policy = @import("placement").policy.Policy;
const policy_env = @import("placement").policy_env;
const size_class = @import("size_class.zig");

const Pool = pool_mod.Pool;
pub const max_pools = thread_cache.max_pools;

var slots: [max_pools]std.atomic.Value(?*Pool) = @splat(.init(null));
/// Pool structs are kept for reuse by their slot (never unmapped): a pointer
/// to a destroyed pool still reads a valid (empty) struct.
var spare: [max_pools]?*Pool = @splat(null);
var lock: std.c.pthread_mutex_t = .{};
/// Every thread's cache, for `destroy` (under `lock`).
var thread_caches: ?*thread_cache.ThreadCache = null;
var default_pool: std.atomic.Value(?*Pool) = .init(null);
var thread_key: std.c.pthread_key_t = 0;
/// Whether `thread_key` exists (a thread caching before that is not flushed at exit).
var key_ready: std.atomic.Value(bool) = .init(false);

/// The default pool, set up (policy from the environment) on first call.
pub inline fn defaultPool() *Pool {
    if (default_pool.load(.acquire)) |p| {
        @branchHint(.likely);
        return p;
    }
    return initDefaultPool();
}

/// The policy the environment asks for (policy_env.zig); on a bad one, one
/// line on fd 2 and _exit(2) — not exit(): see policy_env.zig's essay.
fn policyFromEnvironment() Policy {
    var message: [policy_env.message_bytes]u8 = undefined;
    return policy_env.fromEnvironmentChecked(&message) catch {
        var line: [policy_env.message_bytes + 32]u8 = undefined;
        const text = std.fmt.bufPrint(&line, "{s}: {s}\n", .{ report.prefix, std.mem.sliceTo(&message, 0) }) catch &line;
        report.writeAll(text);
        std.c._exit(policy_env.exit_status_invalid);
    };
}

fn initDefaultPool() *Pool {
    const p = blk: {
        _ = std.c.pthread_mutex_lock(&lock);
        defer _ = std.c.pthread_mutex_unlock(&lock);
        if (default_pool.load(.acquire)) |p| return p;
        var random: usize = 0;
        _ = linux.getrandom(@ptrCast(&random), @sizeOf(usize), 0);
        pool_mod.secret = random | 1;
        const policy = policyFromEnvironment(); // exits(2) on a bad policy
        shard_count = shardCountForCpus();
        const p = createLocked(&policy, .anonymous, 0) orelse {
            report.writeAll("hmalloc: cannot map the default pool's metadata: out of memory\n");
            std.c.abort();
        };
        default_pool.store(p, .release);
        break :blk p;
    };
    // Only now, with the pool published and no lock held: glibc may call
    // malloc inside these (pthread_atfork's handler list grows with malloc),
    // and under libmemtier that malloc is ours.
    if (std.c.pthread_key_create(&thread_key, threadExit) == .SUCCESS) key_ready.store(true, .release);
    _ = std.c.pthread_atfork(forkPrepare, forkParent, forkChild);
    return p;
}

/// A new pool in a free slot; null + errno (EAGAIN when all slots are used).
pub fn create(policy: *const Policy, source: pool_mod.ChunkSource) ?*Pool {
    _ = defaultPool(); // process state, and slot 0 taken
    _ = std.c.pthread_mutex_lock(&lock);
    defer _ = std.c.pthread_mutex_unlock(&lock);
    for (1..max_pools) |slot| {
        if (slots[slot].load(.monotonic) == null) return createLocked(policy, source, slot);
    }
    report.setErrno(.AGAIN);
    return null;
}

fn createLocked(policy: *const Policy, source: pool_mod.ChunkSource, slot: usize) ?*Pool {
    // Held by this thread: a default (non-recursive) mutex answers EBUSY to its own holder.
    if (std.debug.runtime_safety) assert(std.c.pthread_mutex_trylock(&lock) == .BUSY);
    assert(slots[slot].load(.monotonic) == null);
    const p: *Pool = spare[slot] orelse blk: {
        const raw = thread_cache.mapZeroed(@sizeOf(Pool)) orelse {
            report.setErrno(.NOMEM);
            return null;
        };
        break :blk @ptrCast(@alignCast(raw));
    };
    spare[slot] = p;
    p.* = .{
        .slot = @intCast(slot),
        .policy = policy.*,
        .source = source,
        .clean_pages_are_zero = source == .anonymous,
        .bins = undefined,
        .empty_slabs = undefined,
    };
    p.resetBins();
    slots[slot].store(p, .release);
    return p;
}

/// Unmaps all of `p`'s memory and frees its slot. Not for the default pool.
pub fn destroy(p: *Pool) void {
    assert(p.slot != 0);
    _ = std.c.pthread_mutex_lock(&lock);
    defer _ = std.c.pthread_mutex_unlock(&lock);
    assert(slots[p.slot].load(.monotonic) == p);
    p.releaseAll();
    // Blocks cached by any thread are gone with the memory: forget them, and
    // the empty caches spare thread caches keep for the slot.
    for ([_]?*thread_cache.ThreadCache{ thread_caches, spare_caches }) |list| {
        var it = list;
        while (it) |tc| : (it = tc.next) {
            const cache = tc.pools[p.slot] orelse continue;
            tc.pools[p.slot] = null;
            thread_cache.destroyPoolCache(cache);
        }
    }
    slots[p.slot].store(null, .release);
}

/// Iterates the live pools (for statistics).
pub fn poolAt(slot: usize) ?*Pool {
    return slots[slot].load(.acquire);
}

// ---- thread caches --------------------------------------------------------------

pub fn initThreadCache(p: *Pool) ?*thread_cache.PoolCache {
    if (busy) return null;
    busy = true;
    defer busy = false;
    const tc = takeSpare() orelse thread_cache.createThreadCache() orelse return null;
    {
        _ = std.c.pthread_mutex_lock(&lock);
        defer _ = std.c.pthread_mutex_unlock(&lock);
        tc.prev = null;
        tc.next = thread_caches;
        if (thread_caches) |head| head.prev = tc;
        thread_caches = tc;
        assignShardLocked(tc);
    }
    thread_cache.setCurrent(tc);
    if (key_ready.load(.acquire)) _ = std.c.pthread_setspecific(thread_key, tc);
    return tc.pools[p.slot] orelse initPoolCacheInner(tc, p);
}

// ---- bin shards -----------------------------------------------------------------
//
// A thread refills its caches from the bins of one shard of each pool (pool.max_shards): the
// shard with the fewest live threads when its cache set is made, like jemalloc's choice of an
// arena. `shard_count` is twice the CPUs the process may run on (1 on one CPU: nothing runs at
// once there), at most pool.max_shards; set with the default pool. Guarded by `lock`.

var shard_count: u8 = 1;
var shard_threads: [pool_mod.max_shards]u32 = @splat(0);

/// The bin shards in use (for tests).
pub fn shardCount() u8 {
    return shard_count;
}

fn shardCountForCpus() u8 {
    var set: linux.cpu_set_t = undefined;
    if (linux.sched_getaffinity(0, @sizeOf(linux.cpu_set_t), &set) != 0) return 1;
    const cpus = linux.CPU_COUNT(set);
    if (cpus <= 1) return 1;
    return @intCast(@min(2 * cpus, pool_mod.max_shards));
}

/// The shard with the fewest threads, now with one more (under `lock`).
fn assignShardLocked(tc: *thread_cache.ThreadCache) void {
    var best: u8 = 0;
    for (1..shard_count) |shard| {
        if (shard_threads[shard] < shard_threads[best]) best = @intCast(shard);
    }
    shard_threads[best] += 1;
    tc.shard = best;
}

pub fn initPoolCache(tc: *thread_cache.ThreadCache, p: *Pool) ?*thread_cache.PoolCache {
    if (busy) return null;
    busy = true;
    defer busy = false;
    return initPoolCacheInner(tc, p);
}

fn initPoolCacheInner(tc: *thread_cache.ThreadCache, p: *Pool) ?*thread_cache.PoolCache {
    assert(p.slot != 0); // slot 0's cache is part of the ThreadCache
    const cache = thread_cache.createPoolCache() orelse return null;
    tc.pools[p.slot] = cache;
    return cache;
}

/// Re-entrancy guard of this thread's cache set-up (one byte of TLS).
threadlocal var busy: bool = false;

/// Told, at a thread's exit, the bytes a counting free (pool.freeCounted) left in each of its
/// pool caches' `freed_bytes` that their owner did not take (libmemtier books them); set once
/// before any thread exits. Called under the registry's lock: it must take no lock that a
/// fork handler takes before the registry's (libmemtier's shared_lock), or a fork and an exit
/// would deadlock.
pub var retire_freed_hook: ?*const fn (slot: u8, bytes: u64) void = null;

fn threadExit(value: *anyopaque) callconv(.c) void {
    const tc: *thread_cache.ThreadCache = @ptrCast(@alignCast(value));
    // Allocations made by later destructors go to the bins directly.
    thread_cache.setCurrent(null);
    busy = true;
    _ = std.c.pthread_mutex_lock(&lock);
    defer _ = std.c.pthread_mutex_unlock(&lock);
    for (&tc.pools, 0..) |*entry, slot| {
        const cache = entry.* orelse continue;
        if (cache.freed_bytes != 0) {
            if (retire_freed_hook) |hook| hook(@intCast(slot), cache.freed_bytes);
            cache.freed_bytes = 0;
        }
        if (slots[slot].load(.acquire)) |p| pool_mod.flushCache(p, cache);
    }
    if (tc.prev) |prev| prev.next = tc.next else thread_caches = tc.next;
    if (tc.next) |next| next.prev = tc.prev;
    assert(shard_threads[tc.shard] > 0);
    shard_threads[tc.shard] -= 1;
    // Kept for the next thread with its (now empty) caches of other pools:
    // a program starting a thread per task made an mmap and a munmap per
    // thread (mimalloc-bench's mleak), and per pool with two tiers
    // (glibc-thread: 7.9x the one-tier time).
    if (spare_count < spare_max) {
        tc.next = spare_caches;
        spare_caches = tc;
        spare_count += 1;
        return;
    }
    destroyWithCaches(tc);
}

/// Unmaps a thread cache and its caches of pools other than the default.
fn destroyWithCaches(tc: *thread_cache.ThreadCache) void {
    for (tc.pools[1..]) |*entry| {
        const cache = entry.* orelse continue;
        entry.* = null;
        thread_cache.destroyPoolCache(cache);
    }
    thread_cache.destroyThreadCache(tc);
}

/// Caches of exited threads, empty (their blocks flushed, caches of other
/// pools destroyed), off the `thread_caches` list; guarded by `lock`.
var spare_caches: ?*thread_cache.ThreadCache = null;
var spare_count: usize = 0;
const spare_max = 16;

fn takeSpare() ?*thread_cache.ThreadCache {
    _ = std.c.pthread_mutex_lock(&lock);
    defer _ = std.c.pthread_mutex_unlock(&lock);
    const tc = spare_caches orelse return null;
    spare_caches = tc.next;
    spare_count -= 1;
    assert(tc.pools[0] == &tc.default);
    for (tc.pools, 0..) |entry, slot| {
        const cache = entry orelse continue;
        assert(slots[slot].load(.monotonic) != null); // destroy() drops spare caches of its pool
        assert(cache.freed_bytes == 0);
        for (cache.bins()) |*bin| assert(bin.count == 0);
    }
    return tc;
}

// ---- fork -----------------------------------------------------------------------

/// [read end, write end] of the pipe the parent waits on during a fork with a
/// file-backed pool; -1 otherwise. Guarded by `lock` (held across fork).
var fork_pipe: [2]i32 = .{ -1, -1 };

fn forkPrepare() callconv(.c) void {
    _ = std.c.pthread_mutex_lock(&lock);
    var file_backed = false;
    for (&slots) |*s| {
        const p = s.load(.monotonic) orelse continue;
        for (&p.bins) |*shard_bins| for (shard_bins) |*bin| bin.lock.lock();
        p.page_lock.lock();
        if (p.source == .file) file_backed = true;
    }
    page_map.lockForFork();
    fork_pipe = .{ -1, -1 };
    if (!file_backed) return;
    var fds: [2]i32 = undefined;
    if (linux.errno(linux.pipe2(&fds, .{ .CLOEXEC = true })) == .SUCCESS) fork_pipe = fds;
}

fn forkParent() callconv(.c) void {
    if (fork_pipe[0] >= 0) {
        _ = linux.close(fork_pipe[1]);
        var byte: u8 = 0;
        // One byte when the child's copy is done; end of file if the child died first.
        while (linux.errno(linux.read(fork_pipe[0], @ptrCast(&byte), 1)) == .INTR) {}
        _ = linux.close(fork_pipe[0]);
        fork_pipe = .{ -1, -1 };
    }
    page_map.unlockAfterFork();
    unlockAllPools();
    _ = std.c.pthread_mutex_unlock(&lock);
}

fn forkChild() callconv(.c) void {
    // The child is single-threaded: fresh mutexes are the safe way out of
    // locks that a thread of the parent took (some mutex kinds check owners).
    page_map.resetInChild();
    for (&slots) |*s| {
        const p = s.load(.monotonic) orelse continue;
        for (&p.bins) |*shard_bins| for (shard_bins) |*bin| {
            bin.lock = .{};
        };
        p.page_lock = .{};
        p.privatizeAfterFork();
    }
    if (fork_pipe[0] >= 0) {
        _ = linux.close(fork_pipe[0]);
        const byte: u8 = 1;
        _ = linux.write(fork_pipe[1], @ptrCast(&byte), 1);
        _ = linux.close(fork_pipe[1]);
        fork_pipe = .{ -1, -1 };
    }
    lock = .{};
    // Only the forking thread lives on; the others' caches are unreachable.
    thread_caches = thread_cache.current();
    shard_threads = @splat(0);
    if (thread_caches) |tc| {
        tc.next = null;
        tc.prev = null;
        shard_threads[tc.shard] = 1;
    }
}

fn unlockAllPools() void {
    for (&slots) |*s| {
        const p = s.load(.monotonic) orelse continue;
        p.page_lock.unlock();
        var shard: usize = pool_mod.max_shards;
        while (shard > 0) {
            shard -= 1;
            var i: usize = size_class.count;
            while (i > 0) {
                i -= 1;
                p.bins[shard][i].lock.unlock();
            }
        }
    }
}

// ---- tests ----------------------------------------------------------------------

test "destroying a pool drops every thread's cache of it; its slot's next pool starts clean" {
    const Shared = struct {
        step: std.atomic.Value(u32) = .init(0),
        pool: std.atomic.Value(?*Pool) = .init(null),
        wrong: std.atomic.Value(u32) = .init(0),

        fn waitFor(s: *@This(), step: u32) void {
            while (s.step.load(.acquire) != step) std.Thread.yield() catch {};
        }

        fn worker(s: *@This()) void {
            // Fill this thread's cache of the first pool with freed blocks.
            const first = s.pool.load(.acquire).?;
            var blocks: [64][*]u8 = undefined;
            for (&blocks) |*b| b.* = first.alloc(48).?;
            for (blocks) |b| pool_mod.free(b, "test");
            s.step.store(1, .release);
            s.waitFor(2); // the main thread destroyed it and made a new pool in its slot
            const second = s.pool.load(.acquire).?;
            for (&blocks) |*b| {
                b.* = second.alloc(48).?;
                if (pool_mod.poolOf(@intFromPtr(b.*), "test") != second) _ = s.wrong.fetchAdd(1, .monotonic);
                @memset(b.*[0..48], 0xa5); // would fault if it were the dead pool's memory
            }
            for (blocks) |b| pool_mod.free(b, "test");
            s.step.store(3, .release);
        }
    };
    const policy: Policy = .{};
    var shared: Shared = .{};
    const first = create(&policy, .anonymous).?;
    shared.pool.store(first, .release);
    const t = try std.Thread.spawn(.{}, Shared.worker, .{&shared});
    shared.waitFor(1);
    const slot = first.slot;
    destroy(first);
    const second = create(&policy, .anonymous).?;
    defer destroy(second);
    try std.testing.expectEqual(slot, second.slot);
    shared.pool.store(second, .release);
    shared.step.store(2, .release);
    t.join();
    try std.testing.expectEqual(@as(u32, 0), shared.wrong.load(.monotonic));
}
