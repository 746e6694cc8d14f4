//! Memory tiering for unmodified programs: the state behind libmemtier.so.
//!
//! What: at the first allocation, `MEMKIND_MEM_TIERS` (and
//! `MEMKIND_MEM_THRESHOLDS`) are parsed (tier_spec.zig) and each tier becomes
//! a pool of our allocator:
//! - DRAM     → the default pool (default policy: the process's own placement,
//!              or HMALLOC_POLICY's if set — the same pool libhmalloc uses);
//! - KMEM_DAX → a pool bound to the memory-only NUMA nodes nearest to the
//!              calling CPU (from `MEMKIND_DAX_KMEM_NODES` if set, else from
//!              sysfs: nodes with memory and no CPU, nearest by SLIT distance);
//! - FS_DAX   → a pool whose chunks are ranges of one unlinked file in PATH,
//!              mapped shared once with no descriptor kept (file_heap.zig),
//!              capped at PMEM_SIZE_LIMIT.
//! Each allocation then picks its tier (tier_ratio.zig) from per-thread byte
//! counters, so the common path takes no lock and no atomic; when a tier is
//! full the next one with room serves it (a "fallback"), instead of failing;
//! realloc too. A request that fails everywhere changes no shared state (see
//! `allocate`), and a thread's state is reused by the next thread.
//!
//! The two-tier hot path costs little more than one tier's (issue 13): under
//! STATIC_RATIO a thread asks the ledger for a tier once per *credit* of
//! `credit_bytes_max` bytes, which is booked to the ledger whole when granted
//! (the unspent rest is refunded when the credit ends), so a small malloc on
//! credit is the one-tier cache pop plus a compare and a subtraction
//! (`allocateOnCredit`). A free adds the block's bytes to a per-thread,
//! per-tier sum that is folded into the ledger before the next choice and
//! whenever the thread's free budget runs out. Invariant: the ledgers plus the shared counts equal the live bytes per
//! tier, plus the threads' unspent credits, minus their unfolded frees — each
//! term bounded by one credit or one free budget per thread.
//!
//! Without `MEMKIND_MEM_TIERS`, everything goes to the DRAM pool: the library
//! is then a plain malloc replacement. A malformed configuration prints one
//! line naming the bad token and exits with status 2 (`exit_status_invalid`,
//! libhmalloc's for a bad HMALLOC_POLICY) before the program runs any further
//! (memkind segfaults on several of them).
//!
//! Pointers we did not allocate (memory the dynamic loader allocated before
//! we served, a static allocator's blocks) are recognised by the page map
//! without touching them: `free` ignores them (logging at level ≥ 1) and
//! `malloc_usable_size` says 0, where reading a header would crash.
//!
//! Statistics per tier (allocations, fallbacks, bytes now and at peak) are
//! kept per thread and folded into process totals every `flush_bytes` of
//! change and at thread exit, so the peak is exact to within that step per
//! thread; at exit, log level ≥ 1 prints one summary line per tier. Nothing is
//! unmapped at exit: other destructors and stdio's final flush still use the
//! heap (memkind loses the program's last output by unmapping FS_DAX tiers).
//!
//! This file is also the root of the `memtier` module (zig-src/src/memtier/):
//! it re-exports the folder's other files, and in a test build references
//! them all, so `zig build test` runs their tests.
const std = @import("std");
const assert = std.debug.assert;
const linux = std.os.linux;
pub const tier_spec = @import("tier_spec.zig");
pub const tier_ratio = @import("tier_ratio.zig");
const pool_mod = @import("alloc").pool;
const registry = @import("alloc").registry;
const report = @import("alloc").report;
const size_class = @import("alloc").size_class;
const thread_cache = @import("alloc").thread_cache;
pub const tier_nodes = @import("tier_nodes.zig");
const file_heap = @import("alloc").file_heap;
const Lock = @import("alloc").lock.Lock;

comptime {
    std.testing.refAllDecls(@This()); // in test builds only: the folder's files and their tests
}
const Policy = @import("placement").policy.Policy;
const exit_status_invalid = @import("placement").policy_env.exit_status_invalid;

const Pool = pool_mod.Pool;
pub const max_tiers = tier_spec.max_tiers;
const flush_bytes: i64 = 256 * 1024;
/// STATIC_RATIO: bytes a thread allocates from the tier `choose` picked before it asks again.
/// The greedy choice keeps every tier within one block of its share; a credit widens that bound
/// by its size, which is 1/`credit_share` of the thread's share of the process's net bytes
/// (`net_estimate` / `live_states`: a thread's own ledger says little, as a thread that frees
/// what another allocated nets out near zero), at
/// least `credit_bytes_min` and at most `credit_bytes_max`: so each thread's split stays within
/// 1.6% of what it holds plus one block (and the 8 KiB floor), and a thread holding megabytes
/// asks once per 128 KiB instead of on every allocation (bench/mixed.c, 2.2 KiB per block on
/// average: one choice per 4 mallocs at 8 KiB, per 60 at 128 KiB).
const credit_bytes_min: u64 = 8 * 1024;
const credit_bytes_max: u64 = 128 * 1024;
const credit_share: u64 = 64;
/// Frees are folded into the ledger (and the ledger settled) once the thread's free budget is
/// used up by the bytes it freed. The budget is 1/`credit_share` of what the thread holds (as a
/// credit), between the ledger's own settle interval (64 KiB) and 1 MiB: a consumer's frees
/// reach the shared counts within 1.6% of the bytes.
/// The ledger settles at the same interval (`batchBytes`).
const free_budget_min: i64 = @intCast(tier_ratio.settle_interval_bytes);
const free_budget_max: i64 = 1024 * 1024;
const no_tier: u8 = 0xff;

pub const TierStats = struct {
    allocations: std.atomic.Value(u64) = .init(0),
    fallbacks: std.atomic.Value(u64) = .init(0),
    bytes_now: std.atomic.Value(i64) = .init(0),
    bytes_peak: std.atomic.Value(i64) = .init(0),
};

pub const Tier = struct {
    kind: tier_spec.Kind,
    ratio: u32,
    pool: *Pool,
    stats: TierStats = .{},
};

var tiers: [max_tiers]Tier = undefined;
var tier_count: usize = 0;
/// pool slot → tier index (no_tier for pools that are not tiers).
var slot_tier: [pool_mod.max_pools]u8 = @splat(no_tier);
var config: tier_ratio.Config = undefined;
/// Bit i set: tier i had no room for a block a chunk serves, which another tier then
/// served, since its last free or success. Only a hint about what to try first: a request
/// is never refused because of it (see `allocate`).
var full_mask: std.atomic.Value(tier_ratio.TierMask) = .init(0);
/// Net bytes handed over by threads that free more than they allocate, and
/// by exited threads (tier_ratio.zig's settle protocol).
var shared_counts: tier_ratio.Counts = .{};
/// Our lock, not a pthread mutex: a signal handler that allocates while this thread settles
/// (it holds this lock) is reported in one line and aborts, where a mutex would hang for ever.
var shared_lock: Lock = .{};
/// The process's net bytes in all tiers as of the threads' last settles (changed under
/// shared_lock, read without it), and the number of threads with a state: a thread's share of
/// the bytes sizes its credits and free budget.
var net_estimate: std.atomic.Value(i64) = .init(0);
var live_states: std.atomic.Value(u32) = .init(0);
pub var log_level: u8 = 0;
/// Statistics per tier are kept only when they will be printed (log level ≥ 1): the two-tier
/// hot path then skips their bookkeeping.
var keep_stats: bool = false;

const State = enum(u8) { uninitialised, initialising, ready };
var state: std.atomic.Value(State) = .init(.uninitialised);
var init_lock: std.c.pthread_mutex_t = .{};
threadlocal var initialising_here: bool = false;

/// This thread's tier choice and statistics deltas. Kept for the next thread when this one
/// exits (`spare_states`): a program starting 40,000 short threads used to keep 40,000 pages.
const ThreadState = struct {
    // The hot fields first (one cache line): the credit and the frees not yet folded.
    /// STATIC_RATIO: what is left of the credit granted to `credit_tier` (see `credit_bytes_max`).
    credit_bytes: u64 = 0,
    /// Allocations served on the current credit (booked to the statistics when it ends).
    credit_allocs: u64 = 0,
    /// What the current credit booked to the ledger when it was granted (0: no credit).
    credit_granted: u64 = 0,
    credit_tier: u8 = 0,
    /// The pool slot of `credit_tier` (allocateOnCredit pops from this thread's cache of it).
    credit_slot: u8 = 0,
    /// Left of the free budget before the frees are folded (see `free_budget_min`).
    free_budget: i64 = free_budget_min,
    /// The whole budget, as set at the last fold (`free_budget` equals it: nothing to fold).
    free_budget_full: i64 = free_budget_min,
    /// Bytes freed per pool slot since the last fold (by slot: free needs no tier lookup;
    /// slots of pools that are not tiers are never folded).
    freed_bytes: [pool_mod.max_pools]u64 = @splat(0),
    ledger: tier_ratio.Ledger,
    /// The ledger's total after its last settle: what the thread itself allocated or freed
    /// since is its total minus this (reported to `net_estimate` at the next settle).
    settled_total: i64 = 0,
    delta_bytes: [max_tiers]i64 = @splat(0),
    delta_allocations: [max_tiers]u64 = @splat(0),
    delta_fallbacks: [max_tiers]u64 = @splat(0),
    next_spare: ?*ThreadState = null,
};
/// This thread's state, in the initial-exec slot of thread_pointer.c (a Zig threadlocal in a
/// shared library costs a __tls_get_addr call per access: 13% of the two-tier path).
threadlocal var thread_state_fallback: ?*anyopaque = null;
inline fn stateSlot() *?*anyopaque {
    return thread_cache.initialExecSlot("hm_memtier_state_tls", &thread_state_fallback);
}
inline fn currentState() ?*ThreadState {
    return @ptrCast(@alignCast(stateSlot().*));
}
/// Set once this thread's state went back to `spare_states` (its key destructor ran): what
/// later destructors allocate or free is booked to the shared counts directly.
threadlocal var thread_exited: bool = false;
/// States of exited threads, and of the last batch mapped (under shared_lock).
var spare_states: ?*ThreadState = null;
const states_per_map = 64;
var thread_key: std.c.pthread_key_t = std.math.maxInt(std.c.pthread_key_t);

/// The pool an allocation of `size` bytes goes to, and its tier.
pub const Choice = struct { pool: *Pool, tier: u8 };

/// Set once loaded when there is nothing to choose or count (one tier, log
/// level 0): malloc and free then go straight to this pool.
pub var plain_pool: ?*Pool = null;
/// plain_pool is the default pool (DRAM alone): malloc is hmalloc's path.
pub var plain_default: bool = false;

pub inline fn isReady() bool {
    return state.load(.acquire) == .ready;
}

/// Makes sure the configuration is loaded. Returns false while this very
/// thread is loading it (nested allocations then use the DRAM pool).
pub fn ensureReady() bool {
    if (isReady()) return true;
    if (initialising_here) return false;
    _ = std.c.pthread_mutex_lock(&init_lock);
    defer _ = std.c.pthread_mutex_unlock(&init_lock);
    if (state.load(.acquire) == .ready) return true;
    initialising_here = true;
    defer initialising_here = false;
    state.store(.initialising, .release);
    load();
    if (tier_count <= 1 and log_level == 0) {
        plain_pool = tiers[0].pool;
        plain_default = tiers[0].pool == registry.defaultPool();
    } else {
        registry.retire_freed_hook = retireCachedFrees;
    }
    state.store(.ready, .release);
    return true;
}

fn load() void {
    report.prefix = "memtier";
    log_level = readLogLevel();
    keep_stats = log_level >= 1;
    const dram = registry.defaultPool();
    const tiers_text = getenv("MEMKIND_MEM_TIERS") orelse {
        addTier(.dram, 1, dram);
        logInfo("MEMKIND_MEM_TIERS is not set: one DRAM tier (plain malloc replacement)", .{});
        return;
    };
    const parsed = tier_spec.parse(tiers_text, getenv("MEMKIND_MEM_THRESHOLDS"));
    const spec = switch (parsed) {
        .spec => |s| s,
        .failure => |f| {
            var buf: [tier_spec.message_bytes_max]u8 = undefined;
            const line = f.message(&buf);
            report.writeAll(line);
            report.writeAll("\n");
            std.c._exit(exit_status_invalid);
        },
    };
    config = tier_ratio.Config.init(&spec);
    for (spec.tiers()) |t| {
        const p = switch (t.kind) {
            .dram => dram,
            .kmem_dax => kmemDaxPool(),
            .fs_dax => fsDaxPool(t.path, t.pmem_size_limit_bytes),
        };
        addTier(t.kind, t.ratio, p);
    }
    if (std.c.pthread_key_create(&thread_key, threadExit) != .SUCCESS) thread_key = std.math.maxInt(std.c.pthread_key_t);
    _ = std.c.pthread_atfork(forkPrepare, forkParent, forkChild);
    for (tiers[0..tier_count], 0..) |t, i| logInfo("tier {d}: {s}, ratio {d}", .{ i, t.kind.name(), t.ratio });
}

fn addTier(kind: tier_spec.Kind, ratio: u32, p: *Pool) void {
    tiers[tier_count] = .{ .kind = kind, .ratio = ratio, .pool = p };
    slot_tier[p.slot] = @intCast(tier_count);
    tier_count += 1;
}

fn kmemDaxPool() *Pool {
    var why: [256]u8 = undefined;
    const nodes = tier_nodes.kmemDaxNodes(getenv("MEMKIND_DAX_KMEM_NODES"), &why) orelse
        fatal("KMEM_DAX: {s}", .{std.mem.sliceTo(&why, 0)});
    var policy: Policy = .{};
    policy.mode = .bind;
    policy.nodes = nodes;
    if (policy.validate()) |_| fatal("KMEM_DAX: the nodes found cannot be bound to", .{});
    return registry.create(&policy, .anonymous) orelse fatal("KMEM_DAX: cannot create its pool", .{});
}

fn fsDaxPool(path: []const u8, limit_bytes: u64) *Pool {
    var z: [4096]u8 = undefined;
    if (path.len >= z.len) fatal("FS_DAX: PATH too long", .{});
    @memcpy(z[0..path.len], path);
    z[path.len] = 0;
    const heap = file_heap.create(@ptrCast(&z), limit_bytes) catch |err| switch (err) {
        error.CannotCreateFile => fatal("FS_DAX: cannot create a file in PATH \"{s}\"", .{path}),
        error.CannotMap => fatal("FS_DAX: cannot map a file in PATH \"{s}\"", .{path}),
    };
    if (limit_bytes == 0 or heap.limit_bytes < limit_bytes)
        logInfo("FS_DAX in \"{s}\": holds at most {d} bytes (the free space of its filesystem)", .{ path, heap.limit_bytes });
    const policy: Policy = .{};
    return registry.create(&policy, .{ .file = heap }) orelse fatal("FS_DAX: cannot create its pool", .{});
}

fn fatal(comptime fmt: []const u8, args: anytype) noreturn {
    var buf: [512]u8 = undefined;
    const line = std.fmt.bufPrint(&buf, tier_spec.log_error_prefix ++ fmt ++ "\n", args) catch buf[0..0];
    report.writeAll(line);
    std.c._exit(exit_status_invalid);
}

pub fn logInfo(comptime fmt: []const u8, args: anytype) void {
    if (log_level < 1) return;
    var buf: [512]u8 = undefined;
    const line = std.fmt.bufPrint(&buf, "MEMKIND_MEM_TIERING_LOG_INFO: " ++ fmt ++ "\n", args) catch return;
    report.writeAll(line);
}

fn readLogLevel() u8 {
    const text = getenv("MEMKIND_MEM_TIERING_LOG_LEVEL") orelse return 0;
    const level = std.fmt.parseInt(u8, text, 10) catch fatal("MEMKIND_MEM_TIERING_LOG_LEVEL: bad value \"{s}\": expected 0, 1 or 2", .{text});
    if (level > 2) fatal("MEMKIND_MEM_TIERING_LOG_LEVEL: bad value \"{s}\": expected 0, 1 or 2", .{text});
    return level;
}

fn getenv(name: [*:0]const u8) ?[]const u8 {
    const value = std.c.getenv(name) orelse return null;
    return std.mem.span(value);
}

// ---- fork ---------------------------------------------------------------------------
//
// `shared_lock` is taken around fork like the pools' locks (registry.zig): a thread of the
// parent settling its ledger at the fork would leave it locked in the child for ever. (A
// file-backed tier's heap is copied into the child by registry.zig's fork handlers.)

fn forkPrepare() callconv(.c) void {
    shared_lock.lock();
}

fn forkParent() callconv(.c) void {
    shared_lock.unlock();
}

fn forkChild() callconv(.c) void {
    shared_lock = .{};
}

// ---- the per-allocation path ----------------------------------------------------

/// Allocates `size` bytes (aligned if `alignment` > 0, zeroed if asked) from
/// the tier the ratio logic picks, falling back to the tiers with room.
pub fn allocate(size: usize, alignment: usize, zeroed: bool) ?[*]u8 {
    if (tier_count <= 1 or !isReady()) {
        @branchHint(.likely);
        const p = registry.defaultPool();
        const block = allocFrom(p, size, alignment, zeroed) orelse return null;
        if (log_level > 0 and isReady()) account(0, @intCast(usableFor(block, size, alignment)), false);
        return block;
    }
    const ts = threadState() orelse return allocateUntracked(size, alignment, zeroed);
    const marked = full_mask.load(.monotonic);
    var failed: tier_ratio.TierMask = 0;
    if (size <= ts.credit_bytes) {
        @branchHint(.likely);
        // STATIC_RATIO within a credit: the tier chosen last time, unless marked full since.
        const index = ts.credit_tier;
        const bit = @as(tier_ratio.TierMask, 1) << @intCast(index);
        if (marked & bit == 0) {
            if (allocFrom(tiers[index].pool, size, alignment, zeroed)) |block| {
                @branchHint(.likely);
                const usable = usableFor(block, size, alignment);
                if (usable <= ts.credit_bytes) {
                    @branchHint(.likely);
                    ts.credit_bytes -= usable;
                    ts.credit_allocs += 1;
                    return block;
                }
                // An aligned block bigger than the credit's rest: booked as a block of its own.
                endCredit(ts);
                accountAlloc(ts, index, @intCast(usable));
                return block;
            }
            failed = bit;
        }
    }
    return allocateChoosing(ts, marked, failed, size, alignment, zeroed);
}

/// `allocate`'s fast path, inlined into malloc: a small block (≤ 32 KiB) on the thread's STATIC_RATIO
/// credit, popped from its cache of the credit's tier. Null (nothing changed) whenever that is
/// not the whole story — no state or credit yet, too little credit left, an empty cache — and
/// malloc then takes `allocate`.
pub inline fn allocateOnCredit(size: usize) ?[*]u8 {
    if (size > size_class.small_max_bytes) return null;
    const ts = currentState() orelse return null;
    const key = if (size <= size_class.lookup_max_bytes) size_class.keyOfLookup(size) else size_class.keyOf(size_class.classByArithmetic(size));
    const usable = size_class.sizeOfKey(key);
    if (usable > ts.credit_bytes) return null;
    const block = pool_mod.allocCachedByKey(ts.credit_slot, key) orelse return null;
    ts.credit_bytes -= usable;
    ts.credit_allocs += 1;
    return block;
}

/// Ends the thread's credit: the unspent rest is refunded to the ledger, what was spent goes to
/// the statistics.
fn endCredit(ts: *ThreadState) void {
    if (ts.credit_granted == 0) return;
    const index = ts.credit_tier;
    assert(ts.credit_bytes <= ts.credit_granted);
    ts.ledger.refund(index, ts.credit_bytes);
    noteDelta(ts, index, @intCast(ts.credit_granted - ts.credit_bytes), ts.credit_allocs);
    ts.credit_bytes = 0;
    ts.credit_allocs = 0;
    ts.credit_granted = 0;
}

/// Moves what this thread's frees left in its caches of the tiers (the pools' counting free:
/// `freed_bytes` of each cache) into its own sums per slot.
fn collectCachedFrees(ts: *ThreadState) void {
    const tc = thread_cache.current() orelse return;
    for (tiers[0..tier_count]) |*tier| {
        const cache = tc.pools[tier.pool.slot] orelse continue;
        ts.freed_bytes[tier.pool.slot] += cache.freed_bytes;
        cache.freed_bytes = 0;
    }
}

/// The bytes of frees the thread's cache of the pool in `slot` holds for the ledger.
fn cachedFrees(slot: u8) u64 {
    const tc = thread_cache.current() orelse return 0;
    const cache = tc.pools[slot] orelse return 0;
    return cache.freed_bytes;
}

/// Books the frees gathered since the last fold (the thread's and its caches') to the ledger
/// and the statistics, and flushes the statistics of tiers that moved `flush_bytes`; settles
/// the ledger when it is due (or when `settle_now`: the free budget ran out).
fn foldFrees(ts: *ThreadState, settle_now: bool) void {
    collectCachedFrees(ts);
    const budget = batchBytes(ts);
    ts.free_budget = @intCast(budget);
    ts.free_budget_full = @intCast(budget);
    var freed_in: tier_ratio.TierMask = 0;
    for (tiers[0..tier_count], 0..) |*tier, index| {
        const freed = &ts.freed_bytes[tier.pool.slot];
        if (freed.* == 0) continue;
        const bytes = freed.*;
        freed.* = 0;
        freed_in |= @as(tier_ratio.TierMask, 1) << @intCast(index);
        if (tier_count > 1) ts.ledger.noteFree(@intCast(index), bytes);
        addDelta(ts, index, -@as(i64, @intCast(bytes)), 0);
    }
    if (tier_count > 1) {
        // Room again in a tier marked full.
        if (full_mask.load(.monotonic) & freed_in != 0) _ = full_mask.fetchAnd(~freed_in, .monotonic);
        if (settle_now or ts.ledger.settleDueAfter(batchBytes(ts))) settle(ts);
    }
    if (keep_stats) {
        for (0..tier_count) |index| if (@abs(ts.delta_bytes[index]) >= flush_bytes) flushTier(ts, index);
    }
}

/// The thread's free budget and settle interval in bytes (see `free_budget_min`).
inline fn batchBytes(ts: *const ThreadState) u64 {
    return std.math.clamp(heldBytes(ts) / credit_share, @as(u64, free_budget_min), @as(u64, free_budget_max));
}

/// What the thread holds, for sizing its batches: its share of the process's net bytes, or its
/// own ledger's total if more.
inline fn heldBytes(ts: *const ThreadState) u64 {
    const share = @divTrunc(@max(0, net_estimate.load(.monotonic)), @max(1, live_states.load(.monotonic)));
    return @intCast(@max(share, ts.ledger.counts.total(tier_count)));
}

/// noteFree without a thread state.
fn noteFreeUntracked(slot: u8, bytes: usize) void {
    @branchHint(.cold);
    const tier = slot_tier[slot];
    if (tier < max_tiers) account(tier, -@as(i64, @intCast(bytes)), false);
}

/// registry.retire_freed_hook: an exiting thread's cache of the pool in `slot` still counted
/// `bytes` of frees. Booked to the thread's state if it still has one (its own exit folds
/// them), else straight to the shared counts.
fn retireCachedFrees(slot: u8, bytes: u64) void {
    if (currentState()) |ts| {
        ts.freed_bytes[slot] += bytes;
        ts.free_budget -= @intCast(bytes);
        return;
    }
    const tier = slot_tier[slot];
    if (tier < max_tiers) accountShared(tier, -@as(i64, @intCast(bytes)));
}

/// `allocate`'s choice through the ledger: the tier `choose` picks, then the others with room.
/// `failed`: tiers that already failed this request.
fn allocateChoosing(ts: *ThreadState, marked: tier_ratio.TierMask, failed_before: tier_ratio.TierMask, size: usize, alignment: usize, zeroed: bool) ?[*]u8 {
    // The choice sees the ledger as it is: no credit outstanding, every free booked.
    endCredit(ts);
    foldFrees(ts, false);
    var hint = marked;
    // Tiers that failed this request: a failure concerns this request only.
    var failed = failed_before;
    while (true) {
        const index = ts.ledger.choose(&config, size, hint | failed) orelse {
            if (hint & ~failed == 0) break;
            hint = 0; // Tiers marked full by other requests: still tried before failing this one.
            continue;
        };
        const bit = @as(tier_ratio.TierMask, 1) << @intCast(index);
        var usable: usize = undefined;
        if (allocSized(tiers[index].pool, size, alignment, zeroed, &usable)) |block| {
            @branchHint(.likely);
            if (failed | (marked & bit) != 0) noteFallback(ts, index, failed, size, alignment);
            if (config.policy == .static_ratio) {
                grantCredit(ts, index, usable);
            } else {
                accountAlloc(ts, index, @intCast(usable));
            }
            return block;
        }
        failed |= bit;
    }
    // Every tier failed: nothing shared was changed (no tier is marked full by a request
    // that fails everywhere, such as malloc(64 GiB)).
    report.setErrno(.NOMEM);
    return null;
}

/// STATIC_RATIO: the block of `usable` bytes just served by tier `index` opens a credit there,
/// booked to the ledger whole (the credit's size, or the block's if bigger).
fn grantCredit(ts: *ThreadState, index: u8, usable: usize) void {
    assert(ts.credit_granted == 0);
    const granted = @max(usable, std.math.clamp(heldBytes(ts) / credit_share, credit_bytes_min, credit_bytes_max));
    ts.ledger.noteAlloc(&config, index, granted);
    ts.credit_tier = index;
    ts.credit_slot = tiers[index].pool.slot;
    ts.credit_granted = granted;
    ts.credit_bytes = granted - usable;
    ts.credit_allocs = 1;
    if (ts.ledger.settleDueAfter(batchBytes(ts))) settle(ts);
}

/// A request served by `index` after `failed` tiers could not: counted as a fallback, and when
/// the request was one a chunk serves, each failed tier is marked full (it could not even map a
/// chunk). A huge request failing says nothing about the room for others and marks nothing.
/// A success in a tier marked full clears its mark.
fn noteFallback(ts: *ThreadState, index: usize, failed: tier_ratio.TierMask, size: usize, alignment: usize) void {
    @branchHint(.cold);
    const bit = @as(tier_ratio.TierMask, 1) << @intCast(index);
    assert(failed & bit == 0);
    if (full_mask.load(.monotonic) & bit != 0) _ = full_mask.fetchAnd(~bit, .monotonic);
    if (failed == 0) return;
    if (keep_stats) ts.delta_fallbacks[index] += 1;
    if (size <= pool_mod.large_max_bytes and alignment <= pool_mod.page_bytes) _ = full_mask.fetchOr(failed, .monotonic);
}

/// An allocation without a thread state (while the configuration loads, or in a thread's
/// last destructors): the first tier, booked to the shared counts.
fn allocateUntracked(size: usize, alignment: usize, zeroed: bool) ?[*]u8 {
    @branchHint(.cold);
    const block = allocFrom(tiers[0].pool, size, alignment, zeroed) orelse return null;
    if (thread_exited) accountShared(0, @intCast(usableFor(block, size, alignment)));
    return block;
}

/// Books a block straight to the shared counts and the statistics (no thread state).
fn accountShared(index: usize, bytes: i64) void {
    shared_lock.lock();
    shared_counts.net_bytes[index] += bytes;
    _ = net_estimate.fetchAdd(bytes, .monotonic);
    shared_lock.unlock();
    const stats = &tiers[index].stats;
    if (bytes > 0) _ = stats.allocations.fetchAdd(1, .monotonic);
    const now = stats.bytes_now.fetchAdd(bytes, .monotonic) + bytes;
    _ = stats.bytes_peak.fetchMax(now, .monotonic);
}

inline fn allocFrom(p: *Pool, size: usize, alignment: usize, zeroed: bool) ?[*]u8 {
    if (zeroed) return p.allocZeroed(1, size);
    if (alignment > 0) return p.allocAligned(alignment, size);
    return p.alloc(size);
}

/// allocFrom, also giving the block's usable size (known from its class for a small malloc).
inline fn allocSized(p: *Pool, size: usize, alignment: usize, zeroed: bool, usable: *usize) ?[*]u8 {
    if (!zeroed and alignment == 0 and size <= size_class.small_max_bytes) {
        const class = size_class.classOf(size);
        usable.* = size_class.sizeOf(class);
        return p.allocClass(class);
    }
    const block = allocFrom(p, size, alignment, zeroed) orelse return null;
    usable.* = usableFor(block, size, alignment);
    return block;
}

inline fn usableFor(block: [*]u8, size: usize, alignment: usize) usize {
    if (alignment > 0) return pool_mod.usableSize(block, "aligned_alloc");
    return size_class.usableSizeFor(size);
}

/// Books a block of `bytes` allocated in (positive) or freed from (negative)
/// tier `index` to this thread's ledger and statistics.
pub inline fn account(index: usize, bytes: i64, fallback: bool) void {
    if (tier_count <= 1 and log_level == 0) return;
    const ts = threadState() orelse {
        if (thread_exited) accountShared(index, bytes);
        return;
    };
    if (bytes > 0) {
        if (fallback and keep_stats) ts.delta_fallbacks[index] += 1;
        return accountAlloc(ts, index, bytes);
    }
    if (tier_count > 1) {
        ts.ledger.noteFree(@intCast(index), @intCast(-bytes));
        // Room again in a tier marked full.
        if (full_mask.load(.monotonic) >> @intCast(index) & 1 != 0)
            _ = full_mask.fetchAnd(~(@as(tier_ratio.TierMask, 1) << @intCast(index)), .monotonic);
        if (ts.ledger.settleDue()) settle(ts);
    }
    noteDelta(ts, index, bytes, 0);
}

/// `account` of an allocation, for a caller that holds the thread's state.
inline fn accountAlloc(ts: *ThreadState, index: usize, bytes: i64) void {
    assert(bytes > 0);
    if (tier_count > 1) {
        ts.ledger.noteAlloc(&config, @intCast(index), @intCast(bytes));
        if (ts.ledger.settleDue()) settle(ts);
    }
    noteDelta(ts, index, bytes, 1);
}

/// Books `bytes` and `allocations` of tier `index` to the thread's statistics (if kept); once
/// they moved `flush_bytes`, the thread's frees are folded and the statistics flushed (so that
/// a peak never counts blocks freed but not yet folded).
inline fn noteDelta(ts: *ThreadState, index: usize, bytes: i64, allocations: u64) void {
    if (!keep_stats) return;
    addDelta(ts, index, bytes, allocations);
    if (@abs(ts.delta_bytes[index]) >= flush_bytes) foldFrees(ts, false);
}

inline fn addDelta(ts: *ThreadState, index: usize, bytes: i64, allocations: u64) void {
    if (!keep_stats) return;
    ts.delta_allocations[index] += allocations;
    ts.delta_bytes[index] += bytes;
}

/// A block of the pool in `slot` is being freed (libmemtier's free) off the pools' fast path
/// (a small block its cache cannot take, a large or huge block): its bytes join the thread's
/// unfolded frees (see `foldFrees`), which are folded once they, or those its cache of the
/// pool counted, exceed the free budget.
pub fn noteFree(slot: u8, bytes: usize) void {
    const ts = currentState() orelse return noteFreeUntracked(slot, bytes);
    ts.freed_bytes[slot] += bytes;
    ts.free_budget -= @intCast(bytes);
    if (ts.free_budget < 0 or cachedFrees(slot) >= ts.free_budget_full) foldFrees(ts, true);
}

fn settle(ts: *ThreadState) void {
    shared_lock.lock();
    defer shared_lock.unlock();
    var taken = shared_counts;
    shared_counts = .{};
    reportNet(ts);
    if (ts.ledger.settle(&taken)) shared_counts.add(taken);
    ts.settled_total = ts.ledger.counts.total(tier_count);
}

/// The tier of a block (no_tier if its pool is not one).
pub inline fn tierOf(p: *Pool) usize {
    return slot_tier[p.slot];
}

inline fn threadState() ?*ThreadState {
    if (currentState()) |ts| {
        @branchHint(.likely);
        return ts;
    }
    return threadStateSlow();
}

fn threadStateSlow() ?*ThreadState {
    @branchHint(.cold);
    if (initialising_here or thread_exited or !isReady()) return null;
    const ts = spareState() orelse return null;
    ts.* = .{ .ledger = if (tier_count > 1) tier_ratio.Ledger.init(&config) else .{} };
    _ = live_states.fetchAdd(1, .monotonic);
    stateSlot().* = ts;
    if (thread_key != std.math.maxInt(std.c.pthread_key_t)) _ = std.c.pthread_setspecific(thread_key, ts);
    return ts;
}

/// A state an exited thread left, else one of a new batch of `states_per_map`.
fn spareState() ?*ThreadState {
    shared_lock.lock();
    defer shared_lock.unlock();
    if (spare_states == null) {
        const raw = linux.mmap(null, states_per_map * @sizeOf(ThreadState), .{ .READ = true, .WRITE = true }, .{ .TYPE = .PRIVATE, .ANONYMOUS = true }, -1, 0);
        if (linux.errno(raw) != .SUCCESS) return null;
        const batch: [*]ThreadState = @ptrFromInt(raw);
        for (batch[0..states_per_map]) |*spare| {
            spare.next_spare = spare_states;
            spare_states = spare;
        }
    }
    const ts = spare_states.?;
    spare_states = ts.next_spare;
    return ts;
}

/// Adds what the thread allocated net since its last settle to `net_estimate` (under shared_lock).
fn reportNet(ts: *const ThreadState) void {
    _ = net_estimate.fetchAdd(ts.ledger.counts.total(tier_count) - ts.settled_total, .monotonic);
}

fn flushTier(ts: *ThreadState, index: usize) void {
    const stats = &tiers[index].stats;
    _ = stats.allocations.fetchAdd(ts.delta_allocations[index], .monotonic);
    _ = stats.fallbacks.fetchAdd(ts.delta_fallbacks[index], .monotonic);
    const now = stats.bytes_now.fetchAdd(ts.delta_bytes[index], .monotonic) + ts.delta_bytes[index];
    _ = stats.bytes_peak.fetchMax(now, .monotonic);
    ts.delta_allocations[index] = 0;
    ts.delta_fallbacks[index] = 0;
    ts.delta_bytes[index] = 0;
}

fn flushAll(ts: *ThreadState) void {
    for (0..tier_count) |i| flushTier(ts, i);
}

fn threadExit(value: *anyopaque) callconv(.c) void {
    const ts: *ThreadState = @ptrCast(@alignCast(value));
    endCredit(ts);
    foldFrees(ts, false);
    flushAll(ts);
    shared_lock.lock();
    defer shared_lock.unlock();
    if (tier_count > 1) {
        reportNet(ts);
        shared_counts.add(ts.ledger.drain());
    }
    _ = live_states.fetchSub(1, .monotonic);
    // The state serves the next thread; later destructors of this one book to the shared counts.
    assert(currentState() == ts);
    stateSlot().* = null;
    thread_exited = true;
    ts.next_spare = spare_states;
    spare_states = ts;
}

/// At exit (level ≥ 1): one line per tier. Unmaps nothing.
pub fn summary() void {
    if (log_level < 1 or !isReady()) return;
    if (currentState()) |ts| {
        endCredit(ts);
        foldFrees(ts, false);
        flushAll(ts);
    }
    for (tiers[0..tier_count], 0..) |*t, i| {
        logInfo("tier {d} {s}: {d} bytes now, {d} bytes peak, {d} allocations, {d} fallbacks", .{
            i,                                    t.kind.name(),
            t.stats.bytes_now.load(.monotonic),   t.stats.bytes_peak.load(.monotonic),
            t.stats.allocations.load(.monotonic), t.stats.fallbacks.load(.monotonic),
        });
    }
}

pub fn tierCount() usize {
    return tier_count;
}

comptime {
    assert(max_tiers <= no_tier);
    _ = size_class;
}
